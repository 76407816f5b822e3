#!/usr/bin/env python3
"""Regenerates Tests/TokenizersTests/Fixtures with Hugging Face `tokenizers` (developers only).

    /tmp/fixtures-venv/bin/pip install tokenizers==0.23.3
    /tmp/fixtures-venv/bin/python scripts/make_tokenizer_fixtures.py [--unicode-exact]

Trains, on local text (Python's own standard library sources plus multilingual sentences written
here), one tokenizer per family and writes, for each, `<name>.json` (the tokenizer.json) and
`<name>.expected.json`: for every text of a hard corpus, the ids with and without special tokens
and the decoded text (with and without skipping special tokens). `unicode-exact` is built by hand
instead: a SentencePiece-style vocabulary holding canonically equivalent tokens, with its own corpus
(`--unicode-exact` writes only it).
"""
import glob
import json
import os
import random
import sys
import sysconfig

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "TokenizersTests", "Fixtures")

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                  r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                 r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")

MULTILINGUAL = [
    "The quick brown fox jumps over the lazy dog. It's 3.14159 and they'll say we're done, I'd think.",
    "Größe, Straße, naïve café, résumé, Ångström, ÆØÅ æøå, Ελληνικά κείμενα, русский текст.",
    "日本語のテキストです。中文文本，包括标点符号。한국어 문장입니다.",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ and math ∑ ∫ √ ≠ ≤ ∞.",
    "def f(x):\n    return x ** 2  # square\n\tif x >= 10: print(f'{x:08d}')\n",
    "Numbers: 1 12 123 1234 12345 1,234,567.89 -42 +7 3/4 2^10 1e-9 0x1F",
    "    indented\n\n\nmany newlines\r\nwindows line\r\n   trailing spaces   ",
]

CORPUS = [
    "",
    "a",
    "Hello world",
    " Hello world",
    "Hello  world   with   spaces",
    "héllo wörld, ça va? Ñandú. Zürich",
    "e\u0301 combining: cafe\u0301 n\u0303 a\u0308\u0304",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ﬁ ﬂ ½",
    "中文：你好，世界！日本語：こんにちは。한국어: 안녕하세요",
    "emoji 😀😃 👍🏽 family 👨‍👩‍👧‍👦 flag 🇯🇵 heart ❤️ zwj 🏳️‍🌈",
    "tabs\tand\t\ttabs\nnew\n\nlines\r\n\r\ncrlf \n \n  end  ",
    "   leading and trailing   ",
    "\n\n\n",
    "digits 0 12 345 6789 01234567890123456789 3.14159 1,000,000",
    "I'm you're he's we've they'll she'd IT'S WE'RE YOU'VE Don'T",
    "def main():\n    x = [i**2 for i in range(10)]\n    return {'a': x}  # comment\n",
    "<|endoftext|>special in text<|endoftext|> and <|im_start|>user\nhi<|im_end|>",
    "<s>sentencepiece</s> style <unk> tokens",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
    "URL https://example.com/path?q=1&b=2#frag and email a.b@c.org",
    "mixed123abc456 αβγ123 ٣٤٥ arabic digits ١٢٣",
    "ſ long s and Kelvin K sign, 's 'S 'ſ",
    "\u00a0nbsp\u2003em space\u3000ideographic space\u200bzero width",
    "!!!??? ... --- *** ### $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}}",
    "ℌ𝔢𝔩𝔩𝔬 𝕄𝕒𝕥𝕙 𝒮𝒸𝓇𝒾𝓅𝓉",
]


def training_text():
    lib = sysconfig.get_paths()["stdlib"]
    files = sorted(glob.glob(os.path.join(lib, "*.py")))[:120]
    texts = []
    for path in files:
        with open(path, encoding="utf-8", errors="ignore") as f:
            texts.append(f.read())
    texts += MULTILINGUAL * 50
    return texts


