#!/usr/bin/env bash
# Installs the system packages grpo-swift needs, when missing. Safe to run repeatedly.
#   Linux (Debian/Ubuntu):
#     libdnnl-dev  oneDNN's C API (dnnl_sgemm, bf16 matmul), needed to build;
#     bubblewrap   the sandbox of the `code` reward (bwrap), needed to run completions as programs;
#     openmpi-bin  Open MPI's mpirun and libmpi, for `mpirun -np N grpo train` (grpo loads libmpi at
#                  run time, so it builds and runs as one process without it).
#   macOS: nothing (Accelerate ships with the system; the code reward needs `sandbox: none` there).
set -euo pipefail

if [ "$(uname -s)" = "Darwin" ]; then
    exit 0
fi

packages=()
[ -f /usr/include/oneapi/dnnl/dnnl.h ] || packages+=(libdnnl-dev)
command -v bwrap >/dev/null 2>&1 || packages+=(bubblewrap)
command -v mpirun >/dev/null 2>&1 || packages+=(openmpi-bin)
if [ ${#packages[@]} -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: missing ${packages[*]} and apt-get is not available;" >&2
    echo "setup: install oneDNN 2.x (oneapi/dnnl/dnnl.h), bubblewrap (bwrap) and Open MPI with your" >&2
    echo "setup: distribution's package manager and re-run." >&2
    exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "setup: run as root or install sudo to install ${packages[*]}" >&2
        exit 1
    fi
fi

echo "setup: installing ${packages[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq "${packages[@]}" >&2
