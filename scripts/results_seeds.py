#!/usr/bin/env python3
"""The report of scripts/experiments-seeds: vanilla against DMIS over seeds, paired by their shared
warm-up, read from the archived small files (docs/runs-seeds/<setting>/seed<k>/<method>/).

    /usr/bin/python3 scripts/results_seeds.py --runs docs/runs-seeds --out docs/results-seeds.md

For each measure: mean +- sd over seeds per method, and the paired difference DMIS - vanilla as
mean +- its standard error (sd of the per-seed differences / sqrt(n)); "clear" when the
difference is more than twice that standard error in the direction of better (issue 18's test).
"""
import argparse
import glob
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results_common import machine, merged_jsonl  # noqa: E402

NAMES = {
    "sym40": "symmetric noise 40 %", "asym40": "asymmetric noise 40 %",
    "partial-random": "partial labels, random (q = 0.5)", "partial-class50": "partial labels, class-50 %",
    "ssl1": "1 % labelled", "ssl10": "10 % labelled", "clean": "clean labels",
}
ORDER = list(NAMES)


def stats(run):
    path = os.path.join(run, "stats.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


IMAGES = None  # --images N: the N-image evaluation (classify-N.json, scripts/experiments-reclassify)


def measures(run):
    """{measure: value} of one run; absent measures left out."""
    out = {}
    tail = "" if IMAGES is None else f"-{IMAGES}"
    c = os.path.join(run, f"classify{tail}.json")
    if os.path.exists(c):
        with open(c) as f:
            j = json.load(f)
        out["dc_acc"] = 100 * j["accuracy"]
        out["dc_images"] = j["images"]
        out["dc_precision"] = j.get("precision", "fp32")
    c = os.path.join(run, f"classify-high{tail}.json")
    if os.path.exists(c):
        with open(c) as f:
            out["dc_high"] = 100 * json.load(f)["accuracy"]
    m = merged_jsonl(os.path.join(run, "metrics.jsonl"))
    if "accuracy" in m:
        out["sample_acc"] = 100 * m["accuracy"]
    for k in ("fd", "cw_fd", "density", "coverage"):
        if m.get(k) is not None:
            out[k] = m[k]
    if "evaluator_test_accuracy" in m:
        out["evaluator"] = 100 * m["evaluator_test_accuracy"]
    s = stats(run)
    if s:
        last = s[-1]["kimg"]
        tail = [r for r in s if r["kimg"] > last - 8]  # the last 8 kimg
        out["loss_gen"] = sum(r["loss"] for r in tail) / len(tail)
        if any(r.get("dmis") for r in tail):
            for k, name in (("loss_cls", "loss_cls"), ("target_entropy", "H_q"), ("target_acc", "q_acc"),
                            ("ema_acc", "f_acc"), ("observed_acc", "label_acc"), ("gen_acc", "gen_acc"),
                            ("pseudo_share", "pseudo_share"), ("pseudo_acc", "pseudo_acc")):
                v = [r[k] for r in tail if r.get(k) is not None]  # null where it does not apply
                if v:
                    out[name] = sum(v) / len(v) * (100 if name.endswith(("acc", "share")) else 1)
    return out


def gen_loss_excess(vanilla, dmis):
    """Largest relative excess of DMIS's logged generative loss over vanilla's at the same step,
    over the DMIS phase (each logged value a mean over its interval)."""
    v = {r["step"]: r["loss"] for r in stats(vanilla)}
    worst = None
    for r in stats(dmis):
        if r.get("dmis") and r["step"] in v:
            e = r["loss"] / v[r["step"]] - 1
            worst = e if worst is None else max(worst, e)
    return worst


def mean_sd(xs):
    n = len(xs)
    if n == 0:
        return None, None
    m = sum(xs) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1)) if n > 1 else float("nan")
    return m, sd


def fmt(m, sd, nd):
    if m is None:
        return "–"
    return f"{m:.{nd}f}" if sd is None or math.isnan(sd) else f"{m:.{nd}f} ± {sd:.{nd}f}"


