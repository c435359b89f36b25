"""The reference's training loop, end to end (see scripts/bench-train.sh).

What the reference's train.py runs per iteration with --display_id 0 --no_html: the next batch
from its DataLoader (`UnalignedDataset` with its transforms, `python/bench_loader.py`; batch 1,
shuffled, --workers processes, the reference's --num_threads, default 4), the CycleGAN step
(`python/cyclegan_reference.py`: both generators, both discriminators, the image pools, Adam),
and every --print-freq images the losses read and printed. Runs --steps iterations and prints one
JSON line: {"side": "reference", "seconds_per_iter": ...}, the time per iteration from the end of
iteration --warmup to the end of the last.
"""

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_loader  # noqa: E402
import cyclegan_reference as ref  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dataroot", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--load-size", type=int, default=286)
    p.add_argument("--crop-size", type=int, default=256)
    p.add_argument("--ngf", type=int, default=64, help="also the discriminators' ndf")
    p.add_argument("--blocks", type=int, default=9)
    p.add_argument("--print-freq", type=int, default=100)
    args = p.parse_args()
    torch.manual_seed(0)
    dev = torch.device(args.device)
    nets = ref.benchmark_nets(args.ngf, args.blocks, dev)
    model = ref.CycleGAN(*nets, pool_a=ref.ImagePool(50).query, pool_b=ref.ImagePool(50).query)
    data = bench_loader.UnalignedDataset(args.dataroot, args.load_size, args.crop_size)
    loader = torch.utils.data.DataLoader(data, batch_size=1, shuffle=True, num_workers=args.workers)
    step, start = 0, None
    while step < args.steps:
        for batch in loader:
            losses = model.step(batch["A"].to(dev), batch["B"].to(dev))
            step += 1
            if step % args.print_freq == 0:
                print(f"(iters: {step}) " + " ".join(f"{k}: {v:.3f}" for k, v in losses.items()), file=sys.stderr)
            if step == args.warmup:
                start = time.perf_counter()
            if step == args.steps:
                break
    seconds = (time.perf_counter() - start) / (args.steps - args.warmup)
    print(json.dumps({"side": "reference", "seconds_per_iter": seconds}))


if __name__ == "__main__":
    main()
