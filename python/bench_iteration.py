"""PyTorch side of the full-iteration benchmark (see crates/cyclegan-train/examples/bench_iteration.rs).

One CycleGAN training iteration of the reference architecture (resnet_9blocks, basic D, instance
norm, ngf = ndf = 64, pool 50, batch 1, f32; --ngf also sets ndf, --blocks the residual blocks)
at --size, timed over --iters iterations after --warmup. With --translate, one generator's
forward pass instead, as the reference's test.py runs it: the batch moved from host memory to the
device and back, under torch.no_grad(), the network in training mode (test.py's default). Prints
one JSON line: {"side": "pytorch", "size", "times": [...], "peak_rss_mb"}.
"""

import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cyclegan_reference as ref  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--blocks", type=int, default=9)
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--cudnn-benchmark", action="store_true",
                   help="torch.backends.cudnn.benchmark = True (off by default, as in the reference)")
    p.add_argument("--translate", action="store_true",
                   help="time one generator's forward pass (translation) instead of a training iteration")
    p.add_argument("--profile", action="store_true",
                   help="after the timed iterations, print torch.profiler's table of 3 more to stderr")
    args = p.parse_args()
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    torch.manual_seed(0)
    dev = torch.device(args.device)
    nets = ref.benchmark_nets(args.ngf, args.blocks, dev, discriminators=not args.translate)
    if args.compile:
        nets = [torch.compile(n) for n in nets]
    if args.translate:
        net = nets[0]
        images = torch.rand(args.batch, 3, args.size, args.size) * 2 - 1

        def step():
            with torch.no_grad():
                net(images.to(dev)).cpu()
    else:
        model = ref.CycleGAN(*nets, pool_a=ref.ImagePool(50).query, pool_b=ref.ImagePool(50).query)
        a = torch.rand(args.batch, 3, args.size, args.size, device=dev) * 2 - 1
        b = torch.rand(args.batch, 3, args.size, args.size, device=dev) * 2 - 1

        def step():
            model.step(a, b)
    times = []
    for i in range(args.warmup + args.iters):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
        with profile(activities=activities) as prof:
            for _ in range(3):
                step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
        key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=40, max_name_column_width=90), file=sys.stderr)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {"side": "pytorch", "size": args.size, "times": times, "peak_rss_mb": peak, "threads": torch.get_num_threads()}
    if dev.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out))


if __name__ == "__main__":
    main()
