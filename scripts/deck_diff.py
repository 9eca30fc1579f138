#!/usr/bin/env python3
"""The keys in which a resolved deck differs from an archived one (a run's deck.yaml).

  scripts/deck_diff.py ARCHIVED_DECK -- DMIS check-deck DECK [--set KEY=VALUE ...]

Runs the check-deck command, compares every key of the archived deck with the resolved one
(run.out_dir aside; keys the archived deck predates are skipped: their defaults came later) and
prints one line per difference, or "same". Exit status 0 either way, 1 when check-deck fails.
"""
import subprocess
import sys

import yaml


def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def main():
    if "--" not in sys.argv or len(sys.argv) < 4:
        sys.exit(__doc__.strip().split("\n\n")[1])
    i = sys.argv.index("--")
    archived = flat(yaml.safe_load(open(sys.argv[1])))
    run = subprocess.run(sys.argv[i + 1:], capture_output=True, text=True)
    if run.returncode:
        print("check-deck failed:", run.stderr.strip())
        sys.exit(1)
    now = flat(yaml.safe_load(run.stdout))
    diffs = [f"{k}: archived {archived[k]!r}, now {now.get(k)!r}" for k in sorted(archived)
             if k != "run.out_dir" and archived[k] != now.get(k)]
    print("\n".join(diffs) if diffs else "same")


if __name__ == "__main__":
    main()
