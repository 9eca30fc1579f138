#!/usr/bin/python3
"""Writes docs/results.md from the runs of scripts/experiments (Debian's python3 with h5py,
numpy; matplotlib for the figures). Every number comes from the files of the runs:

  <runs>/<setting>-<method>/posteriors.h5     dmis classify: predictions, labels (test split)
  <runs>/<setting>-<method>/curve-ema-*.h5    dmis classify of each EMA snapshot (500 images)
  <runs>/<setting>-<method>/metrics.jsonl     dmis eval metrics of samples.h5 (if present)
  <runs>/<setting>-<method>/train_seconds     wall time of the training
  <runs>/<setting>-<method>/deck.yaml, log.txt

usage: scripts/results.py --runs runs/experiments-quick --budget quick --settings "sym40 ..."
                          --out docs/results.md
"""
import argparse
import glob
import json
import os
import re
import shutil
import sys

import h5py
import numpy as np

from results_common import machine, merged_jsonl

# DMIS paper, Fashion-MNIST (spec/method.md section 6): diffusion-classifier accuracy (Table 7)
PAPER = {
    "sym40": (90.11, 93.40),
    "asym40": (85.41, 93.20),
    "partial-random": (80.20, 94.27),
    "partial-class50": (66.03, 94.20),
    "ssl1": (78.37, 85.92),
    "ssl10": (90.50, 92.97),
}
TITLES = {
    "sym40": "symmetric noise 40 %",
    "asym40": "asymmetric noise 40 %",
    "partial-random": "partial labels, random (q = 0.5)",
    "partial-class50": "partial labels, class-50 %",
    "ssl1": "1 % labelled",
    "ssl10": "10 % labelled",
    "clean": "clean labels",
}
NOISY = ["sym40", "asym40", "partial-random", "partial-class50", "ssl1", "ssl10"]


def accuracy(path):
    with h5py.File(path, "r") as f:
        pred = np.asarray(f["predictions"])
        lab = np.asarray(f["labels"])
    return 100.0 * float(np.mean(pred == lab)), len(lab)


def curve(run_dir):
    pts = []
    for p in sorted(glob.glob(os.path.join(run_dir, "curve-ema-*.h5"))):
        step = int(re.search(r"curve-ema-(\d+)\.h5$", p).group(1))
        pts.append((step, accuracy(p)[0]))
    return pts


def metrics(run_dir):
    """The last metric line of each kind in metrics.jsonl, merged."""
    return merged_jsonl(os.path.join(run_dir, "metrics.jsonl"))


def deck_items(run_dir):
    """{section.key: value} of a run's resolved deck (comments dropped)."""
    out, section = {}, None
    path = os.path.join(run_dir, "deck.yaml")
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].rstrip()
            if re.match(r"^\S.*:\s*$", line):
                section = line.strip()[:-1]
            m = re.match(r"^\s+(\w+):\s*(.*)$", line)
            if m and section:
                out[f"{section}.{m.group(1)}"] = m.group(2).strip()
    return out


def deck_value(run_dir, key):
    """One value of a run's resolved deck ("section.key"), None if absent."""
    return deck_items(run_dir).get(key)


def last_losses(run_dir):
    """The generative and classification losses of the last stats.jsonl line."""
    path = os.path.join(run_dir, "stats.jsonl")
    last = None
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    last = json.loads(line)
    return (None, None) if last is None else (last.get("loss"), last.get("loss_cls"))


def ablation_rows(runs_dir, settings, runs):
    """The base dmis run and every <setting>-dmis-<tag> variant, with their deck differences."""
    rows = []
    for s in settings:
        variants = sorted(glob.glob(os.path.join(runs_dir, f"{s}-dmis-*")))
        if not variants:
            continue
        base_dir = runs[(s, "dmis")]["dir"]
        base = deck_items(base_dir)
        for d in [base_dir] + variants:
            if not os.path.isdir(d):
                continue
            r = {"metrics": metrics(d)}
            post = os.path.join(d, "posteriors.h5")
            if os.path.exists(post):
                r["acc"], _ = accuracy(post)
            post = os.path.join(d, "posteriors-k1.h5")
            if os.path.exists(post):
                r["acc_k1"], _ = accuracy(post)
            r["loss"], r["loss_cls"] = last_losses(d)
            items = deck_items(d)
            diff = [f"`{k}: {base.get(k, '–')} → {v}`" for k, v in sorted(items.items())
                    if k != "run.name" and base.get(k) != v]
            rows.append((s, os.path.basename(d), ", ".join(diff) if d != base_dir else "(the main run)", r))
    return rows


def minutes(run):
    return "–" if not run.get("seconds") else f"{run['seconds'] / 60:.1f}"


