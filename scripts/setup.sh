#!/usr/bin/env bash
# Installs the system libraries grpo-swift builds against, when missing. Safe to run repeatedly.
#   Linux (Debian/Ubuntu): oneDNN's C API, package libdnnl-dev (dnnl_sgemm, bf16 matmul).
#   macOS: nothing (Accelerate ships with the system).
set -euo pipefail

if [ "$(uname -s)" = "Darwin" ]; then
    exit 0
fi

if [ -f /usr/include/oneapi/dnnl/dnnl.h ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: oneDNN headers (oneapi/dnnl/dnnl.h) are missing and apt-get is not available;" >&2
    echo "setup: install oneDNN 2.x (libdnnl-dev or your distribution's equivalent) and re-run." >&2
    exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "setup: run as root or install sudo to install libdnnl-dev" >&2
        exit 1
    fi
fi

echo "setup: installing libdnnl-dev (oneDNN) with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq libdnnl-dev >&2
