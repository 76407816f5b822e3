#!/usr/bin/env bash
# Encoding throughput of grpo-swift's tokenizer and Hugging Face `tokenizers` (Rust) on the same
# tokenizer.json and corpus, in one run. Makes a throwaway virtual environment outside the repository.
#   scripts/bench_tokenizer.sh [TOKENIZER.json]     (default: the committed Qwen2-style fixture)
set -euo pipefail
cd "$(dirname "$0")/.."
tokenizer="${1:-Tests/TokenizersTests/Fixtures/qwen2.json}"
venv="${TMPDIR:-/tmp}/grpo-bench-tokenizers-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q "tokenizers==0.23.3"
corpus="${TMPDIR:-/tmp}/grpo-bench-corpus.json"
"$venv/bin/python" - "$corpus" <<'PY'
import glob, json, os, sys, sysconfig
lib = sysconfig.get_paths()["stdlib"]
docs, total = [], 0
for path in sorted(glob.glob(os.path.join(lib, "**", "*.py"), recursive=True)):
    text = open(path, encoding="utf-8", errors="ignore").read()
    for i in range(0, len(text), 2000):
        docs.append(text[i:i + 2000])
        total += len(text[i:i + 2000].encode())
    if total > 20_000_000:
        break
json.dump(docs, open(sys.argv[1], "w"))
print(f"corpus: {len(docs)} documents, {total / 1e6:.1f} MB of Python sources")
PY
swift build -c release --product grpo-bench >/dev/null
"$venv/bin/python" - "$tokenizer" "$corpus" <<'PY'
import json, os, sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
docs = json.load(open(sys.argv[2]))
size = sum(len(d.encode()) for d in docs)
start = time.perf_counter(); n = sum(len(tok.encode(d, add_special_tokens=False).ids) for d in docs)
single = time.perf_counter() - start
print(f"hf     1 thread   {size / single / 1e6:7.2f} MB/s  {n / single:9.0f} tokens/s  ({n} tokens)")
tok = Tokenizer.from_file(sys.argv[1])
start = time.perf_counter(); tok.encode_batch(docs, add_special_tokens=False)
batch = time.perf_counter() - start
print(f"hf     batch      {size / batch / 1e6:7.2f} MB/s  {n / batch:9.0f} tokens/s  (RAYON threads: {os.environ.get('RAYON_NUM_THREADS', 'all cores')})")
PY
.build/release/grpo-bench tokenizer "$tokenizer" "$corpus"
