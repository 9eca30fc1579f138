#!/usr/bin/env python3
"""Two diffusion classifiers on the same test images, paired: each one's accuracy with its standard
error, and the difference B - A with the standard error of the per-image differences (the pairing
removes the images' shared difficulty, so the difference's error is smaller than the two errors
combined). Reads the posteriors.h5 files of `dmis classify` (predictions, labels).

    /usr/bin/python3 scripts/paired_classify.py A.h5 B.h5 [C.h5 ...]   # each against A
"""
import math
import sys

import h5py
import numpy as np


def correct(path):
    with h5py.File(path, "r") as f:
        if "predictions" not in f or "labels" not in f:
            sys.exit(f"paired_classify: '{path}' has no 'predictions' and 'labels' (not a dmis classify output)")
        return np.asarray(f["predictions"][:] == f["labels"][:], dtype=float), np.asarray(f["labels"][:])


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    a, la = correct(sys.argv[1])
    n = len(a)
    print(f"A {sys.argv[1]}: {100 * a.mean():.1f} ± {100 * a.std(ddof=1) / math.sqrt(n):.1f} % ({n} images)")
    for p in sys.argv[2:]:
        b, lb = correct(p)
        if len(b) != n or not np.array_equal(la, lb):
            sys.exit(f"paired_classify: '{p}' is not on the same images as '{sys.argv[1]}'")
        d = b - a
        se = d.std(ddof=1) / math.sqrt(n)
        print(f"B {p}: {100 * b.mean():.1f} ± {100 * b.std(ddof=1) / math.sqrt(n):.1f} %; "
              f"B - A {100 * d.mean():+.1f} ± {100 * se:.1f} (paired){' (> 2 SE)' if abs(d.mean()) > 2 * se else ''}")


if __name__ == "__main__":
    main()
