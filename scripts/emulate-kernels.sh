#!/usr/bin/env bash
# Checks the CUDA kernels' index arithmetic on the CPU, without a GPU, against the kernels they
# fuse, the base revision's (KERNELS_BASE, the last commit by default) and direct computations
# (see the comment at the top of scripts/emulate-kernels.cpp). Needs a C++20 compiler (g++ 12
# here) and git.
set -euo pipefail
cd "$(dirname "$0")"
BIN=${TMPDIR:-/tmp}/cyclegan-emulate-kernels
# The kernels of the base revision (the last commit unless KERNELS_BASE names another), without
# their C linkage so that both sets can live in one program.
BASE_FILE=${TMPDIR:-/tmp}/cyclegan-kernels-base.cu
git show "${KERNELS_BASE:-HEAD}:crates/cyclegan-layers/src/ops/cuda/kernels.cu" | sed 's/extern "C"//' > "$BASE_FILE"
${CXX:-g++} -std=c++20 -O2 -pthread -Wall -Wno-unused-function -Wno-unknown-pragmas -DBASE_KERNELS="\"$BASE_FILE\"" \
  emulate-kernels.cpp -o "$BIN"
"$BIN"
