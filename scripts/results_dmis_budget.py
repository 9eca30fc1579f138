#!/usr/bin/env python3
# Writes docs/runs-dmis-budget/README.md from the archived small files (72 kimg: the ablation and
# seeds archives; 144 kimg: docs/runs-dmis-budget) and the hand reading in docs/runs-dmis-budget/reading.md.
import json, os
R = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs")
def metrics(d):
    m = {}
    p = os.path.join(d, "metrics.jsonl")
    if os.path.exists(p):
        for l in open(p):
            m.update({k: v for k, v in json.loads(l).items() if k in ("accuracy", "fd", "cw_fd")})
    c = os.path.join(d, "classify.json")
    if os.path.exists(c):
        m["dc"] = json.load(open(c))["accuracy"]
    return m
runs = [("vanilla", "runs-seeds/sym40/seed1/vanilla", "no DMIS terms"),
        ("dmis", "runs-dmis-ablations/ramp", "the quickstart deck (beta 1, ramp-in 8 kimg)"),
        ("beta0.1", "runs-dmis-ablations/beta0.1", "the classification term at beta 0.1"),
        ("cls-sigma0.3", "runs-dmis-ablations/cls-sigma0.3", "the classification term at sigma 0.30 (targets at 2.4)")]
def f(m, k, pct):
    if k not in m: return "–"
    return f"{100*m[k]:.1f} %" if pct else f"{m[k]:.2f}"
L = ["# The budget test of issue 18: the quickstart runs at 72 and at 144 kimg", "",
     "Made by `scripts/dmis-budget` (each finished 72-kimg run continued to 144 kimg with its own resolved",
     "deck; the learning rate is constant after its ramp-up, so the continued run is the one that would",
     "have been trained that long). Diffusion classifier: 8 noise levels, the first 1000 test images,",
     "standard error 1.6 points. Samples: 500 (50 per class, 18 Heun steps) judged by the clean",
     "evaluator of `docs/results-seeds.md` (86.5 % on the test set). The 72-kimg rows are the runs of",
     "`docs/runs-dmis-ablations/` and `docs/runs-seeds/`; the 144-kimg files are in the folders here.", "",
     "| run | what | classifier 72 -> 144 kimg | samples right 72 -> 144 | FD 72 -> 144 | CW-FD 72 -> 144 |",
     "|---|---|---:|---:|---:|---:|"]
for name, src, what in runs:
    a, b = metrics(os.path.join(R, src)), metrics(os.path.join(R, "runs-dmis-budget", name))
    L.append(f"| {name} | {what} | {f(a,'dc',1)} -> {f(b,'dc',1)} | {f(a,'accuracy',1)} -> {f(b,'accuracy',1)} | "
             f"{f(a,'fd',0)} -> {f(b,'fd',0)} | {f(a,'cw_fd',0)} -> {f(b,'cw_fd',0)} |")
L += ["", open(os.path.join(R, "runs-dmis-budget", "reading.md")).read() if os.path.exists(os.path.join(R, "runs-dmis-budget", "reading.md")) else ""]
open(os.path.join(R, "runs-dmis-budget", "README.md"), "w").write("\n".join(L))
print("\n".join(L[9:]))
