#!/usr/bin/python3
"""The noise floor of the feature_frechet metric: the classifier-feature Frechet distance
between real Fashion-MNIST images (disjoint sets of N training images) and the test images
the sweep compares against, computed independently of diffsde (PyTorch + NumPy).

    scripts/feature_frechet_floor.py CLASSIFIER.pt --samples N [--sets K] [--data-samples M]

Prints the mean and standard deviation over K sets: a sampler that scores at this level
is indistinguishable from real data by this metric at this sample size.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fashion_mnist_npy import FILES, ROOT, read_images  # noqa: E402


def load(split, root):
    base = os.path.join(root, FILES[split])
    return read_images(base + ".gz" if os.path.exists(base + ".gz") else base)


def features(module, images, batch=500):
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch].astype(np.float32) / np.float32(127.5) - np.float32(1.0))
            out.append(module.features(x).double().numpy())
    return np.concatenate(out)


def frechet(a, b):
    m1, m2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(c2)
    s2 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # symmetric square root of c2
    inner = np.linalg.eigvalsh(s2 @ c1 @ s2)
    return float(((m1 - m2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("classifier")
    parser.add_argument("--samples", type=int, required=True, help="N, images per set (the sweep's batch)")
    parser.add_argument("--sets", type=int, default=5)
    parser.add_argument("--data-samples", type=int, default=10000, help="first M test images")
    parser.add_argument("--root", default=ROOT)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    module = torch.jit.load(args.classifier)
    module.eval()
    reference = features(module, load("test", args.root)[: args.data_samples])
    train = load("train", args.root)
    if args.samples * args.sets > len(train):
        raise SystemExit(f"{args.sets} sets of {args.samples} need more than the {len(train)} training images")
    values = [frechet(features(module, train[k * args.samples:(k + 1) * args.samples]), reference)
              for k in range(args.sets)]
    print(f"feature_frechet of {args.sets} sets of {args.samples} training images against "
          f"{len(reference)} test images: mean {np.mean(values):.4f}, sd {np.std(values, ddof=1):.4f}, "
          f"values {', '.join(f'{v:.4f}' for v in values)}")


if __name__ == "__main__":
    main()
