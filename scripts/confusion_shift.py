#!/usr/bin/env python3
"""Where a DMIS run's diffusion classifier got worse than vanilla's, and whether the E-step made it.

Reads, for each seed directory, vanilla/POST and dmis/POST (posteriors of `dmis classify`: test
images with their clean labels) and one E-step posteriors file (the classifier the E-step used,
e.g. docs/runs-estep-levels/fixed5-k1.h5). Prints the per-class accuracy of each, the share of
images each predicts per class, the confusions (true -> predicted, % of the true class) that
grew most from vanilla to DMIS, averaged over the seeds, next to the E-step's own rate for the
same pair, and the correlation of the growth with the E-step's confusions over all pairs.

  scripts/confusion_shift.py --estep FILE.h5 [--post posteriors-high.h5] [--top 8] SEED_DIR ...
"""
import argparse

import h5py
import numpy as np


def confusion(path):
    with h5py.File(path, "r") as f:
        y = np.asarray(f["labels"])
        p = np.asarray(f["predictions"])
    C = int(max(y.max(), p.max())) + 1
    M = np.zeros((C, C))
    np.add.at(M, (y, p), 1)
    return M / M.sum(1, keepdims=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--estep", required=True)
    ap.add_argument("--post", default="posteriors-high.h5")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("seeds", nargs="+")
    a = ap.parse_args()
    E = confusion(a.estep)
    V = np.mean([confusion(f"{d}/vanilla/{a.post}") for d in a.seeds], 0)
    D = np.mean([confusion(f"{d}/dmis/{a.post}") for d in a.seeds], 0)
    C = E.shape[0]
    pct = lambda v: " ".join(f"{100 * x:3.0f}" for x in v)
    print(f"classes:                {' '.join(f'{c:3d}' for c in range(C))}")
    for name, M in (("E-step", E), ("vanilla", V), ("dmis", D)):
        print(f"{name:8s} right %:       {pct(np.diag(M))}")
        print(f"{name:8s} predicted %:   {pct(M.sum(0) / C)}")
    off = ~np.eye(C, dtype=bool)
    G = D - V
    print(f"correlation over the {off.sum()} confusions of (dmis - vanilla) with the E-step's: "
          f"{np.corrcoef(G[off], E[off])[0, 1]:.2f}; with vanilla's: {np.corrcoef(G[off], V[off])[0, 1]:.2f}")
    print("largest growth (true -> predicted: dmis - vanilla, E-step, vanilla; % of the true class)")
    pairs = sorted(((G[i, j], i, j) for i in range(C) for j in range(C) if i != j), reverse=True)
    for g, i, j in pairs[: a.top]:
        print(f"  {i} -> {j}: {100 * g:+5.1f}  E-step {100 * E[i, j]:5.1f}  vanilla {100 * V[i, j]:5.1f}")


if __name__ == "__main__":
    main()
