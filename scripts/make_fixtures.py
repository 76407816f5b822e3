#!/usr/bin/env python3
"""Regenerates Tests/ModelsTests/Fixtures with PyTorch + Hugging Face transformers (developers only).

Never run by tests or CI: the fixtures it writes are committed, so `swift test` needs no Python.

    python3 -m venv /tmp/fixtures-venv
    /tmp/fixtures-venv/bin/pip install torch==2.15.0 transformers==5.23.0 safetensors==0.8.0
    /tmp/fixtures-venv/bin/python scripts/make_fixtures.py            # write fixtures
    /tmp/fixtures-venv/bin/python scripts/make_fixtures.py --check-saved  # after `swift build`:
        # converts each fixture with `grpo convert` and checks transformers loads it with identical logits

Each fixture folder holds a tiny random model (config.json + safetensors, as save_pretrained writes
them), inputs.json (sequences of different lengths, rows whose logits are recorded, the gradient
weights w) and expected.safetensors:
  logp_t1, logp_t07   log p(token i+1 | tokens ..i) for every sequence, packed, at temperature 1 and 0.7
  logits              the logits of the packed rows listed in inputs.json
  grad.<name>         d/dθ of Σ w · logp_t07 for every parameter (the training interface's contract)
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
import transformers
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures")
VOCAB = 96
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=112, num_hidden_layers=2,
              num_attention_heads=4, max_position_embeddings=256, rms_norm_eps=1e-6)

# name -> (model class, config, save dtype, sharded?, classic config keys?)
MODELS = {
    "llama-gqa": (LlamaForCausalLM, LlamaConfig(**COMMON, num_key_value_heads=2, rope_theta=10000.0), "float32", True, False),
    "llama-tied": (LlamaForCausalLM, LlamaConfig(**COMMON, num_key_value_heads=4, tie_word_embeddings=True,
                                                 attention_bias=True), "float16", False, False),
    "llama3-rope": (LlamaForCausalLM, LlamaConfig(**COMMON, num_key_value_heads=2, rope_theta=500000.0,
                                                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                                "high_freq_factor": 4.0,
                                                                "original_max_position_embeddings": 32}),
                    "float32", False, True),
    "qwen2-bias": (Qwen2ForCausalLM, Qwen2Config(**COMMON, num_key_value_heads=2, rope_theta=1000000.0,
                                                 tie_word_embeddings=False), "float32", False, False),
    "qwen3-qknorm": (Qwen3ForCausalLM, Qwen3Config(**COMMON, num_key_value_heads=2, head_dim=24,
                                                   tie_word_embeddings=True), "bfloat16", False, False),
    "mistral": (MistralForCausalLM, MistralConfig(**COMMON, num_key_value_heads=1, sliding_window=None), "float32", False, False),
}
LENGTHS = [7, 19, 3, 40]
GRAD_TEMPERATURE = 0.7


def randomize(model, generator, dtype, scale=0.08):
    """Weights large enough that every component matters (matrices N(0, scale)); rounded to the saved
    dtype so the float32 reference and the loaded file hold the same numbers."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=generator))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(scale * torch.randn(p.shape, generator=generator))
            p.copy_(p.to(getattr(torch, dtype)).to(torch.float32))


def classic_config(path):
    """Rewrites a transformers-5 config.json in the older style (rope_theta / rope_scaling / torch_dtype)."""
    with open(path) as f:
        config = json.load(f)
    rope = config.pop("rope_parameters")
    config["rope_theta"] = rope.pop("rope_theta")
    config["rope_scaling"] = {"type" if k == "rope_type" else k: v for k, v in rope.items()}
    config["torch_dtype"] = config.pop("dtype", "float32")
    with open(path, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)


def logp_of(model, sequences, temperature):
    out = []
    for seq in sequences:
        ids = torch.tensor([seq])
        logits = model(input_ids=ids).logits[0].float()
        logp = torch.log_softmax(logits / temperature, dim=-1)
        out.append(logp[:-1].gather(1, ids[0, 1:, None])[:, 0])
    return torch.cat(out)


