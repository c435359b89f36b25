#!/usr/bin/env bash
# Checks the fused CUDA kernels' index arithmetic on the CPU, without a GPU (see the comment at
# the top of scripts/emulate-kernels.cpp). Needs a C++20 compiler (g++ 12 here).
set -euo pipefail
cd "$(dirname "$0")"
BIN=${TMPDIR:-/tmp}/cyclegan-emulate-kernels
${CXX:-g++} -std=c++20 -O2 -pthread -Wall -Wno-unused-function emulate-kernels.cpp -o "$BIN"
"$BIN"
