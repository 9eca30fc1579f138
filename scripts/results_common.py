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


def banner_match(run_dir, pattern):
    """The first match of `pattern` in a run's log.txt (its banner), or None."""
    path = os.path.join(run_dir, "log.txt")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                m = re.match(pattern, line)
                if m:
                    return m
    return None


def threads(run_dir):
    """The OpenMP concurrency a run had, from the banner of its log.txt (None if unknown)."""
    m = banner_match(run_dir, r"^\s*concurrency\s+(\d+)")
    return int(m.group(1)) if m else None


def logged_cpu(run_dir):
    """The CPU a run's log.txt names (banner line "CPU", from 2026-12-07 on; None before)."""
    m = banner_match(run_dir, r"^\s*CPU\s+(.+?),\s*(\d+) logical CPUs\s*$")
    return (m.group(1), int(m.group(2))) if m else None


def machine(named_dirs):
    """The runs' CPU and cores (from their logs; this machine's where the logs predate the CPU
    line, said so) and the threads of each run ({name: run directory})."""
    cpus = [logged_cpu(d) for d in named_dirs.values()]
    logged = {c for c in cpus if c}
    if logged:
        text = "; ".join(f"{n} cores ({model})" for model, n in sorted(logged))
        if None in cpus:
            text += " (as the logs that name it say; some logs predate the CPU line)"
    else:
        try:
            with open("/proc/cpuinfo") as f:
                model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
        except Exception:
            model = "unknown CPU"
        text = f"{os.cpu_count()} cores ({model}; the machine that wrote this report: the logs predate the CPU line)"
    by_threads = {}
    for name, d in named_dirs.items():
        t = threads(d)
        if t is not None:
            by_threads.setdefault(t, []).append(name)
    text += ", OpenMP backend"
    if by_threads:
        parts = [f"{t} thread{'s' if t > 1 else ''}: {', '.join(sorted(by_threads[t]))}"
                 for t in sorted(by_threads, reverse=True)]
        text += "; threads per run (log.txt banner): " + "; ".join(parts)
        if 1 in by_threads and len(by_threads) > 1:
            text += (" (the one-thread runs ran two or three at a time on these cores, so their wall times "
                     "are not comparable with the others')")
    return text
