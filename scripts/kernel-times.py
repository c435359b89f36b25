#!/usr/bin/env python3
"""Sums the GPU time of the kernels in an Nsight Compute CSV log (`ncu --csv --metrics
gpu__time_duration.sum --log-file F ...`, as scripts/gpu-profile.sh writes it): the total, the
time by family (this project's kernels, candle's, cuDNN/cuBLAS and other libraries) and the
kernels that take the most, each with its launch count.

    scripts/kernel-times.py ncu.csv [--iterations N] [--top 25]

--iterations divides every figure (the profiled iterations: 1 with bench_iteration's
--profile-measured --iters 1).
"""
import argparse
import collections
import csv
import re
import sys

# Nsight Compute writes long unit names in some versions ("nsecond") and short ones in others ("ns").
UNITS = {
    "nsecond": 1e-6, "usecond": 1e-3, "msecond": 1.0, "second": 1e3,
    "ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3,
}

# This project's kernels (crates/cyclegan-layers/src/ops/cuda/kernels.cu).
OURS = re.compile(r"^(instance_norm|pad2d|channel_bias|adam|activation)_")
# candle-kernels' (binary, unary, affine, copy, fill, cast, reduce, where, index...).
CANDLE = re.compile(
    r"^(b(add|sub|mul|div|minimum|maximum)|u[a-z0-9_]+|affine|copy2d|ucopy|fill|cast_|"
    r"fast_(sum|max|min|argmax|argmin)|sum_|where_|is_|index_|gather|scatter|const_set|"
    r"powf|elu|gelu|silu|relu|tanh|sqr|sqrt|exp|log)"
)


def family(name):
    if OURS.match(name):
        return "this project's"
    if CANDLE.match(name):
        return "candle's"
    return "cuDNN, cuBLAS and others"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--iterations", type=float, default=1.0)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with open(args.log, newline="") as f:
        lines = f.read().splitlines()
    # ncu writes its own messages ("==PROF== ...") before the table.
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
    if start is None:
        sys.exit(f"{args.log}: no ncu CSV table (a header starting with \"ID\")")
    by_kernel = collections.defaultdict(lambda: [0.0, 0])
    for row in csv.DictReader(lines[start:]):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        unit = UNITS.get(row.get("Metric Unit", ""), None)
        if unit is None:
            sys.exit(f"unknown unit {row.get('Metric Unit')!r}")
        ms = float(row["Metric Value"].replace(",", "")) * unit
        name = row["Kernel Name"].split("(")[0].strip().removeprefix("void ")
        entry = by_kernel[name]
        entry[0] += ms
        entry[1] += 1
    if not by_kernel:
        sys.exit(f"{args.log}: no gpu__time_duration.sum rows")
    per = args.iterations
    total = sum(ms for ms, _ in by_kernel.values())
    launches = sum(n for _, n in by_kernel.values())
    print(f"GPU time {total / per:.2f} ms in {launches / per:.0f} kernels per iteration")
    families = collections.defaultdict(lambda: [0.0, 0])
    for name, (ms, n) in by_kernel.items():
        families[family(name)][0] += ms
        families[family(name)][1] += n
    for name, (ms, n) in sorted(families.items(), key=lambda kv: -kv[1][0]):
        print(f"  {name:28} {ms / per:9.2f} ms {100 * ms / total:5.1f}%  {n / per:6.0f} kernels")
    print(f"top {args.top} kernels (ms per iteration, launches, mean us):")
    for name, (ms, n) in sorted(by_kernel.items(), key=lambda kv: -kv[1][0])[: args.top]:
        print(f"  {ms / per:8.3f} {n / per:6.0f} {1000 * ms / n:8.1f}  {name[:100]}")


if __name__ == "__main__":
    main()
