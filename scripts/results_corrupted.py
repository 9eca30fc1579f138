#!/usr/bin/python3
"""Writes docs/results-corrupted.md from the runs of scripts/experiments-corrupted (Debian's
python3 with numpy). Every number is read from the run files:

  <runs>/<data>-<method>/metrics.jsonl     dmis eval metrics of the samples
  <runs>/<data>-<method>/train_seconds     wall time of training (DiffEM: laps + final model)
  <runs>/<data>-diffem/diffem/stats.jsonl  one record per DiffEM lap

usage: scripts/results_corrupted.py --runs runs/corrupted --out docs/results-corrupted.md
           [--runs MORE ...] [--archive docs/runs-corrupted]

Several --runs directories: a run found in more than one is taken from the last. --archive
copies the small files of every run in the report (the ones above, log.txt, deck.yaml, and the
classifier accuracy as classify.json; the sample grids stay in docs/img/) into that directory,
replacing what it held for that run, so that a later session can add runs and regenerate the page from
the archive and its new runs without training everything again.
"""
import argparse
import glob
import json
import os
import shutil

import numpy as np

from results_common import machine, merged_jsonl

DATA = {
    "clean": "clean images",
    "mask90": "90 % of pixels missing (mask:0.9)",
    "mask50": "50 % of pixels missing (mask:0.5)",
    "blur": "Gaussian blur, sigma 1.5 px (blur:1.5,noise:0.001)",
    "sym40mask50": "40 % symmetric label noise and 50 % of pixels missing",
}
METHOD = {
    "vanilla": "vanilla EDM on the data as given",
    "ambient": "Ambient Diffusion (delta 0.1)",
    "ambientedm": "Ambient Diffusion, lambda(sigma) on hidden pixels (method.hidden_weight: edm)",
    "diffem": "DiffEM (3 laps of 16 kimg, 5000 observations), final model (32 kimg)",
    "diffemppca": "DiffEM as above, PPCA start (a posterior draw; diffem.start: ppca)",
    "diffemppcamean": "DiffEM as above, PPCA start (posterior mean; diffem.start: ppca_mean)",
    "dmis": "DMIS on the observations",
    "dmisambient": "DMIS with Ambient's masked objective (method.ambient)",
}


def f(v, nd=2, scale=1):
    return "–" if v is None else f"{scale * v:.{nd}f}"


