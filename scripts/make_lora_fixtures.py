#!/usr/bin/env python3
"""Writes Tests/ModelsTests/Fixtures/<model>/lora with PEFT (developers only; committed, so
`swift test` needs no Python).

    /tmp/fixtures-venv/bin/pip install /opt/wheels/torch-*.whl transformers==5.23.0 peft
    /tmp/fixtures-venv/bin/python scripts/make_lora_fixtures.py
    /tmp/fixtures-venv/bin/python scripts/make_lora_fixtures.py --check-trained BASE ADAPTER
        # loads an adapter grpo-swift trained on the fixture model BASE with PEFT and prints the
        # log-probs of BASE/inputs.json's sequences, for comparison with grpo's

For each fixture model (made by make_fixtures.py), a LoRA adapter on every linear projection
(r 4, alpha 8, rsLoRA off; B random, so the adapter changes the model) saved with
`save_pretrained` into lora/, and lora/expected.safetensors:
  logp_t1          log p(token i+1 | tokens ..i) of inputs.json's sequences with the adapter, packed
  grad.<tensor>    d/dθ of Σ w · logp at inputs.json's gradient temperature, for every adapter tensor
  merged.<name>    every projection weight of merge_and_unload()
"""
import json
import os
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

from make_fixtures import logp_of  # the same log-probabilities the model fixtures record

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures")
NAMES = ["llama-gqa", "llama-tied", "llama3-rope", "qwen2-bias", "qwen3-qknorm", "mistral"]
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make(name, seed):
    folder = os.path.join(FIXTURES, name)
    inputs = json.load(open(os.path.join(folder, "inputs.json")))
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=PROJECTIONS,
                        init_lora_weights=False, task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    model.peft_config["default"].base_model_name_or_path = name  # not this machine's path
    out = os.path.join(folder, "lora")
    model.save_pretrained(out)
    os.remove(os.path.join(out, "README.md"))  # PEFT's model card template
    tensors = {"logp_t1": logp_of(model, inputs["sequences"], 1.0).detach()}
    w = torch.tensor(inputs["gradient_weights"])
    loss = (w * logp_of(model, inputs["sequences"], inputs["gradient_temperature"])).sum()
    loss.backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            # PEFT's file names drop the adapter name: ...q_proj.lora_A.default.weight -> ...q_proj.lora_A.weight
            tensors["grad." + pname.replace(".default", "")] = p.grad.detach()
    merged = model.merge_and_unload()
    for pname, p in merged.named_parameters():
        if any(f".{m}." in pname for m in PROJECTIONS) and pname.endswith(".weight"):
            tensors["merged." + pname] = p.detach()
    save_file({k: v.float().contiguous() for k, v in tensors.items()}, os.path.join(out, "expected.safetensors"))
    print(f"{name}: {sum(1 for k in tensors if k.startswith('grad.'))} adapter tensors")


def check_trained(base_folder, adapter):
    base = AutoModelForCausalLM.from_pretrained(base_folder, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter)
    inputs = json.load(open(os.path.join(base_folder, "inputs.json")))
    print(json.dumps(logp_of(model, inputs["sequences"], 1.0).tolist()))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--check-trained"]:
        check_trained(sys.argv[2], sys.argv[3])
    else:
        for i, name in enumerate(NAMES):
            make(name, 100 + i)
