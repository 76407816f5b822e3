#!/usr/bin/env python3
"""Regenerates Tests/RewardsTests/Fixtures with PyTorch + transformers + tokenizers (developers only).

Never run by tests or CI: the fixtures it writes are committed, so `swift test` needs no Python.

    python3 -m venv /tmp/fixtures-venv
    /tmp/fixtures-venv/bin/pip install torch transformers==5.23.0 safetensors jinja2
    /tmp/fixtures-venv/bin/python scripts/make_reward_fixtures.py

Each folder is a tiny random reward model as save_pretrained writes one (a *ForSequenceClassification
with num_labels 1, config.json, model.safetensors, tokenizer.json, tokenizer_config.json), the four
architectures the project loads, with a byte-level BPE tokenizer trained here. expected.json holds
prompt + completion pairs and the score transformers gives each, computed the way TRL's GRPOTrainer
scores a reward model: texts are prompt + completion (for chat prompts, the tokenizer's chat template
over the messages and the completion as the assistant's turn), tokenized together with right padding
and no added special tokens, the pad token the tokenizer's (else its eos token, which TRL then sets
as the model's pad_token_id), and the score `logits[:, 0]` at the last token that is not padding.
Some completions end in the pad token itself, so the pooling's skipping of it is checked too.
"""
import json
import os
import shutil

import tokenizers
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from make_fixtures import randomize
from transformers import (LlamaConfig, LlamaForSequenceClassification, MistralConfig,
                          MistralForSequenceClassification, PreTrainedTokenizerFast, Qwen2Config,
                          Qwen2ForSequenceClassification, Qwen3Config, Qwen3ForSequenceClassification)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "RewardsTests", "Fixtures")

CORPUS = [
    "What is 12 + 30? The answer is 42.",
    "Let me think step by step. First add the tens, then the ones.",
    "<think>7 times 6 is 42</think><answer>42</answer>",
    "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b\n",
    "print(sum(range(10)))",
    "You are a helpful assistant. Answer with a number.",
] * 20

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

# name -> (config class, model class, extra config, special tokens: eos, pad (None: TRL uses eos), chat?)
MODELS = {
    "llama-rm": (LlamaConfig, LlamaForSequenceClassification, dict(num_key_value_heads=2), "</s>", None, False),
    "qwen2-rm": (Qwen2Config, Qwen2ForSequenceClassification, dict(num_key_value_heads=2),
                 "<|im_end|>", "<|endoftext|>", True),
    "qwen3-rm": (Qwen3Config, Qwen3ForSequenceClassification, dict(num_key_value_heads=2, head_dim=16),
                 "<|im_end|>", "<|endoftext|>", True),
    "mistral-rm": (MistralConfig, MistralForSequenceClassification, dict(num_key_value_heads=1, sliding_window=None),
                   "</s>", "<pad>", False),
}
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "</s>", "<pad>"]

PLAIN = [
    ("What is 12 + 30?", " The answer is 42."),
    ("Add 7 and 6.", " <think>7 + 6 = 13</think><answer>13</answer>"),
    ("Write a function.", "\ndef add(a, b):\n    return a + b\n"),
    ("Say something.", " fox"),
    # ending in each model's pad token: pooling skips them
    ("What is 12 + 30?", " 42</s>"),
    ("What is 12 + 30?", " 42<|endoftext|><|endoftext|>"),
    ("What is 12 + 30?", " 42<pad>"),
    ("", "print(sum(range(10)))"),
]
CHATS = [
    ([{"role": "user", "content": "What is 12 + 30?"}], "The answer is 42."),
    ([{"role": "system", "content": "You are a helpful assistant."},
      {"role": "user", "content": "Add 7 and 6."}], "<think>7 + 6 = 13</think><answer>13</answer>"),
    ([{"role": "user", "content": "Say something."}], ""),
]


def train_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=360, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def trl_scores(model, tokenizer, texts):
    """TRL's GRPOTrainer reward-model path, batched with right padding."""
    inputs = tokenizer(text=texts, return_tensors="pt", padding=True, padding_side="right",
                       add_special_tokens=False)
    with torch.inference_mode():
        logits = model(**inputs).logits[:, 0]
    ids = [tokenizer(text=t, add_special_tokens=False)["input_ids"] for t in texts]
    return logits.tolist(), ids


def make(name, tok, generator):
    config_class, model_class, extra, eos, pad, chat = MODELS[name]
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=pad)
    if chat:
        tokenizer.chat_template = CHATML
    if tokenizer.pad_token_id is None:  # as TRL does
        tokenizer.pad_token = tokenizer.eos_token
    config = config_class(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                          num_attention_heads=4, max_position_embeddings=256, rms_norm_eps=1e-6, num_labels=1,
                          pad_token_id=tokenizer.pad_token_id if pad else None, **extra)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = model_class(config).float().eval()
    randomize(model, generator, "float32", scale=0.1)
    model.save_pretrained(folder, safe_serialization=True)
    saved = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=pad)
    if chat:
        saved.chat_template = CHATML
    saved.save_pretrained(folder)
    for extra_file in ("generation_config.json", "special_tokens_map.json"):
        path = os.path.join(folder, extra_file)
        if os.path.exists(path):
            os.remove(path)
    reloaded = model_class.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    reloaded.config.pad_token_id = tokenizer.pad_token_id  # TRL's line
    cases = []
    texts = [p + c for p, c in PLAIN]
    scores, ids = trl_scores(reloaded, tokenizer, texts)
    for (p, c), s, i in zip(PLAIN, scores, ids):
        cases.append({"prompt": p, "completion": c, "score": s, "input_ids": i})
    chat_cases = []
    if chat:
        texts = [tokenizer.apply_chat_template(m + [{"role": "assistant", "content": c}], tokenize=False)
                 for m, c in CHATS]
        scores, ids = trl_scores(reloaded, tokenizer, texts)
        for (m, c), s, i, t in zip(CHATS, scores, ids, texts):
            chat_cases.append({"prompt": m, "completion": c, "score": s, "input_ids": i, "text": t})
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump({"pad_token_id": tokenizer.pad_token_id, "cases": cases, "chat_cases": chat_cases,
                   "made_with": {"torch": torch.__version__, "transformers": transformers.__version__,
                                 "tokenizers": tokenizers.__version__}}, f, indent=1)
    print(f"{name}: {sum(p.numel() for p in reloaded.parameters())} parameters, pad {tokenizer.pad_token!r}, "
          f"scores {[round(c['score'], 4) for c in cases]}")


def main():
    generator = torch.Generator().manual_seed(19)
    tok = train_tokenizer()
    os.makedirs(OUT, exist_ok=True)
    for name in MODELS:
        make(name, tok, generator)


if __name__ == "__main__":
    main()
