#!/usr/bin/env bash
# Rollout throughput of grpo-swift and Hugging Face transformers' generate on the same model folders,
# in one run: 4 prompts x 8 completions x 128 new tokens (32-token prompts, EOS suppressed, sampling
# at temperature 1, KV cache, 2 threads), grpo-swift in each of PRECISIONS (default float32,bf16;
# bf16 where the CPU has it) and transformers in float32, with the speed-ups over transformers.
# Makes a throwaway virtual environment outside the repository (or uses VENV).
set -euo pipefail
cd "$(dirname "$0")/.."
work="${TMPDIR:-/tmp}/grpo-bench-rollout"
venv="${VENV:-${TMPDIR:-/tmp}/grpo-bench-transformers-venv}"
precisions="${PRECISIONS:-float32,bf16}"
mkdir -p "$work"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
[ -n "${VENV:-}" ] || "$venv/bin/pip" install -q torch transformers==5.23.0 safetensors
swift build -c release --product grpo-bench >/dev/null
.build/release/grpo-bench machine
.build/release/grpo-bench rollout "$work" all "$precisions" | tee "$work/swift.txt"
"$venv/bin/python" - "$work" <<'PY'
import json, resource, sys, time
import torch
from transformers import AutoModelForCausalLM
torch.set_num_threads(2)
for name in ["qwen2-27m", "smollm2-135m"]:
    folder = f"{sys.argv[1]}/{name}"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    prompts = torch.tensor(json.load(open(f"{folder}/prompts.json")))
    kwargs = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, num_return_sequences=8, eos_token_id=None,
                  pad_token_id=0, use_cache=True)
    with torch.no_grad():
        model.generate(prompts, max_new_tokens=4, min_new_tokens=4, **kwargs)
        elapsed = float("inf")
        for _ in range(2):  # best of two timed runs, as the Swift side
            start = time.perf_counter()
            out = model.generate(prompts, max_new_tokens=128, min_new_tokens=128, **kwargs)
            elapsed = min(elapsed, time.perf_counter() - start)
    produced = (out.shape[1] - prompts.shape[1]) * out.shape[0]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"hf     {name} float32  {produced:5d} tokens in {elapsed:6.2f} s  {produced / elapsed:7.0f} tokens/s  peak RSS {rss:.0f} MiB")
    for line in open(f"{sys.argv[1]}/swift.txt"):
        fields = line.split()
        if fields[1] == name:
            print(f"  grpo-swift {fields[2]} vs transformers float32: {float(fields[8]) / (produced / elapsed):.2f}x tokens/s")
PY
