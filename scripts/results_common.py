"""Pieces shared by scripts/results.py and scripts/results_corrupted.py: reading the JSON-lines
files of the runs, the OpenMP threads a run had, and the machine line of a report."""
import json
import os
import re


def merged_jsonl(path):
    """Every line of a JSON-lines file merged into one dict (later lines win); {} if absent."""
    out = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    out.update(json.loads(line))
    return out


def threads(run_dir):
    """The OpenMP concurrency a run had, from the banner of its log.txt (None if unknown)."""
    path = os.path.join(run_dir, "log.txt")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                m = re.match(r"^\s*concurrency\s+(\d+)", line)
                if m:
                    return int(m.group(1))
    return None


def machine(named_dirs):
    """This machine's cores and CPU, and the threads of each run ({name: run directory})."""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except Exception:
        model = "unknown CPU"
    by_threads = {}
    for name, d in named_dirs.items():
        t = threads(d)
        if t is not None:
            by_threads.setdefault(t, []).append(name)
    text = f"{os.cpu_count()} cores ({model}), OpenMP backend"
    if by_threads:
        parts = [f"{t} thread{'s' if t > 1 else ''}: {', '.join(sorted(by_threads[t]))}"
                 for t in sorted(by_threads, reverse=True)]
        text += "; threads per run (log.txt banner): " + "; ".join(parts)
        if 1 in by_threads and len(by_threads) > 1:
            text += (" (the one-thread runs ran two or three at a time on these cores, so their wall times "
                     "are not comparable with the others')")
    return text
