#!/usr/bin/env bash
# Where a training iteration's time goes on a GPU machine (which has no perf or nsys):
# - host: sampled stacks of this project's iteration (bench_iteration --host-profile), folded,
#   for scripts/fold-report.py;
# - GPU: every kernel's duration over one timed iteration of ours (Nsight Compute, one metric,
#   no replay, caches kept between kernels as in a real run, collection on for the timed
#   iteration only: --profile-measured), summed by
#   scripts/kernel-times.py;
# - PyTorch's profiler over the reference's iteration, for the same split on its side.
# Build here: scripts/gpu-build.sh (its bench_iteration keeps its symbols for --host-profile),
# then on the GPU machine from the repository root, with target-gpu carried:
#   scripts/gpu-profile.sh [SIZE] [BATCH]      # 256 1 by default; 256 4 for the batch-4 goal
# (about 8 minutes; COMPILED=1 adds compiled PyTorch's profile, about 2 more).
set -uo pipefail
SIZE=${1:-256}
BATCH=${2:-1}
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
SP=$(python3 -c "import site; print(site.getsitepackages()[0])")
export LD_LIBRARY_PATH=$(find "$SP/nvidia" "$SP/torch/lib" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')${LD_LIBRARY_PATH:-}
B=/tmp/cyclegan-bin/bench_iteration
mkdir -p "$(dirname $B)"
python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" target-gpu/bench_iteration.xz $B
chmod +x $B
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "== ours, ${SIZE}x${SIZE} batch $BATCH: with host sampling, then without =="
timeout 90 $B --worker "$SIZE" --device cuda --batch "$BATCH" --iters 20 --warmup 5 --host-profile "$OUT/host${SIZE}b$BATCH.folded"
timeout 60 $B --worker "$SIZE" --device cuda --batch "$BATCH" --iters 20 --warmup 5
echo "== GPU time per kernel, ours, one timed iteration after two (ncu) =="
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
LOG="$OUT/ncu${SIZE}b$BATCH.csv"
timeout 240 "$NCU" --clock-control none --cache-control none --profile-from-start off --metrics gpu__time_duration.sum --csv \
  --log-file "$LOG" $B --worker "$SIZE" --device cuda --batch "$BATCH" --iters 1 --warmup 2 --profile-measured
echo "ncu exit $?, $(wc -l < "$LOG") lines"
python3 scripts/kernel-times.py "$LOG" --top 30
echo "== PyTorch eager, ${SIZE}x${SIZE} batch $BATCH, with its profiler =="
timeout 90 python3 python/bench_iteration.py --device cuda --size "$SIZE" --batch "$BATCH" --iters 10 --warmup 3 --profile 2> "$OUT/torch${SIZE}b$BATCH.txt"
grep -E "Self CUDA time total|Self CPU time total" "$OUT/torch${SIZE}b$BATCH.txt"
head -40 "$OUT/torch${SIZE}b$BATCH.txt"
if [ "${COMPILED:-0}" = 1 ]; then
  echo "== PyTorch compiled, ${SIZE}x${SIZE} batch $BATCH, with its profiler (COMPILED=1) =="
  timeout 180 python3 python/bench_iteration.py --device cuda --size "$SIZE" --batch "$BATCH" --iters 10 --warmup 3 --compile --profile 2> "$OUT/torch-compiled${SIZE}b$BATCH.txt"
  head -40 "$OUT/torch-compiled${SIZE}b$BATCH.txt"
fi
