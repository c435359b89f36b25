#!/usr/bin/env bash
# The GPU machine's side of a CUDA check: correctness, then speed against PyTorch on the same card.
# Build here first (CUDA toolchain from ../shared/gpu/setup-cuda-toolchain.sh, cuDNN wheel added):
#   scripts/gpu-build.sh          # -> target-gpu/*.xz (stripped, compressed; about 37 MiB in all)
# then on the GPU machine, from the repository root, with target-gpu carried along:
#   scripts/gpu-check.sh [nhwc|quick|batch1|compare|full|train|ab|diagnose|all]
# quick: the tests on CUDA + one 256x256 comparison (eager PyTorch); batch1: the tests + 256x256
# and 128x128 at batch 1 against eager and compiled PyTorch; compare: the tests + 256x256 batch 1
# against eager and compiled (and ours with cuDNN's legacy calls), 128x128 batch 1 and 256x256
# batch 4 against eager, and a host profile; full: the tests, 256x256 batch 4 against eager and
# compiled, each side also with cuDNN's engines picked by timing (cudnn.benchmark), then what
# batch1 runs: the issue's whole goal table, and translation at 256x256 against eager PyTorch,
# one generator pass and a folder end to end (7 minutes on an H200); train: the tests + the
# default training run on the embedded emoji64 data, on CUDA; ab: the tests + ours at 256x256
# batch 4 with the norm kernels' blocks of 128, 256 (the default) and 512 threads (chunks of
# 2048, 4096 and 8192 elements), with cuDNN's heuristics mode A instead of B, and with cuDNN's
# benchmark mode allowing engines 1 GiB (the default) or 4 GiB of workspace, alternated (about
# 1.5 minutes); diagnose: the tests + the device memory after each set-up step of ours and of
# PyTorch (the 128x128 memory goal), and the cuDNN passes of one iteration at 256x256 batch 4
# timed in NCHW and in NHWC (what each layout costs; about a minute);
# nhwc: the tests + the channels-last path (--channels-last): the model parity fixtures and a
# 20-step training run and its translations on CUDA with it on, then ours at 256x256 batch 4 and
# batch 1 and at 128x128 batch 1 without and with it (at batch 4 also from the 3-channel layers
# on, with the convolutions' prologues stored instead of recomputed, `--store-prologues`, and
# with cuDNN's engines picked by timing), alternated, 256x256 batch 4 with each against compiled
# PyTorch, GPU memory included, then the trainer end to end at 256x256 (batch 1 as it is, batch
# 4 channels last; about 9 minutes);
# all: what full, diagnose and ab run, the tests once, in the order goal table, diagnose,
# translation, ab (about 10 minutes: one device call with timeout_s 600 may lose the last
# lines of ab, the least needed). Every
# mode first checks the CUDA ops, the model parity fixtures and cyclegan-translate on CUDA
# against the CPU, and that --deterministic runs repeat (and resume) bit for bit.
set -uo pipefail
MODE=${1:-full}
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
SP=$(python3 -c "import site; print(site.getsitepackages()[0])")
export LD_LIBRARY_PATH=$(find "$SP/nvidia" "$SP/torch/lib" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')${LD_LIBRARY_PATH:-}
BIN=/tmp/cyclegan-bin
mkdir -p $BIN
for f in target-gpu/*.xz; do
  b=$BIN/$(basename "${f%.xz}")
  python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" "$f" "$b"
  chmod +x "$b"
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cudnn', torch.backends.cudnn.version())"
ldd $BIN/bench_iteration | grep -E "cudnn|cublas|not found"

echo "== CUDA kernels against the CPU, op by op (TF32 off; TF32 errors shown for information) =="
CYCLEGAN_TEST_DEVICE=cuda $BIN/device_ops --test-threads 1 --nocapture > "$OUT/device_ops.log" 2>&1
grep -E "^test result|panicked|FAILED|^error" "$OUT/device_ops.log" | head -20
grep -c ": engine " "$OUT/device_ops.log" | sed 's/^/cuDNN passes with an execution plan: /'
grep -E "legacy routine|WARN" "$OUT/device_ops.log" | head -5
echo "== model parity tests on CUDA against the PyTorch fixtures (TF32 off) =="
CYCLEGAN_TEST_DEVICE=cuda CARGO_MANIFEST_DIR=$PWD/crates/cyclegan-models $BIN/parity --test-threads 1 > "$OUT/parity.log" 2>&1
grep -E "^test |test result" "$OUT/parity.log" | grep -v " ok$"
grep -A1 "panicked" "$OUT/parity.log" | grep -v "^--\|panicked" | head -20
CYCLEGAN_TEST_DEVICE=cuda CARGO_MANIFEST_DIR=$PWD/crates/cyclegan-train $BIN/train_step_parity --test-threads 1 > "$OUT/train_step_parity.log" 2>&1
grep -E "test result" "$OUT/train_step_parity.log"

echo "== translation on CUDA against the CPU (G_A after 20 training steps on CUDA; TF32 off) =="
# The trainer translates testA at its end (through the same pipeline as cyclegan-translate).
timeout 60 $BIN/cyclegan-train --device cuda --max-steps 20 --name tr --checkpoints-dir /tmp/tr-ckpt --overwrite \
  --results-dir /tmp/tr-results --no-progress > "$OUT/translate.log" 2>&1 ||
  echo "FAILED: cyclegan-train --device cuda --max-steps 20 (exit $?, $OUT/translate.log)"
for d in cuda cpu; do
  timeout 60 $BIN/cyclegan-translate --checkpoint /tmp/tr-ckpt/tr/latest_net_G_A.safetensors \
    --input data/emoji64/testA --output /tmp/tr-$d --device $d --no-tf32 >> "$OUT/translate.log" 2>&1 ||
    echo "FAILED: cyclegan-translate --device $d (exit $?, $OUT/translate.log)"
done
grep -E "ERROR|error" "$OUT/translate.log" | head -5
python3 scripts/compare-images.py /tmp/tr-cpu/images /tmp/tr-cuda/images --glob '*_fake.png' --max-diff 2

echo "== --deterministic: two 20-step CUDA runs, and 10 steps resumed to 20, give the same networks (TF32 on) =="
det() { timeout 60 $BIN/cyclegan-train --device cuda --deterministic --name "$1" --checkpoints-dir /tmp/det --overwrite \
  --results-dir /tmp/det-results --no-progress "${@:2}" >> "$OUT/deterministic.log" 2>&1 || echo "FAILED: det $* (exit $?, $OUT/deterministic.log)"; }
det once --max-steps 20
det twice --max-steps 20
det resumed --max-steps 10
timeout 60 $BIN/cyclegan-train --device cuda --name resumed --checkpoints-dir /tmp/det --continue-train --max-steps 20 \
  --results-dir /tmp/det-results --no-progress >> "$OUT/deterministic.log" 2>&1 || echo "FAILED: resuming det (exit $?)"
# Channels last picks other (tensor-core) engines: its own pair.
det nhwc1 --max-steps 20 --channels-last
det nhwc2 --max-steps 20 --channels-last
same() { # run, reference run
  for net in G_A G_B D_A D_B; do
    cmp -s /tmp/det/$2/latest_net_$net.safetensors /tmp/det/$1/latest_net_$net.safetensors ||
      echo "DIFFERS: $1's $net from $2's"
  done
}
same twice once; same resumed once; same nhwc2 nhwc1
# A filter that refused every engine would pass too, on the legacy routines: count them.
grep -c "legacy routine" "$OUT/deterministic.log" | sed 's/^/cuDNN shapes on the legacy routines in these runs: /'
echo "(no DIFFERS line: deterministic); for comparison, two runs without it:"
for run in free1 free2; do
  timeout 60 $BIN/cyclegan-train --device cuda --name $run --checkpoints-dir /tmp/det --overwrite --max-steps 20 \
    --results-dir /tmp/det-results --no-progress >> "$OUT/deterministic.log" 2>&1 || echo "FAILED: $run (exit $?)"
done
cmp -s /tmp/det/free1/latest_net_G_A.safetensors /tmp/det/free2/latest_net_G_A.safetensors &&
  echo "without --deterministic: the same G_A (so these shapes prove little)" ||
  echo "without --deterministic: G_A differs between the runs"

export CYCLEGAN_BENCH_SCRIPT=$PWD/python/bench_iteration.py
# Runs one worker of ours at $2x$2 batch $3 and prints "$1: median" (more worker flags after).
ours() {
  timeout 60 $BIN/bench_iteration --worker "$2" --device cuda --batch "$3" --iters 10 --warmup 3 "${@:4}" \
    | python3 -c "import json, statistics, sys; d = json.loads(sys.stdin.read().splitlines()[-1]); print('$1:', round(1000 * statistics.median(d['times']), 1), 'ms median')"
}
ours_b4() { ours "$1" 256 4 "${@:2}"; }
if [ "$MODE" = nhwc ]; then
  echo "== channels last: model parity fixtures on CUDA with it on (TF32 off) =="
  CYCLEGAN_TEST_CHANNELS_LAST=1 CYCLEGAN_TEST_DEVICE=cuda CARGO_MANIFEST_DIR=$PWD/crates/cyclegan-models $BIN/parity --test-threads 1 > "$OUT/parity_nhwc.log" 2>&1
  grep -E "^test |test result" "$OUT/parity_nhwc.log" | grep -v " ok$"
  grep -A1 "panicked" "$OUT/parity_nhwc.log" | grep -v "^--\|panicked" | head -20
  CYCLEGAN_TEST_CHANNELS_LAST=1 CYCLEGAN_TEST_DEVICE=cuda CARGO_MANIFEST_DIR=$PWD/crates/cyclegan-train $BIN/train_step_parity --test-threads 1 > "$OUT/train_step_parity_nhwc.log" 2>&1
  grep -E "test result|panicked" "$OUT/train_step_parity_nhwc.log"
  # NHWC shapes with no engine (TF32 off rules out the tensor-core ones) take the legacy calls.
  cat "$OUT/parity_nhwc.log" "$OUT/train_step_parity_nhwc.log" | grep -E "legacy routine|WARN|CUDNN_STATUS" | sort | uniq -c | head -8
  echo "== prologues stored instead of recomputed: training-step parity on CUDA, NCHW and channels last (TF32 off) =="
  for last in 0 1; do
    CYCLEGAN_TEST_STORE_PROLOGUES=1 CYCLEGAN_TEST_CHANNELS_LAST=$last CYCLEGAN_TEST_DEVICE=cuda CARGO_MANIFEST_DIR=$PWD/crates/cyclegan-train \
      $BIN/train_step_parity --test-threads 1 > "$OUT/train_step_parity_stored_$last.log" 2>&1
    grep -E "test result|panicked" "$OUT/train_step_parity_stored_$last.log"
  done
  echo "== channels last: 20 training steps on CUDA, then the checkpoint translated on CUDA with it on, against the CPU =="
  timeout 60 $BIN/cyclegan-train --device cuda --channels-last --max-steps 20 --name trl --checkpoints-dir /tmp/trl-ckpt --overwrite \
    --results-dir /tmp/trl-results --no-progress > "$OUT/translate_nhwc.log" 2>&1 ||
    echo "FAILED: cyclegan-train --device cuda --channels-last --max-steps 20 (exit $?, $OUT/translate_nhwc.log)"
  for d in cuda cpu; do
    timeout 60 $BIN/cyclegan-translate --checkpoint /tmp/trl-ckpt/trl/latest_net_G_A.safetensors --channels-last \
      --input data/emoji64/testA --output /tmp/trl-$d --device $d --no-tf32 >> "$OUT/translate_nhwc.log" 2>&1 ||
      echo "FAILED: cyclegan-translate --device $d --channels-last (exit $?, $OUT/translate_nhwc.log)"
  done
  grep -E "ERROR|error" "$OUT/translate_nhwc.log" | head -5
  python3 scripts/compare-images.py /tmp/trl-cpu/images /tmp/trl-cuda/images --glob '*_fake.png' --max-diff 2
  echo "== channels last (and prologues stored): ours without and with it, batch 4 alternated =="
  for round in 1 2; do
    ours_b4 "256x256 batch 4, NCHW"
    ours_b4 "256x256 batch 4, channels last" --channels-last
    ours_b4 "256x256 batch 4, NCHW, prologues stored" --store-prologues
    ours_b4 "256x256 batch 4, channels last, prologues stored" --channels-last --store-prologues
    CYCLEGAN_CHANNELS_LAST_MIN_CHANNELS=1 ours_b4 "256x256 batch 4, channels last from the 3-channel layers" --channels-last
    # Against compiled PyTorch with cudnn.benchmark (88.0 ms on the H200 at stop 19, ours 98.0).
    ours_b4 "256x256 batch 4, channels last, cuDNN engines by timing" --channels-last --cudnn-benchmark
  done
  # Batch 1 once: at stop 19 it was already under half of compiled PyTorch's time.
  ours "256x256 batch 1, NCHW" 256 1
  ours "256x256 batch 1, channels last" 256 1 --channels-last
  ours "128x128 batch 1, NCHW" 128 1
  ours "128x128 batch 1, channels last" 128 1 --channels-last
  echo "== channels last against compiled PyTorch, 256x256 batch 4 =="
  timeout 240 $BIN/bench_iteration --device cuda --sizes 256 --batch 4 --rounds 1 --iters 10 --warmup 3 --torch-compile --with-channels-last --with-stored-prologues
  # Last, the least needed if a time limit cuts the run.
  echo "== the trainer end to end on CUDA (its loader, step and logs; emoji64 resized to 286, 256 crops) =="
  # Seconds per iteration after the first 20, from its loss_log.jsonl: against the worker's
  # iteration alone above, what the loader and the trainer's own work add.
  e2e() {
    timeout 90 $BIN/cyclegan-train --device cuda --dataroot data/emoji64 --name e2e --checkpoints-dir /tmp/e2e \
      --overwrite --no-progress --load-size 286 --crop-size 256 --print-freq 20 "$@" > "$OUT/e2e.log" 2>&1 ||
      { echo "FAILED: cyclegan-train $* (exit $?, $OUT/e2e.log)"; return; }
    python3 scripts/loss-log-rate.py /tmp/e2e/e2e/loss_log.jsonl |
      awk -v run="$*" '{ printf "cyclegan-train %s: %.1f ms per iteration\n", run, 1000 * $1 }'
  }
  e2e --max-steps 300
  e2e --max-steps 100 --batch-size 4 --channels-last
fi
case "$MODE" in quick|compare|batch1|full|all) echo "== full iteration, ours vs PyTorch ==" ;; esac
if [ "$MODE" = quick ]; then
  timeout 240 $BIN/bench_iteration --device cuda --sizes 256 --batch 1 --rounds 2 --iters 20 --warmup 3
elif [ "$MODE" = compare ]; then
  # Compiled PyTorch at the goal's size only (compiling takes about a minute per size).
  timeout 240 $BIN/bench_iteration --device cuda --sizes 256 --batch 1 --rounds 1 --iters 30 --warmup 5 --torch-compile --with-legacy-cudnn
  timeout 100 $BIN/bench_iteration --device cuda --sizes 128 --batch 1 --rounds 1 --iters 30 --warmup 5
  timeout 100 $BIN/bench_iteration --device cuda --sizes 256 --batch 4 --rounds 1 --iters 10 --warmup 3
  echo "== host profile of ours, 256x256 batch 1 (scripts/fold-report.py) =="
  timeout 60 $BIN/bench_iteration --worker 256 --device cuda --iters 30 --warmup 5 --host-profile "$OUT/host256.folded"
elif [ "$MODE" = batch1 ]; then
  timeout 240 $BIN/bench_iteration --device cuda --sizes 256,128 --batch 1 --rounds 1 --iters 30 --warmup 5 --torch-compile
elif [ "$MODE" = full ] || [ "$MODE" = all ]; then
  # The open goal first (batch 4), so that a cut run keeps it; each side's line prints as it ends.
  timeout 220 $BIN/bench_iteration --device cuda --sizes 256 --batch 4 --rounds 1 --iters 10 --warmup 3 --torch-compile --with-cudnn-benchmark
  timeout 220 $BIN/bench_iteration --device cuda --sizes 256,128 --batch 1 --rounds 1 --iters 30 --warmup 5 --torch-compile
fi
if [ "$MODE" = diagnose ] || [ "$MODE" = all ]; then
  echo "== device memory after each set-up step: ours (bench_iteration --memory-probe), then PyTorch's =="
  timeout 60 $BIN/bench_iteration --memory-probe
  timeout 60 python3 - <<'PY'
import torch
def step(what):
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    print(f"{(total - free) / 2**20:8.1f} MiB in use after {what}")
x = torch.ones(1, 8, 32, 32, device="cuda")
step("PyTorch's CUDA context and a tensor")
y = torch.nn.functional.instance_norm(x).relu()
step("an instance norm")
torch.nn.functional.conv2d(y, torch.ones(8, 8, 3, 3, device="cuda"), padding=1)
step("a convolution (cuDNN)")
PY
  echo "== cuDNN passes of one iteration at 256x256 batch 4, NCHW against NHWC (bench_iteration --conv-layouts) =="
  timeout 150 $BIN/bench_iteration --worker 256 --device cuda --batch 4 --iters 1 --warmup 2 --conv-layouts 2>&1 >/dev/null | tail -n 80
fi
if [ "$MODE" = full ] || [ "$MODE" = all ]; then
  # After diagnose in `all`, whose figures decide the next changes.
  echo "== translation (one generator's forward pass, host to host, no gradients), ours vs PyTorch =="
  # Against eager PyTorch, as the reference's test.py runs (compiling would take a minute here).
  timeout 120 $BIN/bench_iteration --device cuda --translate --sizes 256 --batch 1 --rounds 1 --iters 30 --warmup 5
  echo "== a folder translated end to end on CUDA (186 PNGs of 256x256; the reference side needs Pillow) =="
  TRANSLATE_BIN=$BIN/cyclegan-translate timeout 120 bash scripts/bench-translate-folder.sh cuda 2
fi
if [ "$MODE" = ab ] || [ "$MODE" = all ]; then
  echo "== ours, 256x256 batch 4, alternated: norm blocks of 128, 256 and 512 threads; cuDNN heuristics mode A; benchmark mode with 1 and 4 GiB workspaces =="
  # Two rounds alone; one in `all`, whose earlier parts leave about a minute and a half.
  ROUNDS="1 2"; [ "$MODE" = all ] && ROUNDS=1
  for round in $ROUNDS; do
    for t in 128 256 512; do CYCLEGAN_NORM_THREADS=$t ours_b4 "norm blocks of $t threads"; done
    CYCLEGAN_CUDNN_HEURISTIC_MODE=A ours_b4 "cuDNN heuristics mode A"
    CYCLEGAN_CUDNN_BENCHMARK_WORKSPACE_MIB=1024 ours_b4 "benchmark, 1 GiB" --cudnn-benchmark
    CYCLEGAN_CUDNN_BENCHMARK_WORKSPACE_MIB=4096 ours_b4 "benchmark, 4 GiB" --cudnn-benchmark
  done
fi
if [ "$MODE" = train ]; then
  echo "== training on the embedded emoji64 data, on CUDA =="
  /usr/bin/time -f "%e s wall" timeout 150 $BIN/cyclegan-train --device cuda --name gpu_emoji --checkpoints-dir /tmp/ckpt --overwrite > "$OUT/train.log" 2>&1
  tail -5 "$OUT/train.log"
  cp /tmp/ckpt/gpu_emoji/metrics.jsonl /tmp/ckpt/gpu_emoji/loss_log.jsonl "$OUT/" 2>/dev/null
  cat "$OUT/metrics.jsonl" 2>/dev/null | tail -3
fi
