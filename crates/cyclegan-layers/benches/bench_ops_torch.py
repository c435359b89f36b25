#!/usr/bin/env python3
"""PyTorch side of the per-layer CPU benchmark (see `examples/bench_ops.rs`).

Times forward and backward of every convolution, instance norm and padding shape of one
CycleGAN training iteration (resnet_9blocks generator, 70x70 PatchGAN discriminator, batch 1)
and prints one line per layer: `name fwd_ms bwd_ms` (medians over `--reps`). With `--serve` it
instead reads requests `name reps warmup` from stdin, one per line, and answers each with such
a line, so that a driver can alternate with it layer by layer. The backward pass
starts from a fixed random output gradient. Every input and parameter requires a gradient,
like on the Rust side, so both compute the same gradients. The layer table must stay in sync
with `layers()` in `examples/bench_ops.rs`, which runs this script and compares.
"""

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def layers(size):
    """(name, kind, params) for every layer shape at image side `size`."""
    s, q, e = size, size // 4, size // 8
    return [
        ("g_c7s1_64", "conv", dict(cin=3, cout=64, k=7, s=1, p=0, hw=s + 6)),
        ("g_down128", "conv", dict(cin=64, cout=128, k=3, s=2, p=1, hw=s)),
        ("g_down256", "conv", dict(cin=128, cout=256, k=3, s=2, p=1, hw=s // 2)),
        ("g_res", "conv", dict(cin=256, cout=256, k=3, s=1, p=0, hw=q + 2)),
        ("g_up128", "convt", dict(cin=256, cout=128, k=3, s=2, p=1, op=1, hw=q)),
        ("g_up64", "convt", dict(cin=128, cout=64, k=3, s=2, p=1, op=1, hw=s // 2)),
        ("g_c7s1_3", "conv", dict(cin=64, cout=3, k=7, s=1, p=0, hw=s + 6)),
        ("d_c64", "conv", dict(cin=3, cout=64, k=4, s=2, p=1, hw=s)),
        ("d_c128", "conv", dict(cin=64, cout=128, k=4, s=2, p=1, hw=s // 2)),
        ("d_c256", "conv", dict(cin=128, cout=256, k=4, s=2, p=1, hw=q)),
        ("d_c512", "conv", dict(cin=256, cout=512, k=4, s=1, p=1, hw=e)),
        ("d_head", "conv", dict(cin=512, cout=1, k=4, s=1, p=1, hw=e - 1)),
        ("in64_relu", "norm", dict(c=64, hw=s)),
        ("in128_relu", "norm", dict(c=128, hw=s // 2)),
        ("in256_relu", "norm", dict(c=256, hw=q)),
        ("pad3_reflect_c3", "pad", dict(c=3, hw=s, p=3)),
        ("pad3_reflect_c64", "pad", dict(c=64, hw=s, p=3)),
        ("pad1_reflect_c256", "pad", dict(c=256, hw=q, p=1)),
    ]


def make(kind, prm, gen):
    """Returns (the leaves requiring grad, the forward closure)."""
    randn = lambda *shape: (torch.randn(*shape, generator=gen) * 0.5).requires_grad_()
    if kind == "conv":
        x = randn(1, prm["cin"], prm["hw"], prm["hw"])
        w = randn(prm["cout"], prm["cin"], prm["k"], prm["k"])
        b = randn(prm["cout"])
        return [x, w, b], lambda: F.conv2d(x, w, b, stride=prm["s"], padding=prm["p"])
    if kind == "convt":
        x = randn(1, prm["cin"], prm["hw"], prm["hw"])
        w = randn(prm["cin"], prm["cout"], prm["k"], prm["k"])
        b = randn(prm["cout"])
        return [x, w, b], lambda: F.conv_transpose2d(
            x, w, b, stride=prm["s"], padding=prm["p"], output_padding=prm["op"]
        )
    if kind == "norm":
        x = randn(1, prm["c"], prm["hw"], prm["hw"])
        return [x], lambda: F.relu(F.instance_norm(x, eps=1e-5))
    if kind == "pad":
        x = randn(1, prm["c"], prm["hw"], prm["hw"])
        p = prm["p"]
        return [x], lambda: F.pad(x, (p, p, p, p), mode="reflect")
    raise ValueError(kind)


def time_layer(leaves, fwd, reps, warmup):
    fwd_t, bwd_t = [], []
    grad = None
    for i in range(warmup + reps):
        for leaf in leaves:
            leaf.grad = None
        t0 = time.perf_counter()
        y = fwd()
        t1 = time.perf_counter()
        if grad is None:
            grad = torch.randn_like(y)
        y.backward(grad)
        t2 = time.perf_counter()
        if i >= warmup:
            fwd_t.append((t1 - t0) * 1e3)
            bwd_t.append((t2 - t1) * 1e3)
    return statistics.median(fwd_t), statistics.median(bwd_t)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="0: torch's default")
    ap.add_argument("--only", default="", help="comma-separated layer names")
    ap.add_argument("--serve", action="store_true", help="answer requests from stdin")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    only = set(filter(None, args.only.split(",")))
    gen = torch.Generator().manual_seed(0)
    if args.serve:
        table = {name: (kind, prm) for name, kind, prm in layers(args.size)}
        built = {}
        for line in sys.stdin:
            if not line.strip():
                continue
            name, reps, warmup = line.split()
            if name not in built:
                built[name] = make(*table[name], gen)
            f, b = time_layer(*built[name], int(reps), int(warmup))
            print(f"{name} {f:.4f} {b:.4f}", flush=True)
        return
    for name, kind, prm in layers(args.size):
        if only and name not in only:
            continue
        leaves, fwd = make(kind, prm, gen)
        f, b = time_layer(leaves, fwd, args.reps, args.warmup)
        print(f"{name} {f:.4f} {b:.4f}", flush=True)


if __name__ == "__main__":
    main()
