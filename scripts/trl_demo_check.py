"""Cross-check of the demo's GRPO dynamics with TRL's GRPOTrainer (developers only, not a test).

Trains the demo's SFT model folder on its RL prompts with TRL, same knobs as `grpo demo`'s GRPO
stage, and saves the result; evaluate it with `grpo eval` to compare held-out accuracy.

    python scripts/trl_demo_check.py DEMO_DIR OUT_DIR [steps] [learning_rate] [prompts_per_step] [temperature]
"""
import json, re, sys
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

demo, out = sys.argv[1], sys.argv[2]
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 60
rate = float(sys.argv[4]) if len(sys.argv) > 4 else 1e-4
prompts = int(sys.argv[5]) if len(sys.argv) > 5 else 8
temperature = float(sys.argv[6]) if len(sys.argv) > 6 else 0.7
torch.set_num_threads(2)
answer = re.compile(r"<answer>(.*?)</answer>", re.S)

def accuracy(completions, answer_field, **kwargs):
    scores = []
    for completion, expected in zip(completions, answer_field):
        text = completion[0]["content"] if isinstance(completion, list) else completion
        found = answer.search(text)
        scores.append(1.0 if found and found.group(1).strip() == expected else 0.0)
    return scores

rows = [json.loads(line) for line in open(f"{demo}/data/rl.jsonl")]
data = Dataset.from_list([{"prompt": r["messages"], "answer_field": r["answer"]} for r in rows])
model = AutoModelForCausalLM.from_pretrained(f"{demo}/sft", dtype=torch.float32)
tokenizer = AutoTokenizer.from_pretrained(f"{demo}/sft")
config = GRPOConfig(
    output_dir=out, per_device_train_batch_size=prompts * 8, num_generations=8, steps_per_generation=1,
    max_completion_length=64, temperature=temperature, beta=0.0, loss_type="dapo", learning_rate=rate,
    lr_scheduler_type="constant", max_steps=steps, use_cpu=True, report_to="none", logging_steps=10,
    save_strategy="no", seed=1, dataloader_num_workers=0)
trainer = GRPOTrainer(model=model, reward_funcs=accuracy, args=config, train_dataset=data,
                      processing_class=tokenizer)
trainer.train()
trainer.save_model(out)
tokenizer.save_pretrained(out)
