#!/usr/bin/env python3
"""Compares the PNG images of two folders with the same file names, pixel by pixel: prints how
many are identical and the largest difference of any channel (0-255). Standard library only (the
GPU machine has no image library): decodes 8-bit, non-interlaced PNGs.

    scripts/compare-images.py DIR_A DIR_B [--glob '*_fake.png'] [--max-diff N]

exits with 1 when a difference exceeds N.
"""
import argparse
import pathlib
import struct
import sys
import zlib

CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel (8-bit)


def decode(path):
    """(width, height, channels, rows of bytes) of an 8-bit non-interlaced PNG."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or interlace or colour not in CHANNELS:
        raise ValueError(f"{path}: only 8-bit non-interlaced grey/RGB(A) PNGs are read")
    bpp = CHANNELS[colour]
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return width, height, bpp, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=pathlib.Path)
    parser.add_argument("b", type=pathlib.Path)
    parser.add_argument("--glob", default="*.png", help="which files of DIR_A to compare")
    parser.add_argument("--max-diff", type=int, default=255)
    args = parser.parse_args()
    names = sorted(p.name for p in args.a.glob(args.glob))
    if not names:
        sys.exit(f"no {args.glob} in {args.a}")
    identical, worst, worst_name = 0, 0, None
    for name in names:
        a, b = decode(args.a / name), decode(args.b / name)
        if a[:3] != b[:3]:
            sys.exit(f"{name}: {a[:3]} against {b[:3]} (width, height, channels)")
        diff = max(abs(x - y) for ra, rb in zip(a[3], b[3]) for x, y in zip(ra, rb))
        identical += diff == 0
        if diff > worst:
            worst, worst_name = diff, name
    print(f"{identical} of {len(names)} images identical; largest difference {worst}/255"
          + (f" ({worst_name})" if worst_name else ""))
    sys.exit(1 if worst > args.max_diff else 0)


if __name__ == "__main__":
    main()
