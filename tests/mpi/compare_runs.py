"""Compares the losses of two runs' stats.jsonl, step by step.

    python3 compare_runs.py A/stats.jsonl B/stats.jsonl TOL [CLS_TOL]

TOL 0: every value equal (bitwise, as printed with 9 significant digits). TOL > 0: every value
within relative error TOL (absolute below 1e-6). Prints the largest relative difference.

Why 1e-5 between 1 and 2 ranks: the runs differ only in the order of one float32 sum per step
(each rank sums its shard's gradients, then MPI adds the two partial sums), about one ulp
(6e-8) of the gradient. Adam's update and the following steps carry that difference on without
amplifying it much over the few steps of a test (measured: at most ~1e-7 relative over 16
steps). A wrong shard, label, noise draw or normalisation changes the losses at 1e-3 or more.

CLS_TOL (default TOL) applies to the DMIS classification loss. Its logits are the denoising
errors times the logit scale (the pixel count, 784 here), so the one-ulp difference of the
parameters reaches the softmax about s times larger: measured 1.4e-6 relative at the first DMIS
step and at most 2.5e-5 over 12 steps (tiny-dmis-noisy, where the transition counts are one
more reordered sum), while the generative loss of the same steps agrees to 1e-7.
"""
import json
import sys

KEYS = ("loss", "loss_cls", "loss_last", "loss_cls_last", "grad_norm", "kimg", "lr")


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


a, b, tol = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
cls_tol = float(sys.argv[4]) if len(sys.argv) > 4 else tol
if len(a) != len(b) or len(a) < 2:
    sys.exit(f"{len(a)} and {len(b)} records: expected the same number, at least 2")
worst, where = 0.0, None
for ra, rb in zip(a, b):
    if ra["step"] != rb["step"]:
        sys.exit(f"steps differ: {ra['step']} vs {rb['step']}")
    for k in KEYS:
        x, y = ra[k], rb[k]
        if tol == 0:
            if x != y:
                sys.exit(f"step {ra['step']}: {k} {x!r} != {y!r}")
            continue
        t = cls_tol if k.startswith("loss_cls") else tol
        d = abs(x - y) / max(abs(x), abs(y), 1e-6 / t)
        if d / t > worst / tol:
            worst, where = d * tol / t, (ra["step"], k, x, y)
        if d > t:
            sys.exit(f"step {ra['step']}: {k} {x!r} vs {y!r}: relative difference {d:.3g} > {t}")
print(f"{len(a)} records agree; the largest relative difference is {worst / max(tol, 1e-30):.3g} of its tolerance"
      + (f" (step {where[0]}, {where[1]}: {where[2]} vs {where[3]})" if where else ""))