def make(name, generator):
    cls, config, dtype, sharded, classic = MODELS[name]
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = cls(config).float().eval()
    randomize(model, generator, dtype)
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    model.to(getattr(torch, dtype)).save_pretrained(folder, safe_serialization=True,
                                                    max_shard_size="100KB" if sharded else "5GB")
    model.float()
    if classic:
        classic_config(os.path.join(folder, "config.json"))
    for extra in ("generation_config.json",):
        path = os.path.join(folder, extra)
        if os.path.exists(path):
            os.remove(path)
    # The model transformers loads back from the folder is the reference (checks the files too).
    reloaded = cls.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    sequences = [torch.randint(0, VOCAB, (n,), generator=generator).tolist() for n in LENGTHS]
    offsets = [0]
    for n in LENGTHS:
        offsets.append(offsets[-1] + n)
    logit_rows = [0, 5, offsets[1] + 18, offsets[3] + 2, offsets[3] + 39]
    tensors = {}
    with torch.no_grad():
        tensors["logp_t1"] = logp_of(reloaded, sequences, 1.0)
        tensors["logp_t07"] = logp_of(reloaded, sequences, 0.7)
        all_logits = torch.cat([reloaded(input_ids=torch.tensor([s])).logits[0] for s in sequences])
        tensors["logits"] = all_logits[logit_rows].contiguous()
    w = torch.randn(tensors["logp_t07"].shape, generator=generator)
    loss = (w * logp_of(reloaded, sequences, GRAD_TEMPERATURE)).sum()
    loss.backward()
    for pname, p in reloaded.named_parameters():
        tensors["grad." + pname] = p.grad.detach().clone()
    if reloaded.config.tie_word_embeddings:
        assert "grad.lm_head.weight" not in tensors
    save_file({k: v.float().contiguous() for k, v in tensors.items()}, os.path.join(folder, "expected.safetensors"))
    with open(os.path.join(folder, "inputs.json"), "w") as f:
        json.dump({"sequences": sequences, "logit_rows": logit_rows, "gradient_weights": w.tolist(),
                   "gradient_temperature": GRAD_TEMPERATURE,
                   "made_with": {"torch": torch.__version__, "transformers": transformers.__version__}}, f)
    print(f"{name}: {sum(p.numel() for p in reloaded.parameters())} parameters, {len(tensors)} expected tensors")


def check_saved(grpo):
    """A model grpo saves (in several dtypes) loads in transformers with the logits of the original."""
    worst = 0.0
    for name, (cls, _, dtype, _, _) in MODELS.items():
        folder = os.path.join(OUT, name)
        original = cls.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
        ids = torch.tensor([json.load(open(os.path.join(folder, "inputs.json")))["sequences"][3]])
        for out_dtype in ("f32", dtype.replace("float", "f").replace("bf", "bf")):
            with tempfile.TemporaryDirectory() as out:
                subprocess.run([grpo, "convert", "--model", folder, "--output", out, "--dtype", out_dtype], check=True,
                               stdout=subprocess.DEVNULL)
                saved = cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
                with torch.no_grad():
                    diff = (saved(input_ids=ids).logits - original(input_ids=ids).logits).abs().max().item()
                print(f"{name} saved as {out_dtype}: max |logit diff| = {diff:.3g}")
                worst = max(worst, diff)
    if worst != 0.0:
        sys.exit(f"saved models changed the logits (max diff {worst})")
    print("every saved model loads in transformers with identical logits")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--check-saved", action="store_true")
    parser.add_argument("--grpo", default=os.path.join(ROOT, ".build", "debug", "grpo"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.check_saved:
        check_saved(args.grpo)
    else:
        generator = torch.Generator().manual_seed(1234)
        for name in MODELS:
            make(name, generator)