def long_document(seed=7, size=100_000):
    rng = random.Random(seed)
    pieces = MULTILINGUAL + CORPUS[2:]
    out = []
    total = 0
    while total < size:
        p = rng.choice(pieces)
        out.append(p)
        total += len(p)
    return " ".join(out)


def byte_level_trainer(vocab, special):
    return trainers.BpeTrainer(vocab_size=vocab, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                               show_progress=False)


def gpt2():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    tok.train_from_iterator(training_text(), byte_level_trainer(2000, ["<|endoftext|>"]))
    return tok


def llama3():
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    special = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok.train_from_iterator(training_text(), byte_level_trainer(2500, special))
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    return tok


def qwen2():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(training_text(), byte_level_trainer(2200, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]))
    tok.add_tokens([AddedToken("<think>", special=False, normalized=False),
                    AddedToken("</think>", special=False, normalized=False),
                    AddedToken("lstrip_tok", lstrip=True, rstrip=False, special=False),
                    AddedToken("word", single_word=True, special=False)])
    return tok


def sentencepiece_like(metaspace):
    bytes_tokens = [f"<0x{i:02X}>" for i in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    if metaspace:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    else:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=1800, special_tokens=["<unk>", "<s>", "</s>"] + bytes_tokens,
                                  show_progress=False, limit_alphabet=400)
    # Train on text that looks like the normalised input, as sentencepiece models see it.
    tok.train_from_iterator(training_text(), trainer)
    if metaspace:
        tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False),
                                         decoders.ByteFallback(), decoders.Fuse()])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A </s> $B",
                                                       special_tokens=[("<s>", 1), ("</s>", 2)])
    return tok


def digits_split():
    """Exercises Digits, Split with String patterns and each behaviour, and NFKC + Lowercase-free Sequence."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(r"\s+"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(" ", behavior="merged_with_next"),
        pre_tokenizers.Split(Regex(r"[.,!?]"), behavior="merged_with_previous"),
        pre_tokenizers.Split("-", behavior="removed"),
        pre_tokenizers.Split(Regex(r"[a-z]+"), behavior="isolated", invert=True),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(training_text(), byte_level_trainer(1200, ["<pad>"]))
    return tok


FAMILIES = {
    "gpt2": gpt2,
    "llama3": llama3,
    "qwen2": qwen2,
    "sentencepiece": lambda: sentencepiece_like(False),
    "metaspace": lambda: sentencepiece_like(True),
    "digits-split": digits_split,
}


# Tokens that Swift's String equality (canonical equivalence) would merge: each pair is two
# distinct vocabulary entries in tokenizers, as U+03AC / U+1F71 are in the Llama-2 vocabulary.
EQUIVALENT_PAIRS = [
    ("\u03ac", "\u1f71"),            # GREEK SMALL LETTER ALPHA WITH TONOS / WITH OXIA
    ("\u00e9", "e\u0301"),           # precomposed / decomposed e acute
    ("\u00c5", "\u212b"),            # A with ring / ANGSTROM SIGN
    ("\u2126", "\u03a9"),            # OHM SIGN / GREEK CAPITAL OMEGA
    ("\u212a", "K"),                 # KELVIN SIGN / K
    ("\u1e69", "s\u0323\u0307"),     # s with dot below and dot above, two spellings
]

EXACT_CORPUS = [
    "\u03ac \u1f71 \u03ac\u1f71",
    "\u1f71\u03ac \u1f71",
    "caf\u00e9 cafe\u0301 caf\u00e9",
    "\u00c5ngstr\u00f6m \u212bngstr\u00f6m A\u030angstr\u00f6m",
    "\u2126 \u03a9 \u2126\u03a9",
    "273\u212a 273K",
    "\u1e69 s\u0323\u0307 s\u0307\u0323",
    "\u200d\u200d \u200d a\u200d\u200db",
    "\ufeffstart with a byte order mark",
    "\ufeff\ufeff two, and one x\ufeffy inside",
    "a \u0301b space then combining \u0301",
    "\u2581\u0301 marker then combining",
    "  two spaces \u00e9 e\u0301",
]


def unicode_exact():
    """A SentencePiece-style (Llama-2) BPE whose vocabulary holds canonically equivalent tokens."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for i in range(256):
        vocab[f"<0x{i:02X}>"] = len(vocab)
    def add(token):
        if token not in vocab:
            vocab[token] = len(vocab)
    for ch in "\u2581abcdefghijklmnopqrstuvwxyzAKS0123456789,\u00f6\u0301\u0307\u0323\u030a\u200d\ufeff":
        add(ch)
    for a, b in EQUIVALENT_PAIRS:
        for token in (a, b):
            for ch in token:
                add(ch)
    merges = []
    def merge(a, b):
        add(a + b)
        merges.append((a, b))
    merge("e", "\u0301")
    merge("A", "\u030a")
    merge("s", "\u0323")
    merge("s\u0323", "\u0307")
    merge("\u200d", "\u200d")
    merge("\u2581", "\ufeff")
    merge("\u2581", "\u0301")
    for a, b in EQUIVALENT_PAIRS:
        merge("\u2581", a)
        merge("\u2581", b)
    for a, b in [("c", "a"), ("ca", "f"), ("caf", "\u00e9"), ("caf", "e\u0301"), ("\u2581", "caf\u00e9"),
                 ("\u2581", "cafe\u0301"), ("s", "t"), ("r", "t"), ("st", "art"), ("a", "r"), ("ar", "t")]:
        merge(a, b)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A </s> $B",
                                                       special_tokens=[("<s>", 1), ("</s>", 2)])
    tok.add_tokens([AddedToken("<\u03ac>", special=False, normalized=False),
                    AddedToken("<\u1f71>", special=False, normalized=False)])
    return tok


