#!/usr/bin/env bash
# GRPO step time and peak memory, full fine-tuning against LoRA (r 16, alpha 32, all-linear), for
# `grpo train` and TRL 1.16 GRPOTrainer + PEFT on the same model folders, dataset, reward and
# settings, in one run: G 8, 4 prompts per step, 128 completion tokens, beta 0.04 (the LoRA runs take
# the reference from the base with the adapters off; TRL + PEFT does the same), float32, CPU with 2
# threads. The first step is a warm-up; the rest are averaged. Makes a throwaway virtual environment
# outside the repository. Usage: scripts/bench_lora.sh [STEPS [MODEL...]]
# (models: smollm2-135m qwen2.5-0.5b; TRL_FULL=1 also times TRL's full fine-tune)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${TMPDIR:-/tmp}/grpo-bench-lora"
venv="${TMPDIR:-/tmp}/grpo-bench-trl-venv"
steps="${1:-3}"
shift || true
models="${*:-smollm2-135m qwen2.5-0.5b}"
rm -rf "$work" && mkdir -p "$work"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
wheel=$(ls /opt/wheels/torch-*.whl 2>/dev/null | head -1 || true)
"$venv/bin/pip" install -q ${wheel:-torch} transformers==5.23.0 trl==1.16.0 peft safetensors datasets accelerate
swift build -c release --product grpo >/dev/null && swift build -c release --product grpo-bench >/dev/null
.build/release/grpo-bench machine
.build/release/grpo-bench train-setup "$work" 32 $models >/dev/null

cat >"$work/trl_step.py" <<'PY'
import json, re, sys, time
import torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

folder, data, steps, out, lora = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] == "lora"
torch.set_num_threads(2)
digit = re.compile(r"(?s).*[0-9].*")

def has_digit(completions, **kwargs):  # the `format` reward with pattern .*[0-9].* on the Swift side
    return [1.0 if digit.fullmatch(c) else 0.0 for c in completions]

class StepTimer(TrainerCallback):
    def __init__(self):
        self.steps = []
    def on_step_begin(self, args, state, control, **kw):
        self.start = time.perf_counter()
    def on_step_end(self, args, state, control, **kw):
        self.steps.append(time.perf_counter() - self.start)

model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
tokenizer = AutoTokenizer.from_pretrained(folder)
config = GRPOConfig(
    output_dir=out, per_device_train_batch_size=32, num_generations=8, gradient_accumulation_steps=1,
    steps_per_generation=1, max_completion_length=128, temperature=1.0, beta=0.04, loss_type="dapo",
    learning_rate=1e-5, max_steps=steps, use_cpu=True, bf16=False, fp16=False, report_to="none",
    logging_steps=1, save_strategy="no", seed=1, dataloader_num_workers=0)
peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                         task_type="CAUSAL_LM") if lora else None
trainer = GRPOTrainer(model=model, reward_funcs=has_digit, args=config, peft_config=peft_config,
                      train_dataset=load_dataset("json", data_files=data, split="train"), processing_class=tokenizer)
timer = StepTimer()
trainer.add_callback(timer)
trainer.train()
print(json.dumps(timer.steps[1:]))
PY

cat >"$work/driver.py" <<'PY'
import json, os, sys
work, steps, grpo, models = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split()

sys.path.insert(0, "scripts")  # the driver runs from the repository's root
from bench_run import run

print(f"{'model':14} {'run':18} {'s/step':>8} {'peak RSS':>10}")
for name in models:
    folder = f"{work}/{name}"
    results = {}
    for label, extra in [("swift full", []), ("swift lora", ["--lora_r", "16", "--lora_alpha", "32",
                                                             "--lora_target_modules", "all-linear"])]:
        out = f"{work}/out-{name}-{label.replace(' ', '-')}"
        _, rss = run([grpo, "train", "--model", folder, "--dataset", f"{work}/prompts.jsonl", "--output_dir", out,
                      "--num_generations", "8", "--per_step_prompts", "4", "--max_completion_length", "128",
                      "--temperature", "1", "--beta", "0.04", "--loss_type", "dapo", "--learning_rate", "1e-5",
                      "--max_steps", str(steps), "--save_steps", "100000", "--logging_steps", "1", "--rewards", "format",
                      "--log_completions_steps", "0", "--seed", "1"] + extra)
        rows = [json.loads(l) for l in open(f"{out}/metrics.jsonl")][1:]
        results[label] = (sum(r["step_seconds"] for r in rows) / len(rows), rss)
    trl_runs = [("trl+peft lora", "lora")] + ([("trl full", "full")] if os.environ.get("TRL_FULL") else [])
    for label, kind in trl_runs:
        text, rss = run([sys.executable, f"{work}/trl_step.py", folder, f"{work}/prompts.jsonl", str(steps),
                         f"{work}/trl-{name}-{kind}", kind])
        times = json.loads(text.strip().split("\n")[-1])
        results[label] = (sum(times) / len(times), rss)
    for label, (seconds, rss) in results.items():
        print(f"{name:14} {label:18} {seconds:8.2f} {rss / 2**30:8.2f} GiB", flush=True)
    full, lora, trl = results["swift full"], results["swift lora"], results["trl+peft lora"]
    print(f"{name:14} LoRA step {lora[0] / full[0]:.2f}x of full, peak memory {lora[1] / full[1]:.2f}x of full; "
          f"{trl[0] / lora[0]:.2f}x faster than TRL + PEFT", flush=True)
PY

echo "grpo-bench LoRA, $(nproc) cores, $(grep -o 'avx512[a-z_0-9]*' /proc/cpuinfo | sort -u | head -1 | sed 's/^$/AVX2/' || echo AVX2), $(date -u +%F)"
"$venv/bin/python" "$work/driver.py" "$work" "$steps" "$(pwd)/.build/release/grpo" "$models"
