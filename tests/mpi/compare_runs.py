"""Compares the losses of two runs' stats.jsonl, step by step.

    python3 compare_runs.py A/stats.jsonl B/stats.jsonl TOL

TOL 0: every value equal (bitwise, as printed with 9 significant digits). TOL > 0: every value
within relative error TOL (absolute below 1e-6). Prints the largest relative difference.

Why 1e-5 between 1 and 2 ranks: the runs differ only in the order of one float32 sum per step
(each rank sums its shard's gradients, then MPI adds the two partial sums), about one ulp
(6e-8) of the gradient. Adam's update and the following steps carry that difference on without
amplifying it much over the few steps of a test (measured: at most ~1e-7 relative over 16
steps). A wrong shard, label, noise draw or normalisation changes the losses at 1e-3 or more.
"""
import json
import sys

KEYS = ("loss", "loss_cls", "loss_last", "loss_cls_last", "grad_norm", "kimg", "lr")


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


a, b, tol = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
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
        d = abs(x - y) / max(abs(x), abs(y), 1e-6 / tol)
        if d > worst:
            worst, where = d, (ra["step"], k, x, y)
        if d > tol:
            sys.exit(f"step {ra['step']}: {k} {x!r} vs {y!r}: relative difference {d:.3g} > {tol}")
print(f"{len(a)} records agree; largest relative difference {worst:.3g}"
      + (f" (step {where[0]}, {where[1]}: {where[2]} vs {where[3]})" if where else ""))
