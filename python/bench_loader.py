"""Reference side of the data-loading benchmark (see crates/cyclegan-data/examples/bench_loader.rs).

The reference's training data pipeline, as its `data/unaligned_dataset.py` and
`data/base_dataset.py` build it with the default options (`resize_and_crop`, load 286, crop 256,
flips, `serial_batches` off): each item is A[index] and a random B, opened with PIL and converted
to RGB, resized to 286x286 (bicubic), randomly cropped to 256x256, randomly flipped, made a tensor
and normalised to [-1, 1]; a torch DataLoader with batch 1, shuffled, `--workers` worker
processes (the reference's `--num_threads`, default 4). Prints one JSON line:
{"side": "reference", "images_per_s": [one rate per epoch]} (A and B each count as an image).
"""

import argparse
import json
import os
import random
import time

import torch.utils.data
import torchvision.transforms as transforms
from PIL import Image

IMG_EXTENSIONS = [".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".ppm", ".PPM", ".bmp", ".BMP", ".tif", ".TIF", ".tiff", ".TIFF"]


def make_dataset(folder):
    images = []
    for root, _, names in sorted(os.walk(folder)):
        for name in names:
            if any(name.endswith(ext) for ext in IMG_EXTENSIONS):
                images.append(os.path.join(root, name))
    return sorted(images)


class UnalignedDataset(torch.utils.data.Dataset):
    def __init__(self, dataroot, load_size=286, crop_size=256, phase="train"):
        self.a_paths = make_dataset(os.path.join(dataroot, phase + "A"))
        self.b_paths = make_dataset(os.path.join(dataroot, phase + "B"))
        self.transform = transforms.Compose([
            transforms.Resize([load_size, load_size], transforms.InterpolationMode.BICUBIC),
            transforms.RandomCrop(crop_size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ])

    def __getitem__(self, index):
        a_path = self.a_paths[index % len(self.a_paths)]
        b_path = self.b_paths[random.randint(0, len(self.b_paths) - 1)]
        a = self.transform(Image.open(a_path).convert("RGB"))
        b = self.transform(Image.open(b_path).convert("RGB"))
        return {"A": a, "B": b, "A_paths": a_path, "B_paths": b_path}

    def __len__(self):
        return max(len(self.a_paths), len(self.b_paths))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dataroot", required=True)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    loader = torch.utils.data.DataLoader(
        UnalignedDataset(args.dataroot), batch_size=1, shuffle=True, num_workers=args.workers)
    rates = []
    for _ in range(args.epochs):
        start, images = time.perf_counter(), 0
        for batch in loader:
            images += batch["A"].shape[0] + batch["B"].shape[0]
        rates.append(images / (time.perf_counter() - start))
    print(json.dumps({"side": "reference", "images_per_s": rates}))


if __name__ == "__main__":
    main()