def late_stats(run_dir):
    """Mean loss and the gradient-norm range over the second half of a run's stats.jsonl."""
    path = os.path.join(run_dir, "stats.jsonl")
    if not os.path.exists(path):
        return None
    rows = [json.loads(l) for l in open(path) if l.strip()]
    rows = [r for r in rows if "loss" in r and "grad_norm" in r]
    late = rows[len(rows) // 2:]
    if not late:
        return None
    return (float(np.mean([r["loss"] for r in late])), min(r["grad_norm"] for r in late),
            max(r["grad_norm"] for r in late))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True, action="append")
    ap.add_argument("--archive")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = []
    found = {}
    for runs in a.runs:  # later directories win
        for d in glob.glob(os.path.join(runs, "*-*")):
            if os.path.isdir(d):
                found[os.path.basename(d)] = d
    for _, d in sorted(found.items()):
        name = os.path.basename(d)
        data, method = name.rsplit("-", 1)
        if data not in DATA or method not in METHOD:
            continue
        m = merged_jsonl(os.path.join(d, "metrics.jsonl"))
        ts = os.path.join(d, "train_seconds")
        secs = float(open(ts).read()) if os.path.exists(ts) else None
        if os.path.exists(os.path.join(d, "classify.json")):  # an archived run
            m.update(json.load(open(os.path.join(d, "classify.json"))))
        # the diffusion classifier on whole test images, and on test images with half their pixels
        # hidden (dmis classify --corrupt mask:0.5)
        for file, key in (("posteriors.h5", "dc_accuracy"), ("posteriors-mask50.h5", "dc_accuracy_mask50")):
            post = os.path.join(d, file)
            if os.path.exists(post):
                import h5py
                with h5py.File(post, "r") as h:
                    m[key] = float(np.mean(np.asarray(h["predictions"]) == np.asarray(h["labels"])))
        if not m and secs is None:
            continue  # not trained yet (or still training): listed under "Not run yet"
        rows.append((data, method, m, secs, d))
    order = {k: i for i, k in enumerate(["clean", "mask50", "mask90", "blur", "sym40mask50"])}
    rows.sort(key=lambda r: (order[r[0]], list(METHOD).index(r[1])))
    L = ["# Results: learning from corrupted images (Ambient Diffusion, DiffEM)\n",
         "Written by `scripts/results_corrupted.py` from the runs of `scripts/experiments-corrupted` "
         f"(`{'/`, `'.join(a.runs)}/`); regenerate with `scripts/experiments-corrupted` (resumable; "
         "`--only report` rewrites this page).\n",
         "Each method's run starts from its deck (`inputs/quickstart.yaml` for vanilla, "
         "`inputs/corrupted/mask90-ambient.yaml`, `mask90-diffem.yaml`, "
         "`sym40mask50-dmis-ambient.yaml`) with its data, name and variant overridden. "
         "`scripts/experiments-corrupted --only decks` lists where a rerun's deck differs from the "
         "archived run's: for the runs here only keys their method does not read, except the two "
         "DMIS runs (archived with `method.logit_scale: 1` and before the keys issue 18 added; a "
         "rerun trains the current DMIS) and the diffusion classifier's `classify.points` (2 "
         "then).\n",
         "Budget: the quickstart network (unet-s base 16, mults [1, 2, 2], one block, no attention, "
         "268k parameters), 72 kimg a model at batch 64, lr 0.002; samples: 50 per class, 18 Heun "
         "steps; measures in the features of the project's evaluator CNN against the real test set "
         "(docs/evaluation.md). Machine: " + machine({f"{r[0]}-{r[1]}": r[4] for r in rows}) + ".\n"]
    ev = next((r[2] for r in rows if r[2]), None)
    if ev and "evaluator_test_accuracy" in ev:
        L.append(f"Evaluator test accuracy: {100 * ev['evaluator_test_accuracy']:.2f} %.\n")
    L.append("## Samples\n")
    L.append("| data | method | FD ↓ | CW-FD ↓ | sample accuracy % ↑ | density ↑ | coverage ↑ | training |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for data, method, m, secs, _ in rows:
        L.append(f"| {DATA[data]} | {METHOD[method]} | {f(m.get('fd'))} | {f(m.get('cw_fd'))} | "
                 f"{f(m.get('accuracy'), 1, 100)} | {f(m.get('density'), 3)} | {f(m.get('coverage'), 3)} | "
                 f"{'–' if secs is None else f'{secs / 60:.1f} min'} |")
    L.append("")
    L.append("Training: wall time as the run recorded it (`train_seconds`); it depends on what else "
             "shared the machine (threads per run, runs side by side), so compare it only roughly.\n")
    for data, method, _, _, d in rows:
        if os.path.islink(d):
            L.append(f"The {DATA[data]} / {method} row is the run `{os.path.relpath(os.path.realpath(d))}` "
                     f"(linked: `scripts/experiments` trained it with the same deck).\n")
    by = {(r[0], r[1]): r[2] for r in rows}
    clean_fd = by.get(("clean", "vanilla"), {}).get("fd")
    for data in ("mask90", "mask50", "blur"):
        v = by.get((data, "vanilla"), {})
        for method, name in (("ambient", "Ambient"), ("diffem", "DiffEM"),
                             ("diffemppca", "DiffEM from the PPCA draw"),
                             ("diffemppcamean", "DiffEM from the PPCA mean")):
            o = by.get((data, method), {})
            if v.get("fd") is None or o.get("fd") is None:
                continue
            L.append(f"**{DATA[data]}:** {name}'s FD is {o['fd']:.2f} against vanilla's {v['fd']:.2f} "
                     f"({abs(100 * (1 - o['fd'] / v['fd'])):.0f} % "
                     f"{'lower' if o['fd'] < v['fd'] else '**higher**'}"
                     + (f"; the clean reference: {clean_fd:.2f}" if clean_fd is not None else "") +
                     f"); density {o.get('density', 0):.3f} against {v.get('density', 0):.3f}; "
                     f"generated-sample accuracy {100 * o.get('accuracy', float('nan')):.1f} against "
                     f"{100 * v.get('accuracy', float('nan')):.1f} %.\n")
    a50, e50 = by.get(("mask50", "ambient"), {}), by.get(("mask50", "ambientedm"), {})
    if a50.get("fd") is not None and e50.get("fd") is not None:
        ta, te = late_stats(found["mask50-ambient"]), late_stats(found["mask50-ambientedm"])
        grads = ""
        if ta and te:
            grads = (f" Gradient norms over the second half of training: {te[1]:.1f} to {te[2]:.1f} with "
                     f"lambda(sigma), {ta[1]:.1f} to {ta[2]:.1f} with the unit weight.")
        L.append("**The weight of the hidden pixels (50 % missing).** A pixel the observation has but "
                 "the further mask hides is an inpainting target whose error does not shrink with "
                 "sigma. With EDM's lambda(sigma) ~ 1 / sigma^2 on it (`method.hidden_weight: edm`, "
                 f"the first version) Ambient reaches FD {e50['fd']:.2f} and generated-sample accuracy "
                 f"{100 * e50.get('accuracy', float('nan')):.1f} %; with EDM's unit weight on the "
                 f"network output (1 / sigma_data^2, the default) FD {a50['fd']:.2f} and "
                 f"{100 * a50.get('accuracy', float('nan')):.1f} %." + grads +
                 " The losses are not comparable (different weights); docs/methods.md explains the "
                 "choice.\n")
    v90, a90 = by.get(("mask90", "vanilla"), {}), by.get(("mask90", "ambient"), {})
    if v90.get("accuracy") is not None and a90.get("accuracy") is not None:
        if max(v90["accuracy"], a90["accuracy"]) < 0.2:
            L.append(f"At 90 % missing pixels the generated-sample accuracies ({100 * v90['accuracy']:.1f} and "
                     f"{100 * a90['accuracy']:.1f} %) say that neither model makes recognisable classes at "
                     "this budget (72 kimg against the paper's 200 Mimg, about 2800x less); the grids are "
                     "below.\n")
        else:
            L.append(f"At 90 % missing pixels the class of a sample is recognisable to the evaluator for "
                     f"{100 * a90['accuracy']:.1f} % of Ambient's samples and {100 * v90['accuracy']:.1f} % of "
                     "vanilla's (chance: 10 %). Vanilla learns the observations as they are, mostly "
                     "missing pixels; Ambient never saw a whole image and draws whole garments (grids "
                     "below).\n")
    expected = ["clean-vanilla", "mask50-vanilla", "mask50-ambient", "mask50-ambientedm", "mask50-diffem", "mask50-diffemppcamean", "mask90-vanilla",
                "mask90-ambient", "mask90-diffem", "mask90-diffemppca", "mask90-diffemppcamean", "blur-vanilla", "blur-diffem", "sym40mask50-vanilla",
                "sym40mask50-ambient", "sym40mask50-dmis", "sym40mask50-dmisambient"]
    missing = [e for e in expected if not by.get(tuple(e.rsplit("-", 1)))]
    if missing:
        L.append("**Not run yet** (no evaluated samples in the runs directory): " + ", ".join(missing) +
                 ". `scripts/experiments-corrupted --runs \"...\"` runs them.\n")
    combined = [r for r in rows if r[0] == "sym40mask50"]
    if combined:
        L.append("## Noisy labels and missing pixels: the label posterior\n")
        L.append("Diffusion-classifier accuracy (`dmis classify`) on 2000 test images, whole (models "
                 "with the mask channel are given a mask of ones) and with half of their pixels hidden "
                 "as in training (`--corrupt mask:0.5 --corrupt-seed 2`; models with the mask channel "
                 "are given the mask, the others see the holes as zeros).\n")
        L.append("| method | whole test images % ↑ | 50 % of the pixels hidden % ↑ |")
        L.append("|---|---:|---:|")
        for data, method, m, secs, d in combined:
            L.append(f"| {METHOD[method]} | {f(m.get('dc_accuracy'), 1, 100)} | "
                     f"{f(m.get('dc_accuracy_mask50'), 1, 100)} |")
        L.append("")
        cm = {method: m for _, method, m, _, _ in combined}
        da, am = cm.get("dmisambient", {}), cm.get("ambient", {})
        if all(k in x for x in (da, am) for k in ("dc_accuracy", "fd", "accuracy")):
            text = (f"Both with the mask channel, DMIS with Ambient's objective against Ambient on the noisy "
                     f"labels: diffusion-classifier accuracy {100 * da['dc_accuracy']:.1f} against "
                     f"{100 * am['dc_accuracy']:.1f} %, FD of the samples {da['fd']:.2f} against {am['fd']:.2f}, "
                     f"generated-sample accuracy {100 * da['accuracy']:.1f} against {100 * am['accuracy']:.1f} %"
                     + (" (at this budget the label posterior helps the classifier, not the samples' FD)"
                        if da["dc_accuracy"] > am["dc_accuracy"] and da["fd"] > am["fd"] else "") + ".")
            dm, vm = cm.get("dmis", {}), cm.get("vanilla", {})
            if "dc_accuracy" in dm and "dc_accuracy" in vm:
                text += (f" Without the mask channel (trained on the observations as they are), vanilla "
                         f"classifies the whole test images at {100 * vm['dc_accuracy']:.1f} % and DMIS at "
                         f"{100 * dm['dc_accuracy']:.1f} %.")
                if "dc_accuracy_mask50" in dm and "dc_accuracy_mask50" in vm:
                    text += (f" On test images with holes like their training images they classify at "
                             f"{100 * vm['dc_accuracy_mask50']:.1f} % (vanilla) and "
                             f"{100 * dm['dc_accuracy_mask50']:.1f} % (DMIS)"
                             + (": the label posterior does help DMIS, on the distribution it was "
                                "trained on; without the mask channel nothing tells the network that "
                                "the holes are not part of the images, and what it learned does not "
                                "carry over to whole images"
                                if dm["dc_accuracy_mask50"] > vm["dc_accuracy_mask50"]
                                and dm["dc_accuracy"] < vm["dc_accuracy"] else "") + ".")
            L.append(text + "\n")
    def ppca_note(data):  # the same data from the PPCA starts, when they ran
        parts = [f"{what} {by[(data, k)]['fd']:.2f}" for k, what in
                 (("diffemppca", "from a PPCA draw"), ("diffemppcamean", "from the PPCA posterior mean"))
                 if "fd" in by.get((data, k), {})]
        return (" With the PPCA start (`diffem.start: ppca`, sections below) the final model's FD is "
                + " and ".join(parts) + ".") if parts else ""

    def final_vs(data, m):  # the final DiffEM model against vanilla and Ambient on the same data
        v, am = by.get((data, "vanilla"), {}), by.get((data, "ambient"), {})
        if "fd" not in m or "fd" not in v:
            return ""
        t = f" The final model's samples have FD {m['fd']:.2f} against vanilla's {v['fd']:.2f}"
        if "fd" in am:
            t += f" and Ambient's {am['fd']:.2f}"
        return t + " at the same budget."

    for data, method, m, secs, d in rows:
        if not method.startswith("diffem"):
            continue
        laps = [json.loads(l) for l in open(os.path.join(d, "diffem", "stats.jsonl")) if l.strip()] \
            if os.path.exists(os.path.join(d, "diffem", "stats.jsonl")) else []
        if not laps:
            continue
        start = {"diffem": "", "diffemppca": ", PPCA start (draw)", "diffemppcamean": ", PPCA start (mean)"}[method]
        L.append(f"## DiffEM reconstructions, {DATA[data]}{start}\n")
        L.append("Against the clean training images (kept in the dataset file with `--keep-clean`, "
                 "never read by training). Lap 0 is the start: "
                 + ("the blurred observations themselves (no pixel is missing).\n" if data == "blur" else
                    "the observed pixels, the per-pixel mean of the observed values elsewhere.\n"
                    if method == "diffem" else
                    "the observed pixels, and elsewhere "
                    + ("a draw from" if method == "diffemppca" else "the mean of")
                    + " the posterior under a rank-16 Gaussian (PPCA) prior fitted to the observations by EM "
                    "(`diffem.start: " + ("ppca" if method == "diffemppca" else "ppca_mean") + "`).\n"))
        rm = merged_jsonl(os.path.join(d, "recon_metrics.jsonl"))
        if rm:
            L.append(f"The last reconstructions in the evaluator's features against the real test "
                     f"set: FD {f(rm.get('fd'))}, CW-FD {f(rm.get('cw_fd'))}, accuracy of their labels "
                     f"{f(rm.get('accuracy'), 1, 100)} %, density {f(rm.get('density'), 3)}, coverage "
                     f"{f(rm.get('coverage'), 3)} ({rm.get('n_generated', '?')} images).\n")
        L.append("| lap | M-step loss | PSNR dB ↑ | MSE ↓ | MSE on missing pixels ↓ | lap time |")
        L.append("|---:|---:|---:|---:|---:|---:|")
        for r in laps:
            L.append(f"| {r['lap']} | {f(r.get('loss'), 4)} | {f(r.get('psnr'))} | {f(r.get('mse'), 4)} | "
                     f"{f(r.get('mse_missing'), 4)} | {f(r.get('seconds'), 0)} s |")
        L.append("")
        ps = [r.get("psnr") for r in laps]
        if len(ps) >= 3 and all(p is not None for p in ps):
            rising = all(b >= a for a, b in zip(ps[1:], ps[2:]))
            if ps[-1] > ps[0]:
                L.append(f"The reconstructions improve over the laps: PSNR {ps[0]:.2f} dB at the start, "
                         f"{ps[-1]:.2f} dB after lap {laps[-1]['lap']}"
                         + (", rising every lap." if rising and ps[1] > ps[0] else ".") + "\n")
            elif method == "diffem":
                L.append(f"**Here DiffEM does not get going.** Lap 1's posterior samples ({ps[1]:.2f} dB) "
                         f"are worse than the start ({ps[0]:.2f} dB), and the later laps "
                         + ("gain little" if rising else "do not climb steadily")
                         + f" ({ps[-1]:.2f} dB after lap {laps[-1]['lap']}). The start fills the missing "
                         "pixels with the per-pixel mean. With this few pixels observed, the first M-step "
                         "learns from images that are mostly that mean, and EM moves slowly from such a "
                         "start. The DiffEM code starts from posterior samples under a Gaussian prior "
                         "fitted by EM (low-rank covariance, rank 64) and runs about 20 laps of about 50k "
                         "optimiser steps each; here there are 3 laps of 250 steps (docs/methods.md)."
                         + final_vs(data, m) + ppca_note(data) + "\n")
            else:
                falling = all(b < a for a, b in zip(ps[1:], ps[2:]))
                L.append(f"PSNR {ps[0]:.2f} dB at the start, {ps[-1]:.2f} dB after lap {laps[-1]['lap']}: "
                         "the laps do not beat the start in PSNR"
                         + (", and from lap 1 on they lose a little each lap: with 250 optimiser steps a "
                            "lap the posterior denoiser does not match the posterior it learns from, and "
                            "each lap learns from the draws of the one before." if falling else ".")
                         + (" The start is a posterior mean and the laps are posterior draws; a draw "
                            "from the right posterior has about twice the mean's squared error, so "
                            "PSNR alone does not say which is the better training set."
                            if method == "diffemppcamean" else "") + final_vs(data, m) + "\n")
    img_dir = os.path.join(os.path.dirname(a.out), "img", "results-corrupted")
    grids = []
    for data, method, m, secs, d in rows:
        png = os.path.join(d, "samples.png")
        dst = os.path.join(img_dir, f"samples-{data}-{method}.png")
        if m and os.path.exists(png):
            os.makedirs(img_dir, exist_ok=True)
            shutil.copyfile(png, dst)
        if m and os.path.exists(dst):  # an archived run's grid is already there
            grids.append((f"{DATA[data]}, {METHOD[method]}", os.path.relpath(dst, os.path.dirname(a.out))))
    if grids:
        L.append("## Sample grids (one row per class)\n")
        for cap, rel in grids:
            L.append(f"{cap}:\n\n![{cap}]({rel})\n")
    L.append("## Commands\n")
    L.append("```\nscripts/experiments-corrupted                 # imports, trains, samples, evaluates, reports")
    L.append("build/bin/dmis import fmnist --out data/fmnist-mask90.h5 --corrupt mask:0.9 --keep-clean")
    L.append("build/bin/dmis train inputs/quickstart.yaml --set data.path=data/fmnist-mask90.h5 \\")
    L.append("    --set method.name=ambient --set supervision.kind=clean --set run.name=mask90-ambient")
    L.append("```\n")
    if a.archive:
        for data, method, m, secs, d in rows:
            dst = os.path.join(a.archive, f"{data}-{method}")
            if os.path.realpath(d) == os.path.realpath(dst):
                continue
            tmp = dst + ".tmp"  # the run's files whole, then in place of the old ones: nothing stale
            shutil.rmtree(tmp, ignore_errors=True)
            for rel in ("metrics.jsonl", "recon_metrics.jsonl", "train_seconds", "stats.jsonl", "log.txt",
                        "deck.yaml", "diffem/stats.jsonl"):
                src = os.path.join(d, rel)
                if os.path.exists(src):
                    os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
                    shutil.copyfile(src, os.path.join(tmp, rel))
            dc = {k: m[k] for k in ("dc_accuracy", "dc_accuracy_mask50") if k in m}
            if dc:
                with open(os.path.join(tmp, "classify.json"), "w") as g:
                    json.dump(dc, g)
            shutil.rmtree(dst, ignore_errors=True)
            os.rename(tmp, dst)
        print(f"results_corrupted.py: archived {len(rows)} runs in {a.archive}")
    tmp = a.out + ".tmp"
    open(tmp, "w").write("\n".join(L) + "\n")
    os.replace(tmp, a.out)
    print(f"results_corrupted.py: wrote {a.out}")


if __name__ == "__main__":
    main()
