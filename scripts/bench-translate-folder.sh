#!/usr/bin/env bash
# Translating a folder end to end (decode, translate, write both PNGs per image): cyclegan-translate
# against the reference's test.py path (python/translate_reference.py), alternated, with the same
# weights (a freshly initialised reference .pth, which cyclegan-translate reads directly).
#
#   scripts/bench-translate-folder.sh [DEVICE] [ROUNDS]      # DEVICE: cpu (default) or cuda
#
# Environment: TRANSLATE_BIN (default target/release/cyclegan-translate), SIZE (256), COUNT (the
# first COUNT of the 186 embedded test images; all by default), NGF and BLOCKS (64 and 9: the
# reference architecture). The inputs are data/emoji64/testA resized to SIZE x SIZE PNGs.
# Prints each run's seconds in its loop over the images (process start and model loading left
# out; both report them) and the medians. The reference side needs PyTorch, Pillow and NumPy;
# without them (the GPU machine has no Pillow) only this project's side runs.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${1:-cpu}
ROUNDS=${2:-3}
BIN=${TRANSLATE_BIN:-target/release/cyclegan-translate}
SIZE=${SIZE:-256}
NGF=${NGF:-64}
BLOCKS=${BLOCKS:-9}
WORK=${TMPDIR:-/tmp}/cyclegan-translate-bench
rm -rf "$WORK"
mkdir -p "$WORK/in"

python3 python/translate_reference.py --init-checkpoint --checkpoint "$WORK/g.pth" --ngf "$NGF" --blocks "$BLOCKS"
# The inputs: the test images resized by cyclegan-translate's reference resizing (its real images),
# through a one-block generator, which costs nothing.
python3 python/translate_reference.py --init-checkpoint --checkpoint "$WORK/tiny.pth" --ngf 4 --blocks 1
"$BIN" --checkpoint "$WORK/tiny.pth" --input data/emoji64/testA --output "$WORK/resized" \
  --preprocess resize_and_crop --load-size "$SIZE" --crop-size "$SIZE" >/dev/null 2>&1
find "$WORK/resized/images" -name '*_real.png' | sort | head -n "${COUNT:-1000}" | while read -r f; do
  cp "$f" "$WORK/in/$(basename "${f%_real.png}").png"
done
IMAGES=$(ls "$WORK/in" | wc -l)
HAVE_PIL=1
python3 -c "import PIL, numpy" 2>/dev/null || HAVE_PIL=0
[ "$HAVE_PIL" = 1 ] || echo "no Pillow or NumPy here: the reference side is left out"
echo "translating $IMAGES images of ${SIZE}x${SIZE} on $DEVICE, resnet_${BLOCKS}blocks ngf $NGF, $ROUNDS rounds"

: > "$WORK/times"
for round in $(seq "$ROUNDS"); do
  rm -rf "$WORK/ours"
  line=$("$BIN" --device "$DEVICE" --checkpoint "$WORK/g.pth" --input "$WORK/in" --output "$WORK/ours" 2>&1 | grep -o 'translated [0-9]* image(s) in [0-9.]* s')
  ours=$(echo "$line" | awk '{print $5}')
  echo "round $round: ours $ours s"
  echo "ours $ours" >> "$WORK/times"
  if [ "$HAVE_PIL" = 1 ]; then
    rm -rf "$WORK/reference"
    ref=$(python3 python/translate_reference.py --device "$DEVICE" --checkpoint "$WORK/g.pth" --ngf "$NGF" \
      --blocks "$BLOCKS" --input "$WORK/in" --output "$WORK/reference" 2>/dev/null | tail -n 1 |
      python3 -c "import json, sys; print(round(json.loads(sys.stdin.read())['loop_s'], 3))")
    echo "round $round: reference $ref s"
    echo "reference $ref" >> "$WORK/times"
  fi
done
python3 - "$WORK/times" "$IMAGES" <<'PY'
import statistics, sys
times = {}
for line in open(sys.argv[1]):
    side, t = line.split()
    times.setdefault(side, []).append(float(t))
images = int(sys.argv[2])
med = {side: statistics.median(ts) for side, ts in times.items()}
for side, m in med.items():
    print(f"{side}: median {m:.3f} s, {images / m:.1f} images/s")
if "reference" in med:
    print(f"ours / reference: {med['ours'] / med['reference']:.3f}")
PY
if [ "$HAVE_PIL" = 1 ]; then
  python3 scripts/compare-images.py "$WORK/reference/images" "$WORK/ours/images" --glob '*_fake.png' --max-diff 255
fi
