#!/usr/bin/env bash
# Seconds per GRPO step on one machine: 1 process x 2 threads against `mpirun -np 2` x 1 thread each,
# and the bytes each rank sends per step (printed, nothing asserted). The model is the 27M Qwen2
# benchmark shape (random weights), 4 prompts x 8 completions x 128 tokens, beta 0.04.
# Usage: scripts/bench_mpi.sh [WORK_DIR] [STEPS]
# With NET_RATE set (for example NET_RATE=1gbit or 10gbit; root and tc needed) the 2-rank job also
# runs over TCP on the loopback device limited to that rate (a token-bucket qdisc on lo, removed at
# exit), to measure the all-reduce as it would be between two machines on such a network.
# Each 2-rank job runs twice: with the all-reduce in 25 MiB buckets started during the backward
# (the default) and as one all-reduce after it (`--ddp_bucket_cap_mb` above the model's size).
# FORWARD_BATCH_TOKENS (default 1024, the trainer's) sets the chunk: only the step's last
# chunk's backward can overlap the all-reduce.
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
    --learning_rate 1e-6 --max_steps "$steps" --save_steps 1000 --logging_steps 1 --seed 1
    --forward_batch_tokens "${FORWARD_BATCH_TOKENS:-1024}" --overwrite_output_dir true)
one_bucket=(--ddp_bucket_cap_mb 1048576)
ranks=(mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1)
tcp=(--mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include lo)
OMP_NUM_THREADS=2 "$grpo" "${args[@]}" --output_dir "$work/one" >/dev/null 2>&1
"${ranks[@]}" "$grpo" "${args[@]}" --output_dir "$work/two" >/dev/null 2>&1
"${ranks[@]}" "$grpo" "${args[@]}" "${one_bucket[@]}" --output_dir "$work/two-after" >/dev/null 2>&1
runs="one two two-after"
if [ -n "${NET_RATE:-}" ]; then
    trap 'tc qdisc del dev lo root 2>/dev/null || true' EXIT
    tc qdisc replace dev lo root tbf rate "$NET_RATE" burst 1mb latency 100ms
    "${ranks[@]}" "${tcp[@]}" "$grpo" "${args[@]}" --output_dir "$work/net" >/dev/null 2>&1
    "${ranks[@]}" "${tcp[@]}" "$grpo" "${args[@]}" "${one_bucket[@]}" --output_dir "$work/net-after" >/dev/null 2>&1
    tc qdisc del dev lo root
    runs="$runs net net-after"
fi
python3 - "$work" "${NET_RATE:-}" $runs <<'PY'
import json, sys
print("GRPO step, qwen2-27m (27M parameters), 4 prompts x 8 completions x 128 tokens, beta 0.04; mean of steps 2 on:")
labels = {"one": "1 process x 2 threads", "two": "2 ranks x 1 thread, buckets during the backward",
          "two-after": "2 ranks x 1 thread, one all-reduce after the backward",
          "net": f"2 ranks, TCP at {sys.argv[2]}, buckets during the backward",
          "net-after": f"2 ranks, TCP at {sys.argv[2]}, one all-reduce after the backward"}
for run in sys.argv[3:]:
    label = labels[run]
    rows = [json.loads(l) for l in open(f"{sys.argv[1]}/{run}/metrics.jsonl")][1:]
    mean = lambda key: sum(r.get(key, 0.0) for r in rows) / len(rows)
    extra = ""
    if run != "one":
        extra = (f"; waiting for the all-reduce {mean('time/allreduce'):.3f} s, "
                 f"{mean('distributed/bytes_sent') / 2**20:.1f} MiB sent per rank per step")
    print(f"  {label} step {mean('step_seconds'):.2f} s (generation {mean('time/generation'):.2f} s, "
          f"reference {mean('time/reference'):.2f} s, policy {mean('time/policy'):.2f} s){extra}")
PY
