#!/usr/bin/env python3
"""Seeded corruption fuzzer for the files dmis reads (issue 23).

    fuzz_files.py --dmis BIN --ema EMA.h5 --ckpt CKPT.h5 --data DATA.h5 --deck DECK.yaml
                  --work DIR --kind ema|ckpt|data --cases N [--seed S] [--timeout T]

Each case copies one pristine file, damages it (bits flipped, a range zeroed or overwritten
with noise, the file truncated; half of the cases aim at the first 8 KiB, where HDF5 keeps its
superblock, object headers and name heaps), and runs the command that reads that kind of file:

  ema, ckpt  dmis sample FILE --out OUT --grid GRID       (the file is the checkpoint read)
  data       dmis classify EMA --data FILE --out OUT      (even cases: the test split)
             dmis train DECK --set data.path=FILE ...     (odd cases: the training split)

and asserts:
  * the command ends within the time limit (no hang) and not by a signal;
  * exit 0 or 2, never 1 (an internal error) or anything else;
  * a damaged checkpoint or EMA snapshot never gives exit 0 (they carry a digest of their
    bytes); a damaged dataset may (a flipped pixel is still a dataset), but then the output
    must be complete (the command's own success line);
  * exit 2 names the damaged file in its message;
  * outputs that existed before the command are byte-identical after a failed one.

Only the Python standard library is used. Exit 0 when every case holds, 1 otherwise (each
failing case is printed with the damage that caused it, to be replayed with --only I).
"""
import argparse
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def damage(src, dst, rng):
    data = bytearray(open(src, "rb").read())
    n = len(data)
    # half the cases aim at the metadata at the start of the file, half anywhere
    span = min(n, 8192) if rng.random() < 0.5 else n
    kind = rng.choice(["flip", "flip", "zero", "noise", "truncate"])
    if kind == "flip":
        k = rng.choice([1, 1, 2, 4, 16])
        offs = sorted(rng.randrange(span) for _ in range(k))
        for o in offs:
            data[o] ^= 1 << rng.randrange(8)
        what = f"flip {k} bit(s) at {offs[:4]}{'...' if k > 4 else ''}"
    elif kind in ("zero", "noise"):
        length = rng.choice([1, 8, 64, 512, 4096])
        o = rng.randrange(span)
        length = min(length, n - o)
        fill = bytes(length) if kind == "zero" else bytes(rng.randrange(256) for _ in range(length))
        if fill == bytes(data[o:o + length]):  # no change: make one
            fill = bytes([data[o] ^ 0xFF]) + fill[1:]
        data[o:o + length] = fill
        what = f"{kind} {length} byte(s) at {o}"
    else:
        cut = rng.randrange(max(1, n - 1))
        data = data[:cut]
        what = f"truncate to {cut} of {n} bytes"
    with open(dst, "wb") as f:
        f.write(data)
    return what


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dmis", required=True)
    ap.add_argument("--ema", required=True)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--deck", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--kind", choices=["ema", "ckpt", "data"], required=True)
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--only", type=int, default=None, help="replay one case")
    a = ap.parse_args()

    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    out = os.path.join(a.work, "out.h5")
    grid = os.path.join(a.work, "grid.png")
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_PROC_BIND="false")
    failures = []
    counts = {}
    t0 = time.time()
    cases = [a.only] if a.only is not None else range(a.cases)
    for i in cases:
        rng = random.Random(a.seed * 1000003 + i * 7919 + {"ema": 1, "ckpt": 2, "data": 3}[a.kind])
        src = {"ema": a.ema, "ckpt": a.ckpt, "data": a.data}[a.kind]
        bad = os.path.join(a.work, f"case{i:04d}-" + os.path.basename(src))
        what = damage(src, bad, rng)
        # outputs that exist before the command: they must survive a failed one unchanged
        for p in (out, grid):
            with open(p, "wb") as f:
                f.write(b"existing output %d\n" % i)
        before = {p: digest(p) for p in (out, grid)}
        if a.kind in ("ema", "ckpt"):
            cmd = [a.dmis, "sample", bad, "--out", out, "--grid", grid,
                   "--set", "sample.steps=2", "--set", "sample.per_class=1"]
            success = "dmis sample: wrote"
        elif i % 2 == 0:
            cmd = [a.dmis, "classify", a.ema, "--data", bad, "--limit", "16", "--out", out,
                   "--set", "classify.points=1"]
            success = "dmis classify: accuracy"
        else:
            run_dir = os.path.join(a.work, "runs")
            shutil.rmtree(run_dir, ignore_errors=True)
            cmd = [a.dmis, "train", a.deck, "--set", f"data.path={bad}", "--set", f"run.out_dir={run_dir}",
                   "--set", "train.steps=1", "--set", "run.checkpoint_every=1000"]
            success = "done: 1 steps"
        t = time.time()
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
        try:
            raw, _ = p.communicate(timeout=a.timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # the command and anything it started
            raw, _ = p.communicate()
            rc = "timeout"
        text = raw.decode("utf-8", "replace")
        dt = time.time() - t
        problems = []
        if rc == "timeout":
            problems.append(f"no answer within {a.timeout:.0f} s (a hang)")
        elif rc < 0:
            problems.append(f"killed by signal {signal.Signals(-rc).name}")
        elif rc not in (0, 2):
            problems.append(f"exit {rc}, expected 0 or 2")
        elif rc == 0 and a.kind in ("ema", "ckpt"):
            problems.append("exit 0 from a damaged checkpoint")
        elif rc == 0 and success not in text:
            problems.append(f"exit 0 without '{success}'")
        elif rc == 2 and os.path.basename(bad) not in text:
            problems.append("exit 2 without naming the damaged file")
        if rc != 0:
            for p, h in before.items():
                if not os.path.exists(p) or digest(p) != h:
                    problems.append(f"existing output {os.path.basename(p)} changed")
        key = "timeout" if rc == "timeout" else f"exit {rc}"
        counts[key] = counts.get(key, 0) + 1
        first_error = next((ln for ln in text.splitlines() if "error" in ln), text.strip()[-200:]).replace("\n", " / ")
        status = "FAIL" if problems else "ok"
        print(f"[{a.kind} {i:4d}] {status:4s} {key:8s} {dt:5.1f}s  {what}  | {first_error[:160]}",
              flush=True)
        if problems:
            failures.append((i, what, problems, text[-800:]))
        else:
            os.remove(bad)
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    print(f"{a.kind}: {len(list(cases))} damaged files in {time.time() - t0:.0f} s ({summary}); "
          f"{len(failures)} failed")
    for i, what, problems, tail in failures:
        print(f"--- case {i} ({what}): {'; '.join(problems)}\n{tail}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
