#!/usr/bin/env bash
# Builds llama.cpp for the GPU machine: CUDA for sm_90 only, and only the two programs the
# benchmark runs (llama-bench, llama-simple). About 3-4 minutes on 16 cores.
#   bash bench/llamacpp/build.sh SRC BUILD_DIR [CPU]   (CPU: no CUDA, for checking files here)
set -euo pipefail
SRC=$1
BUILD=$2
if [ "${3:-}" = "CPU" ]; then cuda=(-DGGML_CUDA=OFF); else
  command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
  cuda=(-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90)
fi
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$SRC" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "${cuda[@]}" \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF \
  -DGGML_NATIVE=ON
cmake --build "$BUILD" --target llama-bench llama-simple -j "${JOBS:-$(nproc)}"
ls -l "$BUILD/bin/llama-bench" "$BUILD/bin/llama-simple"