def fmt(v, nd=1):
    return "–" if v is None else f"{v:.{nd}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("--budget", required=True)
    ap.add_argument("--settings", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    settings = a.settings.split()
    runs = {}
    for s in settings:
        for m in ("vanilla", "dmis"):
            d = os.path.join(a.runs, f"{s}-{m}")
            r = {"dir": d}
            post = os.path.join(d, "posteriors.h5")
            if os.path.exists(post):
                r["acc"], r["n_test"] = accuracy(post)
            post = os.path.join(d, "posteriors-k1.h5")
            if os.path.exists(post):
                r["acc_k1"], _ = accuracy(post)
            r["curve"] = curve(d)
            r["metrics"] = metrics(d)
            ts = os.path.join(d, "train_seconds")
            r["seconds"] = float(open(ts).read()) if os.path.exists(ts) else None
            runs[(s, m)] = r

    img_dir = os.path.join(os.path.dirname(a.out), "img", f"results-{a.budget}")
    os.makedirs(img_dir, exist_ok=True)
    figures = []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        with_curves = [s for s in settings if runs[(s, "vanilla")]["curve"] or runs[(s, "dmis")]["curve"]]
        if with_curves:
            n = len(with_curves)
            cols = min(4, n)
            rows = (n + cols - 1) // cols
            fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
            for i, s in enumerate(with_curves):
                ax = axes[i // cols][i % cols]
                for m, style in (("vanilla", "o--"), ("dmis", "s-")):
                    c = runs[(s, m)]["curve"]
                    if c:
                        ax.plot([p[0] for p in c], [p[1] for p in c], style, label=m, ms=3)
                ax.set_title(TITLES.get(s, s), fontsize=9)
                ax.set_xlabel("training step", fontsize=8)
                ax.set_ylabel("accuracy %", fontsize=8)
                ax.tick_params(labelsize=7)
                ax.grid(alpha=0.3)
                ax.legend(fontsize=7)
            for j in range(n, rows * cols):
                axes[j // cols][j % cols].axis("off")
            fig.tight_layout()
            path = os.path.join(img_dir, "accuracy-vs-steps.png")
            fig.savefig(path, dpi=110)
            figures.append(("Diffusion-classifier accuracy (250 test images, 1 noise level) of the "
                            "EMA snapshots against training steps", path))
    except ImportError:
        print("results.py: matplotlib missing: no figures", file=sys.stderr)
    grids = []
    for s in settings:
        for m in ("vanilla", "dmis"):
            png = os.path.join(runs[(s, m)]["dir"], "samples.png")
            if os.path.exists(png) and s in ("sym40", "asym40"):
                dst = os.path.join(img_dir, f"samples-{s}-{m}.png")
                shutil.copyfile(png, dst)
                grids.append((f"{TITLES[s]}, {m}", dst))

    rel = lambda p: os.path.relpath(p, os.path.dirname(a.out))
    any_run = next((r for r in runs.values() if os.path.exists(os.path.join(r["dir"], "deck.yaml"))), None)
    L = []
    L.append("# Results: DMIS on Fashion-MNIST under imprecise supervision\n")
    L.append("Written by `scripts/results.py` from the runs of `scripts/experiments --budget "
             f"{a.budget}`; every number below is read from the files of those runs "
             f"(`{a.runs}/<setting>-<method>/`). Regenerate everything with\n")
    L.append("```\nscripts/experiments --budget " + a.budget + "\n```\n")
    L.append("or one setting with `--settings sym40`, and the report alone with `--only report`.\n")
    L.append("Corrupted images (missing pixels, blur: Ambient Diffusion, DiffEM, and noisy labels with "
             "missing pixels together) are in [results-corrupted.md](results-corrupted.md), written by "
             "`scripts/experiments-corrupted`.\n")
    L.append("## Budget\n")
    if any_run:
        d = any_run["dir"]
        L.append(f"- network: `{deck_value(d, 'network.preset')}`, base {deck_value(d, 'network.base')}, "
                 f"mults {deck_value(d, 'network.mults')}, n_blocks {deck_value(d, 'network.n_blocks')}, "
                 f"attention at {deck_value(d, 'network.attn_res')}")
        L.append(f"- training: {deck_value(d, 'train.kimg')} kimg at batch {deck_value(d, 'train.batch')}, "
                 f"lr {deck_value(d, 'train.lr')}, EMA half-life {deck_value(d, 'train.ema_halflife_kimg')} kimg; "
                 f"dmis: vanilla warm-up {deck_value(d, 'method.warmup_kimg')} kimg, then the DMIS terms "
                 f"(classifier fraction {deck_value(d, 'method.classifier_fraction')}, "
                 f"K = {deck_value(d, 'method.timesteps')})")
        L.append(f"- diffusion classifier: {deck_value(d, 'classify.points')} noise levels, "
                 f"{runs[(settings[0], 'dmis')].get('n_test', '?')} test images (the first of the test split)")
    secs = [r["seconds"] for r in runs.values() if r["seconds"]]
    if secs:
        L.append(f"- wall time of training: {min(secs)/60:.1f} to {max(secs)/60:.1f} min a run, "
                 f"{sum(secs)/3600:.2f} h in all")
    L.append("- machine: " + machine({f"{s}-{m}": r["dir"] for (s, m), r in runs.items()}))
    L.append("- the paper: a 55.7 M network, 200k steps at batch 128 (about 25 600 kimg, 350x this "
             "budget), on GPUs\n")

    L.append("## Diffusion-classifier accuracy on the real test set (the paper's Table 7 measure)\n")
    L.append("| setting | vanilla | dmis | gap | paper vanilla | paper dmis | training min (vanilla / dmis) |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    worse = []
    for s in settings:
        v, d = runs[(s, "vanilla")].get("acc"), runs[(s, "dmis")].get("acc")
        gap = None if v is None or d is None else d - v
        pv, pd = PAPER.get(s, (None, None))
        L.append(f"| {TITLES.get(s, s)} | {fmt(v)} | {fmt(d)} | {'' if gap is None else f'{gap:+.1f}'} | "
                 f"{fmt(pv, 2)} | {fmt(pd, 2)} | {minutes(runs[(s, 'vanilla')])} / {minutes(runs[(s, 'dmis')])} |")
        if s in NOISY and gap is not None and gap <= 0:
            worse.append(s)
    L.append("")
    if worse:
        L.append("DMIS does **not** beat vanilla here in: " + ", ".join(TITLES[s] for s in worse) + ".\n")

    if any("acc_k1" in r for r in runs.values()):
        L.append("The same classifier with one noise level, the median σ = exp(P_mean) at which DMIS's "
                 "classification term trains (K = 1 in the budget above; `classify.points=1`), on the "
                 "same test images:\n")
        L.append("| setting | vanilla | dmis | gap |")
        L.append("|---|---:|---:|---:|")
        for s in settings:
            v, d = runs[(s, "vanilla")].get("acc_k1"), runs[(s, "dmis")].get("acc_k1")
            gap = "" if v is None or d is None else f"{d - v:+.1f}"
            L.append(f"| {TITLES.get(s, s)} | {fmt(v)} | {fmt(d)} | {gap} |")
        L.append("")

    not_run = [s for s in settings if runs[(s, "vanilla")].get("acc") is None or runs[(s, "dmis")].get("acc") is None]
    if not_run:
        L.append("**Not run yet** at this budget: " + ", ".join(TITLES.get(s, s) for s in not_run) +
                 f" (`scripts/experiments --budget {a.budget} --settings \"{' '.join(not_run)}\"`).\n")
    have_metrics = any(r["metrics"] for r in runs.values())
    if have_metrics:
        L.append("## Generated samples, judged in the evaluator's features\n")
        ev = next(r["metrics"] for r in runs.values() if r["metrics"])
        if "evaluator_test_accuracy" in ev:
            L.append(f"Evaluator (the project's CNN, trained on the clean training split): test accuracy "
                     f"{100 * ev['evaluator_test_accuracy']:.2f} %. Samples: "
                     f"{ev.get('n_generated', '?')} per run (`dmis sample`, 18 Heun steps, no guidance).\n")
        cols = [("accuracy", "generated-sample accuracy %", 100, 1, +1),
                ("fd", "FD", 1, 2, -1), ("cw_fd", "CW-FD", 1, 2, -1),
                ("density", "density", 1, 3, +1), ("coverage", "coverage", 1, 3, +1),
                ("cas", "CAS %", 100, 1, +1)]
        for key, title, scale, nd, better in cols:
            if not any(key in r["metrics"] for r in runs.values()):
                continue
            L.append(f"### {title} ({'higher' if better > 0 else 'lower'} is better)\n")
            L.append("| setting | vanilla | dmis | gap (dmis - vanilla) | dmis better? |")
            L.append("|---|---:|---:|---:|:---:|")
            for s in settings:
                v = runs[(s, "vanilla")]["metrics"].get(key)
                d = runs[(s, "dmis")]["metrics"].get(key)
                v = None if v is None else scale * v
                d = None if d is None else scale * d
                gap = "" if v is None or d is None else f"{d - v:+.{nd}f}"
                ok = "" if v is None or d is None else ("yes" if (d - v) * better > 0 else "**no**")
                L.append(f"| {TITLES.get(s, s)} | {fmt(v, nd)} | {fmt(d, nd)} | {gap} | {ok} |")
            L.append("")
    else:
        L.append("Generative measures: not computed (no `metrics.jsonl` in the runs; "
                 "`scripts/experiments --only eval` makes them).\n")

    cond = {}
    for m in ("vanilla", "dmis"):
        path = os.path.join(a.runs, f"sym40-{m}", "condense.jsonl")
        if os.path.exists(path):
            for line in open(path):
                if line.strip():
                    r = json.loads(line)
                    cond[(m, r["ipc"])] = (100 * r["mean"], 100 * r["std"], r["seeds"])
    if cond:
        L.append("## Noisy dataset condensation, symmetric 40 % (the paper's Table 3 measure)\n")
        L.append("`dmis condense` (docs/evaluation.md) on the final EMA snapshot: IPC generated images "
                 "per class train the evaluator architecture alone; accuracy on the real test set, "
                 "mean ± std over seeds.\n")
        L.append("| IPC | vanilla | dmis | paper dmis |")
        L.append("|---:|---:|---:|---:|")
        paper = {10: 70.18, 50: 80.73, 100: 84.26}
        for ipc in sorted({k[1] for k in cond}):
            cells = []
            for m in ("vanilla", "dmis"):
                v = cond.get((m, ipc))
                cells.append("–" if v is None else f"{v[0]:.1f} ± {v[1]:.1f} ({v[2]} seeds)")
            L.append(f"| {ipc} | {cells[0]} | {cells[1]} | {fmt(paper.get(ipc), 2)} |")
        L.append("")
    ablations = ablation_rows(a.runs, settings, runs)
    if ablations:
        L.append("## Variants (same budget, one deck key changed)\n")
        L.append("Runs named `<setting>-dmis-<tag>` beside the main ones, with the deck keys in which "
                 "they differ from `<setting>-dmis`.\n")
        L.append("| setting | run | deck change | diffusion-classifier accuracy % (2 levels / 1 level) | "
                 "generated-sample accuracy % | FD | CW-FD | final L_gen | final L_cls |")
        L.append("|---|---|---|---:|---:|---:|---:|---:|---:|")
        for s, name, diff, r in ablations:
            m = r["metrics"]
            L.append(f"| {TITLES.get(s, s)} | `{name}` | {diff} | {fmt(r.get('acc'))} / {fmt(r.get('acc_k1'))} | "
                     f"{fmt(None if 'accuracy' not in m else 100 * m['accuracy'])} | "
                     f"{fmt(m.get('fd'), 2)} | {fmt(m.get('cw_fd'), 2)} | "
                     f"{fmt(r.get('loss'), 3)} | {fmt(r.get('loss_cls'), 3)} |")
        L.append("")
    discussion = os.path.join(os.path.dirname(a.out), f"results-discussion-{a.budget}.md")
    if os.path.exists(discussion):
        L.append("## Discussion\n")
        L.append(f"Where DMIS does not win, and why: [{os.path.basename(discussion)}]"
                 f"({rel(discussion)}) (written by hand from the numbers above).\n")
    if figures or grids:
        L.append("## Figures\n")
        for cap, p in figures:
            L.append(f"![{cap}]({rel(p)})\n\n{cap}.\n")
        for cap, p in grids:
            L.append(f"Samples ({cap}), one row per class:\n\n![{cap}]({rel(p)})\n")
    L.append("## Commands\n")
    L.append("```")
    L.append(f"scripts/experiments --budget {a.budget}            # train, sample, classify, evaluate, report")
    L.append("# one run by hand, e.g. symmetric noise, dmis:")
    L.append("build/bin/dmis train inputs/quickstart.yaml --set run.name=sym40-dmis --set method.name=dmis \\")
    L.append(f"    --set run.out_dir={a.runs} --set data.path=data/fmnist.h5 --set run.keep_checkpoints=20")
    L.append(f"build/bin/dmis classify {a.runs}/sym40-dmis/deck.yaml      # or the deck + the same --set")
    L.append(f"build/bin/dmis eval metrics {a.runs}/sym40-dmis/samples.h5 --evaluator {a.runs}/evaluator.h5 --data data/fmnist.h5")
    L.append(f"build/bin/dmis condense {a.runs}/sym40-dmis/deck.yaml --ipc 10,50 --seeds 2   # quick budget")
    L.append("```\n")
    text = "\n".join(L) + "\n"
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, a.out)
    print(f"results.py: wrote {a.out}")


if __name__ == "__main__":
    main()
