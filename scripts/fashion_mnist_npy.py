#!/usr/bin/python3
"""Writes Fashion-MNIST images as a .npy of shape (N, 1, 28, 28), float64 in [-1, 1]
(8-bit levels k / 127.5 - 1, the scaling `diffsde` uses), for `diffsde likelihood --data`.

    scripts/fashion_mnist_npy.py OUT.npy [--split test|train] [--count N]

Reads the IDX files Debian's dataset-fashion-mnist installs (gzip-compressed or not).
"""
import argparse
import gzip
import os

import numpy as np

ROOT = "/usr/share/datasets/fashion-mnist"
FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}


def read_images(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, count, rows, cols = np.frombuffer(data[:16], dtype=">u4")
    if magic != 2051:
        raise SystemExit(f"{path}: not an IDX image file (magic {magic})")
    pixels = np.frombuffer(data[16:], dtype=np.uint8)
    if pixels.size != count * rows * cols:
        raise SystemExit(f"{path}: {pixels.size} bytes of pixels, the header says {count}x{rows}x{cols}")
    return pixels.reshape(count, 1, rows, cols)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--split", choices=FILES, default="test")
    parser.add_argument("--count", type=int, default=0, help="first N images (0: all)")
    parser.add_argument("--root", default=ROOT)
    args = parser.parse_args()
    base = os.path.join(args.root, FILES[args.split])
    path = base + ".gz" if os.path.exists(base + ".gz") else base
    images = read_images(path)
    if args.count > 0:
        images = images[: args.count]
    np.save(args.out, images.astype(np.float64) / 127.5 - 1.0)
    print(f"{args.out}: {images.shape[0]} images from {path}")


if __name__ == "__main__":
    main()