MAIN = [  # key, title, decimals, higher is better
    ("dc_acc", "diffusion-classifier accuracy %", 1, True),
    ("dc_high", "diffusion-classifier accuracy %, sigma 2-6", 1, True),
    ("sample_acc", "generated-sample accuracy %", 1, True),
    ("cw_fd", "CW-FD", 2, False),
    ("fd", "FD", 2, False),
    ("density", "density", 3, True),
    ("coverage", "coverage", 3, True),
    ("loss_gen", "L_gen, last 8 kimg", 4, False),
]
# (key, title, decimals, optional): an optional column is shown only where some run has it
INTERNALS = [("loss_cls", "L_cls", 2, False), ("H_q", "H(q) nats", 2, False), ("q_acc", "q right %", 1, False),
             ("f_acc", "f_phi right %", 1, False), ("label_acc", "labels right %", 1, False),
             ("gen_acc", "gen class right %", 1, False),
             # the samples without a label (stats.jsonl from 2026-12-07 on)
             ("pseudo_share", "unlabelled with a class %", 1, True), ("pseudo_acc", "their class right %", 1, True)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="docs/runs-seeds")
    ap.add_argument("--out", default="docs/results-seeds.md")
    ap.add_argument("--regen", default=None, help="the command that made the runs (for the report)")
    ap.add_argument("--images", type=int, default=None,
                    help="report the N-image diffusion-classifier evaluation (classify-N.json)")
    a = ap.parse_args()
    global IMAGES
    IMAGES = a.images
    settings = [s for s in ORDER if os.path.isdir(os.path.join(a.runs, s))]
    if IMAGES is not None:  # the settings that have the N-image evaluation
        settings = [s for s in settings
                    if glob.glob(os.path.join(a.runs, s, "seed*", "*", f"classify*-{IMAGES}.json"))]
    L = ["# Vanilla against DMIS over seeds (paired)", "",
         "Written by `scripts/results_seeds.py` from the files in `" + a.runs + "/` (copied there by "
         "`scripts/experiments-seeds`); every number below is read from them. The runs: the quickstart "
         "deck (`inputs/quickstart.yaml`) with the setting's supervision keys and `run.seed` changed. "
         "For each seed one warm-up of plain conditional training to the step where DMIS switches on, "
         "then from that same checkpoint the vanilla run and the DMIS run to the deck's end: the "
         "difference of a pair is the DMIS phase's alone.", "",
         "Regenerate: `" + (a.regen or "scripts/experiments-seeds --settings \"" + " ".join(settings) + "\" --seeds \"1 2 3\"") + "`.", ""]
    dirs = {}
    for s in settings:
        seeds = sorted(glob.glob(os.path.join(a.runs, s, "seed*")), key=lambda p: int(p.rsplit("seed", 1)[1]))
        rows = []
        for sd in seeds:
            v, d = os.path.join(sd, "vanilla"), os.path.join(sd, "dmis")
            dirs[f"{s}/{os.path.basename(sd)}/vanilla"] = v
            dirs[f"{s}/{os.path.basename(sd)}/dmis"] = d
            rows.append((os.path.basename(sd), measures(v), measures(d), gen_loss_excess(v, d)))
        L += [f"## {NAMES[s]} (`{s}`)", ""]
        imgs = sorted({r[1].get("dc_images") for r in rows if r[1].get("dc_images")} |
                      {r[2].get("dc_images") for r in rows if r[2].get("dc_images")})
        precs = sorted({r[i].get("dc_precision") for r in rows for i in (1, 2) if r[i].get("dc_precision")})
        high = any("dc_high" in r[i] for r in rows for i in (1, 2))
        levels = "the window, and sigma 2-6" if high else "the window"
        L.append(f"{len(rows)} seeds ({', '.join(r[0] for r in rows)}); diffusion classifier at 8 noise levels ({levels}) on the "
                 f"first {', '.join(map(str, imgs)) or '?'} test images"
                 f"{'' if precs in ([], ['fp32']) else ' (GEMMs in ' + ', '.join(precs) + ')'}"
                 f"; samples: 50 per class, 18 Heun steps.")
        L.append("")
        L += ["| measure | vanilla | dmis | dmis − vanilla (± SE, paired) | clear (> 2 SE, better)? |",
              "|---|---:|---:|---:|:---:|"]
        for key, title, nd, higher in MAIN:
            pairs = [(r[1][key], r[2][key]) for r in rows if key in r[1] and key in r[2]]
            if not pairs:
                continue
            vm, vs = mean_sd([p[0] for p in pairs])
            dm, ds = mean_sd([p[1] for p in pairs])
            diffs = [p[1] - p[0] for p in pairs]
            fm, fs = mean_sd(diffs)
            se = fs / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
            better = fm > 0 if higher else fm < 0
            clear = "–" if math.isnan(se) else ("**yes**" if better and abs(fm) > 2 * se else "no")
            L.append(f"| {title} | {fmt(vm, vs, nd)} | {fmt(dm, ds, nd)} | {fm:+.{nd}f}"
                     f"{'' if math.isnan(se) else f' ± {se:.{nd}f}'} | {clear} |")
        L.append("")
        L += ["Per seed (vanilla / dmis):", "",
              "| seed | " + " | ".join(t for _, t, _, _ in MAIN[:5]) + " | largest L_gen excess over vanilla at the same step |",
              "|---|" + "---:|" * 6]
        for name, v, d, ex in rows:
            cells = []
            for key, _, nd, _ in MAIN[:5]:
                cells.append(f"{v[key]:.{nd}f} / {d[key]:.{nd}f}" if key in v and key in d else "–")
            L.append(f"| {name} | " + " | ".join(cells) + f" | {'–' if ex is None else f'{100 * ex:+.1f} %'} |")
        L.append("")
        paired = []  # each seed's difference on the same images, with the evaluation's SE
        for sd in seeds:
            pj = os.path.join(sd, f"paired-{IMAGES}.json")
            if IMAGES is not None and os.path.exists(pj):
                with open(pj) as f:
                    paired.append((os.path.basename(sd), json.load(f)))
        if paired:
            L += [f"Each seed's DMIS − vanilla on the same {IMAGES} images, ± the standard error of that "
                  "difference over the images (the evaluation's own noise; `scripts/paired_accuracy.py`):", "",
                  "| seed | classifier, window | classifier, sigma 2-6 |", "|---|---:|---:|"]
            for name, pj in paired:
                cells = [f"{100 * pj[k]['diff']:+.1f} ± {100 * pj[k]['se']:.1f}" if k in pj else "–"
                         for k in ("window", "high")]
                L.append(f"| {name} | " + " | ".join(cells) + " |")
            L.append("")
        cols = [c for c in INTERNALS if not c[3] or any(c[0] in d for _, _, d, _ in rows)]
        L += ["DMIS internals over the last 8 kimg (stats.jsonl; the clean labels for auditing only):", "",
              "| seed | " + " | ".join(t for _, t, _, _ in cols) + " |", "|---|" + "---:|" * len(cols)]
        for name, _, d, _ in rows:
            L.append(f"| {name} | " + " | ".join(f"{d[k]:.{nd}f}" if k in d else "–" for k, t, nd, _ in cols) + " |")
        L.append("")
    ev = sorted({m.get("evaluator") for p in dirs.values() for m in [measures(p)] if m.get("evaluator")})
    if ev:
        L.append(f"Evaluator (the project's CNN, 1 epoch on the clean training split): test accuracy "
                 f"{', '.join(f'{e:.2f}' for e in ev)} %.")
        L.append("")
    L.append("Machine: " + machine(dirs) + ".")
    L.append("")
    notes = os.path.join(a.runs, "README.md")  # the hand-written reading of the tables
    if os.path.exists(notes):
        with open(notes) as f:
            L.append(f.read())
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(L))
    os.replace(tmp, a.out)
    print(f"results_seeds: {a.out} ({len(settings)} settings)")


if __name__ == "__main__":
    main()
