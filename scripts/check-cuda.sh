#!/usr/bin/env bash
# Check that the `cuda` feature still compiles, on a machine with no CUDA toolkit and no GPU.
#
# NVIDIA publishes the compiler on PyPI: nvidia-cuda-nvcc (nvcc, ptxas, cicc), nvidia-cuda-runtime
# and nvidia-cuda-crt (headers) and nvidia-cuda-cccl (libcu++'s <nv/target>, which cuda_fp16.h
# includes) lay out a toolkit tree under site-packages/nvidia/cu13. This installs them into a venv
# in a cache, points candle's and cudarc's build scripts at that tree, and runs
# `cargo check --features cuda --all-targets` (build scripts run, nothing links, so no libcuda or
# cuBLAS is needed). candle-kernels compiles its PTX with that nvcc: about 15 minutes on 2 cores
# the first time, in a target directory of its own so the normal build is untouched.
#
#   bash scripts/check-cuda.sh            # CUDA_COMPUTE_CAP defaults to 90 (H100/H200)
#
# It checks types and kernels compile; it runs nothing on a GPU. cudarc 0.19.10 knows CUDA up to
# 13.4, so the 13.5 compiler is announced to it as 13.4 (CUDARC_CUDA_VERSION=13040).
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/mesh-mcp/cuda-toolkit"
VENV="$CACHE/venv"
PACKAGES=(nvidia-cuda-nvcc==13.5.37 nvidia-cuda-runtime==13.5.37 nvidia-cuda-crt==13.5.37 nvidia-cuda-cccl==13.3.5.0.6)

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "check-cuda: installing ${PACKAGES[*]} into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "${PACKAGES[@]}" >&2
fi
ROOT=$("$VENV/bin/python" -c 'import nvidia, pathlib; print(pathlib.Path(list(nvidia.__path__)[0], "cu13").resolve())')
[[ -x "$ROOT/bin/nvcc" ]] || { echo "check-cuda: no nvcc under $ROOT" >&2; exit 1; }

export CUDA_ROOT="$ROOT" CUDA_PATH="$ROOT" PATH="$ROOT/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}" CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13040}"
echo "check-cuda: $(nvcc --version | tail -1), compute capability $CUDA_COMPUTE_CAP" >&2
cd "$(dirname "$0")/.."
exec cargo check --features cuda --all-targets --target-dir "${CUDA_TARGET_DIR:-target/cuda-check}"
