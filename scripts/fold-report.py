#!/usr/bin/env python3
"""Summarises folded stacks (`bench_iteration --host-profile FILE`): the share of samples each
function is on the stack for (inclusive) and at the top of (self), the largest first.

    scripts/fold-report.py FILE [--top N] [--match SUBSTRING]
"""
import argparse
import collections
import re


def short(name):
    # Drops Rust hashes and generic arguments so that instances of one function add up.
    name = re.sub(r"::h[0-9a-f]{16}$", "", name)
    while True:
        shorter = re.sub(r"<[^<>]*>", "", name)
        if shorter == name:
            return name
        name = shorter


def main():
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--match", default=None, help="only stacks through a function containing this")
    args = p.parse_args()
    inclusive, self_, total = collections.Counter(), collections.Counter(), 0
    for line in open(args.file):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        frames = [short(f) for f in stack.split(";")]
        if args.match and not any(args.match in f for f in frames):
            continue
        n = int(count)
        total += n
        for f in set(frames):
            inclusive[f] += n
        self_[frames[-1] if frames else "?"] += n
    print(f"{total} samples")
    print("inclusive:")
    for f, n in inclusive.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {f[:160]}")
    print("self:")
    for f, n in self_.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {f[:160]}")


if __name__ == "__main__":
    main()
