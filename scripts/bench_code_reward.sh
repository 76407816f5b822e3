#!/usr/bin/env bash
# The code reward's cost, printed (nothing asserted):
#   1. sandboxed runs per second through `grpo reward` (MBPP asserts, one run per completion);
#   2. a GRPO step on the 27M Qwen2 benchmark shape (random weights) with the code reward and beta
#      0.04, rewards scored first, alongside the reference pass, or as measured (the default): the
#      step, the reference pass (time/reference), what the step waited for the rewards
#      (time/rewards) and their own time when alongside (time/rewards_alongside).
# Usage: scripts/bench_code_reward.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/grpo-bench-code}"
mkdir -p "$work"
swift build -c release --product grpo >/dev/null && swift build -c release --product grpo-bench >/dev/null
.build/release/grpo-bench train-setup "$work" 32 qwen2-27m >/dev/null

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
tests = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4"]
with open(f"{work}/code_prompts.jsonl", "w") as f:
    for line in open(f"{work}/prompts.jsonl"):
        item = json.loads(line)
        f.write(json.dumps({"prompt": item["prompt"], "test_list": tests}) + "\n")
programs = ["def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b\n", "print(1/0)\n",
            "import time\ndef add(a, b):\n    return a + b\n"]
with open(f"{work}/completions.jsonl", "w") as f:
    for i in range(256):
        f.write(json.dumps({"prompt": f"p{i % 32}", "completion": programs[i % len(programs)],
                            "test_list": tests, "completion_length": 10}) + "\n")
PY
printf 'rewards: [{name: code, timeout: 5}]\n' >"$work/code.yaml"

start=$(date +%s.%N)
.build/release/grpo reward --config "$work/code.yaml" --input "$work/completions.jsonl" >"$work/scores.jsonl"
end=$(date +%s.%N)
python3 - "$start" "$end" "$work/scores.jsonl" <<'PY'
import json, sys
start, end, path = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
scores = [json.loads(l)["reward"] for l in open(path)]
print(f"grpo reward: {len(scores)} sandboxed runs in {end - start:.2f} s ({len(scores) / (end - start):.0f} runs/s), "
      f"mean score {sum(scores) / len(scores):.3f}")
PY

# Two workloads: programs that fail fast (their cost is Python's start-up: CPU) and the same with a
# test_setup_code that sleeps 0.25 s (their cost is waiting). Each run three ways: rewards first,
# alongside the reference pass, and measured (the default).
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
with open(f"{work}/code_prompts.jsonl") as f, open(f"{work}/sleep_prompts.jsonl", "w") as g:
    for line in f:
        item = json.loads(line)
        item["test_setup_code"] = "import time\ntime.sleep(0.25)"
        g.write(json.dumps(item) + "\n")
PY
for data in code sleep; do
    for alongside in 0 1 measured; do
        rm -rf "$work/run-$data-$alongside"
        env $([ "$alongside" = measured ] || echo GRPO_REWARDS_ALONGSIDE=$alongside) \
            .build/release/grpo train --model "$work/qwen2-27m" \
            --dataset "$work/${data}_prompts.jsonl" --output_dir "$work/run-$data-$alongside" \
            --rewards '[{name: code, timeout: 5}]' --num_generations 8 --per_step_prompts 4 \
            --max_completion_length 128 --temperature 1.0 --beta 0.04 --learning_rate 1e-6 --max_steps 5 \
            --save_steps 1000 --logging_steps 1 --seed 1 >/dev/null 2>&1
    done
done
python3 - "$work" <<'PY'
import json, sys
print("GRPO step, qwen2-27m, 4 prompts x 8 completions x 128 tokens, beta 0.04, code reward (mean of steps 2-5):")
for data, what in (("code", "programs failing fast"), ("sleep", "programs sleeping 0.25 s")):
    print(f" {what}:")
    for alongside, label in (("0", "rewards first    "), ("1", "rewards alongside"), ("measured", "measured (default)")):
        rows = [json.loads(l) for l in open(f"{sys.argv[1]}/run-{data}-{alongside}/metrics.jsonl")][1:]
        mean = lambda key: sum(r.get(key, 0.0) for r in rows) / len(rows)
        print(f"  {label:18} step {mean('step_seconds'):.2f} s; reference pass {mean('time/reference'):.2f} s; "
              f"waited for rewards {mean('time/rewards'):.2f} s; rewards on their own thread "
              f"{mean('time/rewards_alongside'):.2f} s")
PY