def write_unicode_exact():
    tok = unicode_exact()
    path = os.path.join(OUT, "unicode-exact.json")
    tok.save(path)
    tok = Tokenizer.from_file(path)
    texts = EXACT_CORPUS + ["<\u03ac> <\u1f71><\u03ac>"]
    cases = []
    for text in texts:
        ids = tok.encode(text, add_special_tokens=True).ids
        cases.append({"text": text, "ids": ids, "ids_no_special": tok.encode(text, add_special_tokens=False).ids,
                      "decoded": tok.decode(ids, skip_special_tokens=False),
                      "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
    tokens = [tok.id_to_token(i) for i in range(tok.get_vocab_size())]
    with open(os.path.join(OUT, "unicode-exact.expected.json"), "w", encoding="utf-8") as f:
        json.dump({"cases": cases, "tokens": tokens}, f, ensure_ascii=False)
    print(f"unicode-exact: vocab {tok.get_vocab_size()}, {len(cases)} texts")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    write_unicode_exact()
    if sys.argv[1:] == ["--unicode-exact"]:
        sys.exit(0)
    texts = CORPUS + [long_document()]
    with open(os.path.join(OUT, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False)
    for name, make in FAMILIES.items():
        tok = make()
        tok.save(os.path.join(OUT, f"{name}.json"))
        tok = Tokenizer.from_file(os.path.join(OUT, f"{name}.json"))
        cases = []
        for text in texts:
            ids = tok.encode(text, add_special_tokens=True).ids
            plain = tok.encode(text, add_special_tokens=False).ids
            cases.append({"ids": ids, "ids_no_special": plain,
                          "decoded": tok.decode(ids, skip_special_tokens=False),
                          "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
        with open(os.path.join(OUT, f"{name}.expected.json"), "w", encoding="utf-8") as f:
            json.dump(cases, f, ensure_ascii=False)
        print(f"{name}: vocab {tok.get_vocab_size()}, {sum(len(c['ids']) for c in cases)} ids")
