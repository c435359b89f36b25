#!/usr/bin/env bash
# Builds the CUDA (cuDNN) binaries that scripts/gpu-check.sh runs on a GPU machine, stripped and
# xz-compressed into target-gpu/ (what travels is limited to 64 MiB; about 6 MiB each), with the
# CUDA 13.0 toolchain of ../shared/gpu/setup-cuda-toolchain.sh (made with WITH_CUDNN=1).
set -euo pipefail
cd "$(dirname "$0")/.."
export WITH_CUDNN=1
source ../shared/gpu/setup-cuda-toolchain.sh
set -euo pipefail # the toolchain script turns these off at its end
if [ ! -e "$CUDA_HOME/lib/libcudnn.so" ]; then
  echo "no cuDNN in $CUDA_HOME (the toolchain was made without WITH_CUDNN=1): unzip the" >&2
  echo "nvidia-cudnn-cu13 wheel's include/ and lib/libcudnn.so.9 into it, with a libcudnn.so link" >&2
  exit 1
fi
export LIBRARY_PATH=$CUDA_HOME/lib:$CUDA_HOME/lib/stubs:${LIBRARY_PATH:-}
TD=target-cuda
cargo build --release --target-dir $TD -p cyclegan-train -F cyclegan-train/cudnn -F cyclegan-train/host-profile \
  --example bench_iteration --bins
cargo build --release --target-dir $TD -p cyclegan-translate -F cyclegan-translate/cudnn --bins
cargo test --release --no-run --target-dir $TD -p cyclegan-layers -p cyclegan-models -p cyclegan-train \
  -F cyclegan-layers/cudnn -F cyclegan-models/cudnn -F cyclegan-train/cudnn \
  --test device_ops --test parity --test train_step_parity
# What the GPU will run of this project's kernels, as ptxas compiles them for an H100/H200:
# registers, stack and spills of each f32 kernel (a spill would put registers in local memory).
PTX=$(ls -t $TD/release/build/cyclegan-layers-*/out/kernels.ptx | head -1)
ptxas -arch=sm_90a -v "$PTX" -o /dev/null 2>&1 | sed -E 's/^ptxas info *: //' |
  awk '/^Compiling entry/ { name = $4; gsub("\x27", "", name) }
       /stack frame/ { stack = $1; spills = $5 + $9 }
       /^Used/ && name ~ /_f32$/ { printf "  %-34s %3d registers, %3d bytes stack, %d bytes spilled\n", name, $2, stack, spills }'
mkdir -p target-gpu
# Packs binary $1 as target-gpu/$2.xz unless that is already newer; strip options $3.
pack() {
  [ "target-gpu/$2.xz" -nt "$1" ] && return
  strip ${3:-} -o "target-gpu/$2" "$1" && xz -9 -T2 -f "target-gpu/$2"
}
# The benchmark keeps its symbol table, for its --host-profile.
pack $TD/release/examples/bench_iteration bench_iteration --strip-debug
pack $TD/release/cyclegan-train cyclegan-train
pack $TD/release/cyclegan-translate cyclegan-translate
for t in device_ops parity train_step_parity; do
  pack "$(ls -t $TD/release/deps/$t-* | grep -v '\.d$' | head -1)" $t
done
ls -la target-gpu
