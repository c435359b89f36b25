#!/usr/bin/env bash
# Where a training iteration's time goes on a GPU machine (which has no perf or nsys):
# - host: sampled stacks of this project's iteration (bench_iteration --host-profile), folded,
#   for scripts/fold-report.py;
# - GPU: every kernel's duration over one iteration (Nsight Compute, one metric, no replay);
# - PyTorch's profiler over the reference's iteration, for the same split on its side.
# Build here: scripts/gpu-build.sh (its bench_iteration keeps its symbols for --host-profile),
# then on the GPU machine from the repository root, with target-gpu carried:
#   scripts/gpu-profile.sh [SIZE]
set -uo pipefail
SIZE=${1:-256}
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
SP=$(python3 -c "import site; print(site.getsitepackages()[0])")
export LD_LIBRARY_PATH=$(find "$SP/nvidia" "$SP/torch/lib" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')${LD_LIBRARY_PATH:-}
B=/tmp/cyclegan-bin/bench_iteration
mkdir -p "$(dirname $B)"
python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" target-gpu/bench_iteration.xz $B
chmod +x $B
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "== ours, ${SIZE}x${SIZE}: batch 1 with host sampling, batch 1 without, batch 4 =="
timeout 90 $B --worker "$SIZE" --device cuda --iters 40 --warmup 5 --host-profile "$OUT/host$SIZE.folded"
timeout 60 $B --worker "$SIZE" --device cuda --iters 20 --warmup 5
timeout 60 $B --worker "$SIZE" --device cuda --batch 4 --iters 10 --warmup 3
echo "== GPU time per kernel, ours, one warm-up and one measured iteration (ncu) =="
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
timeout 240 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv \
  --log-file "$OUT/ncu$SIZE.csv" $B --worker "$SIZE" --device cuda --iters 1 --warmup 1
echo "ncu exit $?, $(wc -l < "$OUT/ncu$SIZE.csv") lines"
echo "== PyTorch eager, batch 1 and 4, with its profiler =="
timeout 90 python3 python/bench_iteration.py --device cuda --size "$SIZE" --iters 20 --warmup 5 --profile 2> "$OUT/torch$SIZE.txt"
timeout 90 python3 python/bench_iteration.py --device cuda --size "$SIZE" --batch 4 --iters 10 --warmup 3 --profile 2> "$OUT/torch${SIZE}b4.txt"
grep -E "Self CUDA time total|Self CPU time total" "$OUT"/torch*.txt
