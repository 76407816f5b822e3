#!/usr/bin/env python3
"""OpenBLAS sgemm on the shapes grpo-bench measures, for the oneDNN-vs-OpenBLAS comparison.

Runs in its own process (numpy's wheel bundles OpenBLAS): linking OpenBLAS (pthreads) and oneDNN
(OpenMP) into one process makes them halve each other. Usage:
    OPENBLAS_NUM_THREADS=2 python3 scripts/bench_openblas.py
"""
import time

import numpy as np

SHAPES = [  # name, M, N, K for C (M, N) = A (M, K) . B (N, K)^T, as grpo-bench
    ("square 2048", 2048, 2048, 2048),
    ("qkv 2048x576 -> 960", 2048, 960, 576),
    ("gate+up 2048x576 -> 3072", 2048, 3072, 576),
    ("down 2048x1536 -> 576", 2048, 576, 1536),
    ("lm_head 128x576 -> 49152", 128, 49152, 576),
    ("lm_head 341x576 -> 49152", 341, 49152, 576),
    ("decode 32x576 -> 3072", 32, 3072, 576),
]

config = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
print(f"numpy {np.__version__}, BLAS {config.get('name', '?')} {config.get('version', '')}")
for name, m, n, k in SHAPES:
    a = np.random.rand(m, k).astype(np.float32)
    b = np.random.rand(n, k).astype(np.float32)
    c = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b.T, out=c)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        np.matmul(a, b.T, out=c)
        times.append(time.perf_counter() - start)
    print(f"{name:28} {2 * m * n * k / min(times) / 1e9:7.1f} GFLOP/s")
