#!/usr/bin/env bash
# Training end to end: cyclegan-train against the reference's training loop
# (python/train_reference_loop.py: its data pipeline under a torch DataLoader, its CycleGAN step),
# on the same folder, with the same architecture and preprocessing, alternated.
#
#   scripts/bench-train.sh [DEVICE] [ROUNDS]      # DEVICE: cpu (default) or cuda
#
# Environment: TRAIN_BIN (default target/release/cyclegan-train), DATAROOT (data/emoji64), LOAD
# and CROP (72 and 64), NGF (also ndf) and BLOCKS (16 and 6: the embedded preset; 64 and 9 with
# 286/256 are the reference's defaults), STEPS (200), WARMUP (20), REF_WORKERS (4, the
# reference's --num_threads). Each side uses its own default loader workers. Prints each run's
# seconds per iteration from the end of iteration WARMUP to the end of the last (ours from its
# loss_log.jsonl, written every WARMUP iterations on both sides) and the medians. The reference
# side needs PyTorch, torchvision and Pillow.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${1:-cpu}
ROUNDS=${2:-3}
BIN=${TRAIN_BIN:-target/release/cyclegan-train}
DATAROOT=${DATAROOT:-data/emoji64}
LOAD=${LOAD:-72}
CROP=${CROP:-64}
NGF=${NGF:-16}
BLOCKS=${BLOCKS:-6}
STEPS=${STEPS:-200}
WARMUP=${WARMUP:-20}
WORK=${TMPDIR:-/tmp}/cyclegan-train-bench
rm -rf "$WORK"
mkdir -p "$WORK"
echo "training on $DATAROOT ($LOAD -> $CROP crops) on $DEVICE, resnet_${BLOCKS}blocks ngf = ndf = $NGF, $STEPS steps, timed after $WARMUP, $ROUNDS rounds"
ours=()
reference=()
for round in $(seq 1 "$ROUNDS"); do
  "$BIN" --dataroot "$DATAROOT" --name bench --checkpoints-dir "$WORK" --overwrite --no-progress \
    --device "$DEVICE" --netG "resnet_${BLOCKS}blocks" --ngf "$NGF" --ndf "$NGF" \
    --load-size "$LOAD" --crop-size "$CROP" --max-steps "$STEPS" --print-freq "$WARMUP" >"$WORK/ours.log" 2>&1
  # Its first record is iteration WARMUP's (batch 1, one record every WARMUP images).
  t=$(python3 scripts/loss-log-rate.py "$WORK/bench/loss_log.jsonl")
  ours+=("$t")
  t=$(python3 python/train_reference_loop.py --dataroot "$DATAROOT" --device "$DEVICE" --steps "$STEPS" \
    --warmup "$WARMUP" --workers "${REF_WORKERS:-4}" --load-size "$LOAD" --crop-size "$CROP" --ngf "$NGF" \
    --blocks "$BLOCKS" --print-freq "$WARMUP" 2>"$WORK/reference.log" |
    python3 -c "import json, sys; print(json.loads(sys.stdin.read().splitlines()[-1])['seconds_per_iter'])")
  reference+=("$t")
  printf "round %s: ours %.4f s/iter, reference %.4f s/iter\n" "$round" "${ours[-1]}" "${reference[-1]}"
done
python3 - "${ours[*]}" "${reference[*]}" <<'PY'
import statistics, sys
ours = statistics.median(map(float, sys.argv[1].split()))
ref = statistics.median(map(float, sys.argv[2].split()))
print(f"median: ours {ours:.4f} s/iter, reference {ref:.4f} s/iter, ours / reference {ours / ref:.2f}")
PY
