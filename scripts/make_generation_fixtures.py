#!/usr/bin/env python3
"""Greedy ids from Hugging Face `generate(do_sample=False)` on the model fixtures (developers only).

Writes Tests/ModelsTests/Fixtures/<model>/generate.json: prompts and the ids transformers generates
for each, with the EOS token disabled so every run is max_new_tokens long.
    /tmp/fixtures-venv/bin/python scripts/make_generation_fixtures.py
"""
import json
import os

import torch
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures")
PROMPTS = [[5, 17, 3], [40, 2, 2, 9, 11, 60, 1, 33, 71, 12], [7]]
NEW_TOKENS = 12

if __name__ == "__main__":
    torch.set_num_threads(2)
    for name in sorted(os.listdir(FIXTURES)):
        folder = os.path.join(FIXTURES, name)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
        outputs = []
        for prompt in PROMPTS:
            with torch.no_grad():
                ids = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=NEW_TOKENS,
                                     min_new_tokens=NEW_TOKENS, eos_token_id=None, pad_token_id=0)
            outputs.append(ids[0, len(prompt):].tolist())
        with open(os.path.join(folder, "generate.json"), "w") as f:
            json.dump({"prompts": PROMPTS, "max_new_tokens": NEW_TOKENS, "greedy": outputs}, f)
        print(name, outputs[0])
