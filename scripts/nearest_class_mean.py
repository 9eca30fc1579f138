#!/usr/bin/env python3
"""The nearest-class-mean rule on Fashion-MNIST, the reference for a diffusion classifier at high
noise (where the denoiser tends to its class's mean): class means of the training images under the
clean labels and under 40 % symmetric noisy labels (seeded), scored on the first N test images.

    /usr/bin/python3 scripts/nearest_class_mean.py [--data data/fmnist.h5] [--images 1000]
"""
import argparse

import h5py
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--data", default="data/fmnist.h5")
ap.add_argument("--images", type=int, default=1000)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
with h5py.File(a.data, "r") as f:
    X = f["train/images"][:].reshape(len(f["train/labels"]), -1).astype(np.float32)
    y = f["train/labels"][:]
    T = f["test/images"][:a.images].reshape(-1, X.shape[1]).astype(np.float32)
    t = f["test/labels"][:a.images]
C = int(y.max()) + 1
rng = np.random.default_rng(a.seed)
flip = rng.random(len(y)) < 0.4
noisy = y.copy()
noisy[flip] = (y[flip] + rng.integers(1, C, flip.sum())) % C
for name, lab in (("clean labels", y), ("40 % symmetric noisy labels", noisy)):
    M = np.stack([X[lab == c].mean(0) for c in range(C)])
    d = ((T[:, None, :] - M[None]) ** 2).sum(-1)
    acc = (d.argmin(1) == t).mean()
    print(f"nearest class mean, {name}: {100 * acc:.1f} ± {100 * np.sqrt(acc * (1 - acc) / len(t)):.1f} % "
          f"on the first {len(t)} test images")
