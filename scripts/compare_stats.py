#!/usr/bin/env python3
"""The DMIS phase of two runs side by side, from their stats.jsonl (every logged DMIS step):
the loss and the E-step's audit figures (the clean labels for auditing only).

  scripts/compare_stats.py A/stats.jsonl B/stats.jsonl [--names "a b"]

Prints a markdown table: step, then for each figure "A / B"."""
import argparse
import json

KEYS = [("loss", "loss", 1, "{:.4f}"), ("ema_acc", "E-step f_phi right %", 100, "{:.1f}"),
        ("target_acc", "q right %", 100, "{:.1f}"), ("relabeled", "relabelled %", 100, "{:.1f}"),
        ("relabel_acc", "new class right %", 100, "{:.1f}"),
        ("relabel_was_right", "label was right %", 100, "{:.1f}"),
        ("pseudo_share", "unlabelled with a class %", 100, "{:.1f}"),
        ("pseudo_acc", "their class right %", 100, "{:.1f}")]


def load(path):
    rows = {}
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            if d.get("dmis"):
                rows[d["step"]] = d
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--names", default="A B")
    args = ap.parse_args()
    a, b = load(args.a), load(args.b)
    na, nb = args.names.split()
    print(f"| step | " + " | ".join(f"{label} ({na} / {nb})" for _, label, _, _ in KEYS) + " |")
    print("|---:|" + "---:|" * len(KEYS))
    for s in sorted(set(a) & set(b)):
        cells = []
        for key, _, mult, fmt in KEYS:
            u, v = a[s].get(key), b[s].get(key)
            show = lambda x: "-" if x is None else fmt.format(mult * x)
            cells.append(f"{show(u)} / {show(v)}")
        print(f"| {s} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
