#!/usr/bin/python3
"""What a set of tiny training runs produced, to tell a behaviour-preserving change from one that
is not (issue 20: the restructuring must give the same numbers bitwise).

  behaviour_record.py summarise RUN_DIR... --dmis EXE --out FILE   the summary of finished runs
  behaviour_record.py compare EXPECTED ACTUAL          exit 1 at the first difference

A run's summary: every stats.jsonl record's numbers exactly as written (the text, no rounding:
timing fields left out) and the SHA-256 of every dataset of its last checkpoint and EMA
snapshot (the arrays' bytes, not the file: a checkpoint's attributes carry the git version).
The summary also names the machine and the build (CPU model, flags that select kernels, OpenBLAS
overrides, threads; compiler, Kokkos, Kokkos Kernels, from `dmis info`): floating-point results are bitwise the same only on the same kind of machine, so a
comparison against a summary from another kind of machine is refused (exit 77), not passed.
"""
import glob
import hashlib
import json
import os
import re
import subprocess
import sys

import h5py
import numpy as np

# fields of stats.jsonl that measure time, not the computation
TIMING = {"img_per_s", "sec_per_step", "eta_s", "elapsed_s", "wall_s", "seconds", "time"}


def build_of(dmis):
    """compiler and libraries of the executable (dmis info), without the version and git hash"""
    out = subprocess.run([dmis, "info"], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    m = re.search(r"\((?:git [^,]*, )?(.*)\)", lines[0]) if lines else None
    keep = [m.group(1) if m else ""]
    keep += [l.strip() for l in lines[1:] if re.match(r"\s*(Kokkos|Kokkos Kernels)\s", l)]
    return "; ".join(re.sub(r"\s+", " ", k) for k in keep)


def machine(dmis):
    first = {}  # the first processor's block of /proc/cpuinfo
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                k, _, v = line.partition(":")
                first[k.strip()] = v.strip()
    except OSError:
        pass
    flags = set(first.get("flags", "").split())
    return {"cpu": " ".join(first.get(k, "?") for k in ("vendor_id", "model name", "cpu family", "model")),
            "simd": " ".join(sorted(f for f in flags if re.match(r"avx|fma|sse4", f))),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "openblas_l2_size": os.environ.get("OPENBLAS_L2_SIZE"),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "build": build_of(dmis)}


def dataset_hashes(path):
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                a = np.asarray(obj[()])
                if a.dtype.kind == "O":  # variable-length strings: their text, not the pointers
                    data = "\x00".join(x.decode() if isinstance(x, bytes) else str(x)
                                        for x in a.ravel()).encode()
                else:
                    data = np.ascontiguousarray(a).tobytes()
                out[name] = hashlib.sha256(data).hexdigest()[:16]
        f.visititems(visit)
    return out


def records(stats):
    result = []
    with open(stats) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            # the numbers as written: parse floats as their text so nothing is rounded
            rec = json.loads(line, parse_float=str, parse_int=str)
            result.append({k: v for k, v in rec.items() if k not in TIMING})
    return result


def last(pattern):
    files = sorted(glob.glob(pattern))
    return files[-1] if files else None


def summarise(run_dirs, dmis):
    runs = {}
    for d in run_dirs:
        name = os.path.basename(os.path.normpath(d))
        entry = {}
        stats = sorted(glob.glob(os.path.join(d, "stats.jsonl")) +
                       glob.glob(os.path.join(d, "*", "stats.jsonl")))
        for s in stats:
            entry[os.path.relpath(s, d)] = records(s)
        for prefix in ("ckpt", "ema"):
            f = last(os.path.join(d, prefix + "-*.h5"))
            if f:
                entry[os.path.basename(f)] = dataset_hashes(f)
        if not entry:
            sys.exit(f"behaviour_record: '{d}' holds no stats.jsonl and no checkpoint")
        runs[name] = entry
    return {"format": "dmis-behaviour", "version": 1, "machine": machine(dmis), "runs": runs}


def first_difference(a, b, path=""):
    if type(a) is not type(b):
        return f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}/{k}: only in the {'actual' if k in b else 'expected'} summary"
            d = first_difference(a[k], b[k], f"{path}/{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} records expected, {len(b)} found"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path}: expected {a!r}, found {b!r}"


def main(argv):
    if len(argv) >= 2 and argv[1] == "summarise":
        args = argv[2:]
        opts = {}
        for key in ("--out", "--dmis"):
            if key not in args or args.index(key) + 1 >= len(args):
                sys.exit("usage: behaviour_record.py summarise RUN_DIR... --dmis EXE --out FILE")
            i = args.index(key)
            opts[key] = args[i + 1]
            del args[i:i + 2]
        out = opts["--out"]
        s = summarise(args, opts["--dmis"])
        with open(out + ".tmp", "w") as f:
            json.dump(s, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(out + ".tmp", out)
        print(f"behaviour_record: {len(s['runs'])} runs summarised into {out}")
        return 0
    if len(argv) == 4 and argv[1] == "compare":
        with open(argv[2]) as f:
            want = json.load(f)
        with open(argv[3]) as f:
            got = json.load(f)
        if want.get("format") != "dmis-behaviour" or got.get("format") != "dmis-behaviour":
            sys.exit(f"behaviour_record: '{argv[2]}' or '{argv[3]}' is not a behaviour summary")
        if want["machine"] != got["machine"]:
            print(f"behaviour_record: the expected summary was recorded on another kind of machine "
                  f"({want['machine']}); this one is {got['machine']}: bitwise results are not "
                  f"comparable, skipped (re-record it here with scripts/behaviour-record --update)")
            return 77
        d = first_difference(want["runs"], got["runs"])
        if d:
            print(f"behaviour_record: the runs differ from '{argv[2]}' at {d}")
            return 1
        print(f"behaviour_record: {len(got['runs'])} runs bitwise as recorded in '{argv[2]}'")
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
