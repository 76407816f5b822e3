#!/usr/bin/env bash
# Seconds per GRPO step on one machine: 1 process x 2 threads against `mpirun -np 2` x 1 thread each,
# and the bytes each rank sends per step (printed, nothing asserted). The model is the 27M Qwen2
# benchmark shape (random weights), 4 prompts x 8 completions x 128 tokens, beta 0.04.
# Usage: scripts/bench_mpi.sh [WORK_DIR] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/grpo-bench-mpi}"
steps="${2:-5}"
mkdir -p "$work"
swift build -c release --product grpo >/dev/null && swift build -c release --product grpo-bench >/dev/null
.build/release/grpo-bench train-setup "$work" 32 qwen2-27m >/dev/null
grpo="$PWD/.build/release/grpo"
args=(train --model "$work/qwen2-27m" --dataset "$work/prompts.jsonl" --rewards '[{name: format, pattern: ".*[0-9].*"}]'
    --num_generations 8 --per_step_prompts 4 --max_completion_length 128 --temperature 1.0 --beta 0.04
    --learning_rate 1e-6 --max_steps "$steps" --save_steps 1000 --logging_steps 1 --seed 1)
rm -rf "$work/one" "$work/two"
OMP_NUM_THREADS=2 "$grpo" "${args[@]}" --output_dir "$work/one" >/dev/null 2>&1
mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 "$grpo" "${args[@]}" --output_dir "$work/two" \
    >/dev/null 2>&1
python3 - "$work" <<'PY'
import json, sys
print("GRPO step, qwen2-27m (27M parameters), 4 prompts x 8 completions x 128 tokens, beta 0.04; mean of steps 2 on:")
for run, label in (("one", "1 process x 2 threads"), ("two", "2 ranks x 1 thread  ")):
    rows = [json.loads(l) for l in open(f"{sys.argv[1]}/{run}/metrics.jsonl")][1:]
    mean = lambda key: sum(r.get(key, 0.0) for r in rows) / len(rows)
    extra = ""
    if run == "two":
        extra = (f"; all-reduce {mean('time/allreduce'):.3f} s, "
                 f"{mean('distributed/bytes_sent') / 2**20:.1f} MiB sent per rank per step")
    print(f"  {label} step {mean('step_seconds'):.2f} s (generation {mean('time/generation'):.2f} s, "
          f"reference {mean('time/reference'):.2f} s, policy {mean('time/policy'):.2f} s){extra}")
PY
