#!/usr/bin/env bash
# Seconds per GRPO step and peak memory of `grpo train` and TRL's GRPOTrainer on the same model
# folders, dataset, reward and settings, in one run: G 8, 4 prompts per step, 128 completion tokens,
# float32, CPU with 2 threads, beta 0.04 and beta 0. Each side runs in its own process; the first
# step is a warm-up and the next three are averaged. Makes a throwaway virtual environment outside the
# repository. Usage: [PROMPT_TOKENS=N] [BETAS="0.04 0"] [PRECISIONS="float32 bf16"]
# scripts/bench_train.sh [STEPS [MODEL...]]
# (models: qwen2-27m smollm2-135m; prompts are 32 tokens unless PROMPT_TOKENS says otherwise;
# precision bf16 is `--precision bf16` here and `bf16=True` (autocast) for TRL)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${TMPDIR:-/tmp}/grpo-bench-train"
venv="${TMPDIR:-/tmp}/grpo-bench-trl-venv"
steps="${1:-4}"
shift || true
models="${*:-qwen2-27m smollm2-135m}"
rm -rf "$work" && mkdir -p "$work"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
wheel=$(ls /opt/wheels/torch-*.whl 2>/dev/null | head -1 || true)
"$venv/bin/pip" install -q ${wheel:-torch} transformers==5.23.0 trl==1.16.0 safetensors datasets accelerate
swift build -c release --product grpo >/dev/null && swift build -c release --product grpo-bench >/dev/null
.build/release/grpo-bench machine
.build/release/grpo-bench train-setup "$work" "${PROMPT_TOKENS:-32}"

cat >"$work/trl_step.py" <<'PY'
import json, re, sys, time
import torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

folder, data, beta, steps, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
bf16 = sys.argv[6] == "bf16"
torch.set_num_threads(2)
digit = re.compile(r"(?s).*[0-9].*")

def has_digit(completions, **kwargs):  # the `format` reward with pattern .*[0-9].* on the Swift side
    return [1.0 if digit.fullmatch(c) else 0.0 for c in completions]

timers = {"generation": 0.0, "reference": 0.0, "optimizer": 0.0}
def timed(name, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            timers[name] += time.perf_counter() - start
    return wrapper

class StepTimer(TrainerCallback):
    def __init__(self):
        self.steps = []
    def on_step_begin(self, args, state, control, **kw):
        for k in timers: timers[k] = 0.0
        self.start = time.perf_counter()
    def on_pre_optimizer_step(self, args, state, control, **kw):
        self.opt = time.perf_counter()
    def on_optimizer_step(self, args, state, control, **kw):
        timers["optimizer"] += time.perf_counter() - self.opt
    def on_step_end(self, args, state, control, **kw):
        self.steps.append(dict(total=time.perf_counter() - self.start, **timers))

model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
tokenizer = AutoTokenizer.from_pretrained(folder)
config = GRPOConfig(
    output_dir=out, per_device_train_batch_size=32, num_generations=8, gradient_accumulation_steps=1,
    steps_per_generation=1, max_completion_length=128, temperature=1.0, beta=beta, loss_type="dapo",
    learning_rate=1e-6, max_steps=steps, use_cpu=True, bf16=bf16, fp16=False, report_to="none",
    logging_steps=1, save_strategy="no", seed=1, dataloader_num_workers=0)
trainer = GRPOTrainer(model=model, reward_funcs=has_digit, args=config,
                      train_dataset=load_dataset("json", data_files=data, split="train"), processing_class=tokenizer)
model.generate = timed("generation", model.generate)
original = trainer._get_per_token_logps_and_entropies
def per_token(m, *a, **kw):
    if not torch.is_grad_enabled():
        return timed("reference", original)(m, *a, **kw)
    return original(m, *a, **kw)
trainer._get_per_token_logps_and_entropies = per_token
timer = StepTimer()
trainer.add_callback(timer)
trainer.train()
print(json.dumps(timer.steps[1:]))
PY

cat >"$work/driver.py" <<'PY'
import json, os, sys
work, steps, grpo, models = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split()
betas = os.environ.get("BETAS", "0.04 0").split()
precisions = os.environ.get("PRECISIONS", "float32").split()

sys.path.insert(0, "scripts")  # the driver runs from the repository's root
from bench_run import run

def mean(rows, key):
    return sum(r[key] for r in rows) / len(rows)

print(f"{'model':14} {'beta':>5} {'prec':>7} | {'side':6} {'s/step':>7} {'gen':>6} {'ref':>6} {'policy':>7} {'optim':>6} {'peak RSS':>9}")
for name in models:
  for precision in precisions:
    for beta in betas:
        folder, out = f"{work}/{name}", f"{work}/out-{name}-{beta}-{precision}"
        _, swift_rss = run([grpo, "train", "--model", folder, "--dataset", f"{work}/prompts.jsonl", "--output_dir", out,
                            "--num_generations", "8", "--per_step_prompts", "4", "--max_completion_length", "128",
                            "--temperature", "1", "--beta", beta, "--loss_type", "dapo", "--learning_rate", "1e-6",
                            "--max_steps", str(steps), "--save_steps", "100000", "--logging_steps", "1", "--rewards", "format",
                            "--log_completions_steps", "0", "--seed", "1", "--precision", precision])
        rows = [json.loads(l) for l in open(f"{out}/metrics.jsonl")][1:]
        s = dict(total=mean(rows, "step_seconds"), generation=mean(rows, "time/generation"),
                 reference=mean(rows, "time/reference"), optimizer=mean(rows, "time/optimizer"))
        s["policy"] = mean(rows, "time/policy")
        mismatch = (mean(rows, "sampling/sampling_logp_difference/mean"),
                    max(r["sampling/sampling_logp_difference/max"] for r in rows))
        text, trl_rss = run([sys.executable, f"{work}/trl_step.py", folder, f"{work}/prompts.jsonl", beta, str(steps),
                             f"{work}/trl-{name}-{beta}-{precision}", precision])
        trl_rows = json.loads(text.strip().split("\n")[-1])
        t = {k: mean(trl_rows, k) for k in ["total", "generation", "reference", "optimizer"]}
        t["policy"] = t["total"] - t["generation"] - t["reference"] - t["optimizer"]
        for side, r, rss in [("swift", s, swift_rss), ("trl", t, trl_rss)]:
            print(f"{name:14} {beta:>5} {precision:>7} | {side:6} {r['total']:7.2f} {r['generation']:6.2f} {r['reference']:6.2f} "
                  f"{r['policy']:7.2f} {r['optimizer']:6.2f} {rss / 2**30:7.2f} GiB")
        print(f"{name:14} {beta:>5} {precision:>7} | ratio  {t['total'] / s['total']:6.2f}x faster per step, "
              f"{swift_rss / trl_rss:.2f} of TRL's peak memory; sampler vs trainer |d logp| mean "
              f"{mismatch[0]:.2e}, max {mismatch[1]:.2e}", flush=True)
PY
"$venv/bin/python" "$work/driver.py" "$work" "$steps" "$PWD/.build/release/grpo" "$models"
