#!/usr/bin/env python3
"""How pure a posterior a diffusion classifier's logits can make noisy labels (issue 18).

For each posteriors file of `dmis classify` (test images with their clean labels), draws
symmetric label noise at RATE (a wrong label spread evenly over the other classes, as dmis
generates it) DRAWS times and forms the E-step's posterior with the process's own transition T:
    q(y | x, yhat) ~ T(yhat | y) * p(y | x)^a
where p(y | x) is the file's posterior and a a temperature (the logit scale the training's
calibration would choose). Two choices of a on a grid: the one that maximises the likelihood of
the observed labels, sum_y T(yhat | y) softmax(a log p)(y) (what the training's calibration of
the logit scale does, without the clean labels), and the one with the most q right (an upper
bound that needs them). Prints a markdown table: the classifier's accuracy, the labels' and q's
share right, and the mean entropy of q at the calibrated a.

--balance: before the E-step, per-class offsets b on the tempered logits a log p + b, chosen
(a few fixed-point steps, no labels) so that the classifier's mean posterior over the images
is uniform: the class prior of a balanced dataset, which the noisy labels' own marginal also
estimates. It removes the classifier's own preference for some classes (at sigma 5 the sym40
model puts 18 % of the test images in class 5), which hard EM would otherwise train in.

  scripts/posterior_purity.py [--rate 0.4] [--draws 20] [--balance] NAME=posteriors.h5 ...
"""
import argparse

import h5py
import numpy as np


def softmax(z):
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=0.4)
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--balance", action="store_true", help="offsets that make the mean posterior uniform")
    ap.add_argument("files", nargs="+", help="NAME=posteriors.h5")
    a = ap.parse_args()
    grid = [0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0]
    print("| classifier | its accuracy % | labels right % | q right %, calibrated a | entropy of q | q right %, best a |")
    print("|---|---:|---:|---:|---:|---:|")
    for spec in a.files:
        name, _, path = spec.rpartition("=")
        name = name or path
        with h5py.File(path, "r") as f:
            P = np.asarray(f["posteriors"], dtype=np.float64)
            y = np.asarray(f["labels"])
        N, C = P.shape
        L = np.log(np.clip(P, 1e-300, 1))
        T = np.full((C, C), a.rate / (C - 1))
        np.fill_diagonal(T, 1 - a.rate)
        best = cal = None
        for temp in grid:
            right, lab, ent, ll = [], [], [], []
            for d in range(a.draws):
                rng = np.random.default_rng(d)
                yh = np.where(rng.random(N) < a.rate, (y + rng.integers(1, C, N)) % C, y)
                p = softmax(temp * L)
                if a.balance:
                    b = np.zeros(C)
                    for _ in range(50):
                        b -= np.log(C * p.mean(0))
                        p = softmax(temp * L + b)
                joint = T[:, yh].T * p  # (N, C): T(yhat | y) p_a(y | x)
                ll.append(np.log(joint.sum(1)).mean())
                q = joint / joint.sum(1, keepdims=True)
                right.append((q.argmax(1) == y).mean())
                lab.append((yh == y).mean())
                ent.append(-(q * np.log(np.clip(q, 1e-300, 1))).sum(1).mean())
            row = (np.mean(right), temp, np.mean(lab), np.mean(ent), np.mean(ll))
            if best is None or row[0] > best[0]:
                best = row
            if cal is None or row[4] > cal[4]:
                cal = row
        acc = (P.argmax(1) == y).mean()
        print(f"| {name} | {100 * acc:.1f} | {100 * cal[2]:.1f} | {100 * cal[0]:.1f} (a {cal[1]}) | "
              f"{cal[3]:.2f} | {100 * best[0]:.1f} (a {best[1]}) |")


if __name__ == "__main__":
    main()
