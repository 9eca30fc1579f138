#!/usr/bin/env python3
"""One seed's paired diffusion-classifier comparison (scripts/experiments-reclassify): DMIS - vanilla
accuracy on the same N test images and the standard error of that difference over the images
(the evaluation's own noise, apart from the seeds' spread), for the window's levels and, where
classified, sigma 2-6.

    /usr/bin/python3 scripts/paired_accuracy.py runs/experiments-seeds-NAME/SETTING/seedK N OUT.json
"""
import json
import math
import os
import sys

import h5py


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: paired_accuracy.py SEED_DIR IMAGES OUT.json")
    base, n, out = sys.argv[1], sys.argv[2], sys.argv[3]
    res = {"images": int(n)}
    for key, post in (("window", f"posteriors-{n}.h5"), ("high", f"posteriors-high-{n}.h5")):
        pv, pd = os.path.join(base, "vanilla", post), os.path.join(base, "dmis", post)
        if not (os.path.exists(pv) and os.path.exists(pd)):
            continue
        with h5py.File(pv, "r") as fv, h5py.File(pd, "r") as fd:
            lab, lab_d = fv["labels"][:], fd["labels"][:]
            if len(lab) != len(lab_d) or (lab != lab_d).any():
                sys.exit(f"paired_accuracy: {pv} and {pd} hold different images")
            cv = (fv["predictions"][:] == lab).astype(float)
            cd = (fd["predictions"][:] == lab).astype(float)
        d = cd - cv
        m = float(d.mean())
        se = math.sqrt(float(((d - m) ** 2).sum()) / (len(d) - 1) / len(d))
        res[key] = {"vanilla": float(cv.mean()), "dmis": float(cd.mean()), "diff": m, "se": se}
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".tmp", "w") as f:
        json.dump(res, f)
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
