#!/usr/bin/env python3
"""The hostile-input suite (issue 23): bad decks, datasets, checkpoints, command lines, MPI
launches and a full disk, each run through the real `dmis` binary.

    hostile.py setup --dmis BIN --work DIR
    hostile.py run --dmis BIN --work DIR --group decks|cli|datasets|checkpoints|mpi|disk
               [--mpiexec "mpirun -np 2 ..."] [--list]

`setup` makes the shared inputs under DIR: a small Fashion-MNIST dataset (512 + 128 images,
imported by dmis from an IDX subset of Debian's files), a tiny run (8 steps) with its checkpoint
and EMA snapshot. `run` plays every case of a group and checks, for each:

  * the exit status (2 for bad input; never a signal, never 1, an internal error);
  * the message (a regular expression that names the key or the file and what was wrong);
  * an end within the time limit (no hang);
  * every output that existed before is byte-identical afterwards.

Exit 0 when every case holds, 1 otherwise; 77 (skipped) when h5py is missing, for the groups
that build their inputs with it. Only /usr/bin/python3 (Debian's, with h5py and numpy) is
needed.
"""
import argparse
import gzip
import hashlib
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FMNIST = "/usr/share/datasets/fashion-mnist"
SMOKE = os.path.join(ROOT, "inputs", "smoke", "tiny-train.yaml")


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run(cmd, timeout=60, env=None, limit_as=None):
    """(exit status or "timeout", stdout + stderr, seconds); a hung command is killed with its
    whole process group (mpirun's ranks included)."""
    e = dict(os.environ, OMP_NUM_THREADS="1", OMP_PROC_BIND="false")
    if env:
        e.update(env)
    t = time.time()
    def limits():
        if limit_as:  # so that an allocation too large fails as it would on a full machine
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))
    p = subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True, preexec_fn=limits)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out.decode("utf-8", "replace"), time.time() - t
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return "timeout", out.decode("utf-8", "replace"), time.time() - t


# ------------------------------------------------------------------------------------ setup
def setup(a):
    # every run of the suite starts from nothing (a mount left by an interrupted disk group too)
    subprocess.run(["umount", f"{a.work}/cases/disk/mnt"], stderr=subprocess.DEVNULL)
    shutil.rmtree(a.work, ignore_errors=True)
    src = os.path.join(a.work, "idx")
    os.makedirs(src, exist_ok=True)
    for split, n in (("train", 512), ("t10k", 128)):
        im = gzip.open(f"{FMNIST}/{split}-images-idx3-ubyte.gz").read()
        lb = gzip.open(f"{FMNIST}/{split}-labels-idx1-ubyte.gz").read()
        with gzip.open(f"{src}/{split}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28) + im[16:16 + n * 784])
        with gzip.open(f"{src}/{split}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + lb[8:8 + n])
    data = os.path.join(a.work, "small.h5")
    for cmd in ([a.dmis, "import", "fmnist", "--src", src, "--out", data, "--force"],
                [a.dmis, "train", SMOKE, "--set", f"data.path={data}", "--set",
                 f"run.out_dir={a.work}/runs", "--set", "train.steps=8", "--set", "run.checkpoint_every=8"]):
        rc, out, _ = run(cmd, timeout=600)
        if rc != 0:
            sys.exit(f"setup: {' '.join(cmd)} failed ({rc}):\n{out}")
    print("setup: small.h5, runs/tiny-train/{ckpt,ema}-00000008.h5")
    return 0


# ------------------------------------------------------------------------------------ cases
class Case:
    def __init__(self, name, args, rc=2, expect="", make=None, keep=(), timeout=60, mpi=False,
                 reject=r"internal error|Segmentation|core dumped", limit_as=None):
        self.name, self.args, self.rc, self.expect, self.limit_as = name, args, rc, expect, limit_as
        self.make, self.keep, self.timeout, self.mpi, self.reject = make, keep, timeout, mpi, reject


def h5py_or_skip():
    try:
        import h5py  # noqa: F401
        import numpy  # noqa: F401
    except ImportError:
        print("h5py or numpy missing: these cases are skipped")
        sys.exit(77)


def write(path, text, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(text)
    return path


def cases(a, group):
    W = a.work
    D = f"{W}/cases/{group}"
    data = f"{W}/small.h5"
    ema = f"{W}/runs/tiny-train/ema-00000008.h5"
    ckpt = f"{W}/runs/tiny-train/ckpt-00000008.h5"
    tiny = ["train", SMOKE, "--set", f"data.path={data}", "--set", f"run.out_dir={D}/runs", "--set", "train.steps=1"]
    out = f"{D}/existing-out.h5"
    grid = f"{D}/existing-grid.png"
    keep = (out, grid)
    sample_to = ["--out", out, "--grid", grid, "--set", "sample.steps=2", "--set", "sample.per_class=1"]
    L = []

    if group == "decks":
        def deck(name, text, expect, rc=2):
            p = f"{D}/{name}.yaml"
            L.append(Case(f"deck.{name}", ["check-deck", p], rc, expect,
                          make=lambda p=p, t=text: write(p, t)))
        base = open(SMOKE).read()

        def edited(old, new):  # the smoke deck with one change, which must take place
            assert old in base, f"the smoke deck no longer holds {old!r}: update this case"
            return base.replace(old, new)
        deck("empty", "", r"missing required key 'data\.path'|empty")
        deck("not_yaml", "\x00\x01\x02garbage: [", r"not_yaml\.yaml(:\d+:\d+)?: expected")
        deck("top_level_list", "- a\n- b\n", r"top_level_list\.yaml.*(mapping|map)")
        deck("unknown_section", base + "trian:\n  batch: 8\n", r"unknown_section\.yaml:\d+.*'trian'")
        deck("unknown_key", edited("  batch: 8", "  btach: 8"), r"unknown_key\.yaml:\d+:\d+: unknown key 'train\.btach' \(did you mean 'train\.batch'\?\)")
        deck("wrong_type", edited("  batch: 8", "  batch: many"), r"train\.batch.*many")
        deck("zero_batch", edited("  batch: 8", "  batch: 0"), r"train\.batch.*0")
        deck("negative_lr", edited("  batch: 8", "  batch: 8\n  lr: -0.1"), r"train\.lr.*-0\.1")
        deck("nan_lr", edited("  batch: 8", "  batch: 8\n  lr: .nan"), r"train\.lr.*(nan|NaN|finite|number)")
        deck("huge_batch", edited("  batch: 8", "  batch: 1e40"), r"train\.batch.*1e40")
        deck("bad_method", base + "method:\n  name: dmiss\n", r"method\.name.*dmiss.*(vanilla|dmis)")
        deck("duplicate_key", edited("  batch: 8", "  batch: 8\n  batch: 16"), r"duplicate.*batch")
        deck("duplicate_section", base + "train:\n  batch: 16\n", r"duplicate.*train")
        deck("unclosed_quote", base + 'run2: "abc\n', r"unclosed_quote\.yaml:\d+")
        deck("tab_indent", edited("  batch: 8", "\tbatch: 8"), r"tab_indent\.yaml:\d+")
        deck("bad_list", edited("mults: [1, 2]", "mults: [1, 2"), r"bad_list\.yaml:\d+")
        deck("list_for_scalar", edited("  batch: 8", "  batch: [8, 16]"), r"train\.batch")
        deck("map_for_scalar", edited("  batch: 8", "  batch: {a: 1}"), r"train\.batch")
        deck("null_value", edited("  batch: 8", "  batch: ~"), r"train\.batch")
        deck("rate_above_one", edited("rate: 0.4", "rate: 1.5"), r"supervision\.rate.*1\.5")
        deck("bad_mults_entry", edited("mults: [1, 2]", "mults: [1, two]"), r"network\.mults.*two")
        L.append(Case("deck.missing_file", ["check-deck", f"{D}/nope.yaml"], 2, r"nope\.yaml.*(cannot|no such|missing)"))
        L.append(Case("deck.directory", ["check-deck", D], 2, r"deck '[^']*decks' is a folder; expected a YAML file",
                      make=lambda: os.makedirs(D, exist_ok=True)))
        L.append(Case("deck.steps_and_kimg", tiny + ["--set", "train.kimg=1"], 2,
                      r"set train\.steps or train\.kimg, not both"))
        L.append(Case("deck.attn_at_no_level", ["train", SMOKE, "--set", f"data.path={data}", "--set",
                                                f"run.out_dir={D}/runs", "--set", "network.attn_res=[5]"],
                      2, r"attn_res: no level has resolution 5"))

    elif group == "cli":
        L += [
            Case("cli.train_no_deck", ["train"], 2, r"usage: dmis train"),
            Case("cli.set_no_equals", ["check-deck", SMOKE, "--set", "train.batch"], 2, r"--set.*train\.batch.*key=value|expected"),
            Case("cli.set_unknown_key", ["check-deck", SMOKE, "--set", "train.frob=1"], 2, r"train\.frob"),
            Case("cli.set_bad_value", ["check-deck", SMOKE, "--set", "train.batch=abc"], 2, r"train\.batch.*abc"),
            Case("cli.set_unclosed_list", ["check-deck", SMOKE, "--set", "network.mults=[1,2"], 2, r"network\.mults.*\[1,2"),
            Case("cli.set_trailing_comma", ["check-deck", SMOKE, "--set", "network.mults=[1,2,"], 2, r"network\.mults"),
            Case("cli.set_no_open_bracket", ["check-deck", SMOKE, "--set", "network.mults=1,2]"], 2, r"network\.mults"),
            Case("cli.unknown_option", ["train", SMOKE, "--frobnicate"], 2, r"unknown option '--frobnicate'"),
            Case("cli.option_without_value", ["sample", ema, "--out"], 2, r"--out"),
            Case("cli.limit_negative", ["classify", ema, "--data", data, "--limit", "-5"], 2, r"--limit.*-5"),
            Case("cli.limit_not_number", ["classify", ema, "--data", data, "--limit", "abc"], 2, r"--limit.*abc"),
            Case("cli.sample_out_missing_dir", ["sample", ema, "--out", f"{D}/no/such/dir/s.h5"], 2,
                 r"no/such/dir"),
            Case("cli.sample_grid_missing_dir", ["sample", ema, "--out", out, "--grid", f"{D}/no/g.png",
                                                 "--set", "sample.steps=2"], 2, r"no/g\.png", keep=keep),
            Case("cli.sample_out_is_dir", ["sample", ema, "--out", f"{D}/adir"], 2, r"adir",
                 make=lambda: os.makedirs(f"{D}/adir", exist_ok=True)),
            Case("cli.import_bad_source", ["import", "fmnist", "--src", "/nonexistent", "--out", f"{D}/x.h5"], 2,
                 r"/nonexistent"),
            Case("cli.import_unknown", ["import", "bogus", "--out", f"{D}/x.h5"], 2, r"bogus"),
            Case("cli.import_keeps_existing", ["import", "fmnist", "--out", out], 2, r"existing-out\.h5.*--force",
                 keep=keep),
            Case("cli.metrics_missing_samples", ["eval", "metrics", f"{D}/nope.h5", "--evaluator", f"{D}/e.h5",
                                                 "--data", data], 2, r"nope\.h5|e\.h5"),
            Case("cli.classify_bad_split", ["classify", ema, "--data", data, "--split", "validation"], 2,
                 r"validation"),
            Case("cli.batch_beyond_memory", ["train", SMOKE, "--set", f"data.path={data}", "--set",
                                             f"run.out_dir={D}/runs", "--set", "train.batch=1048576",
                                             "--set", "train.steps=1"], 2,
                 r"out of memory: .*lower train\.batch", limit_as=16 << 30),
            Case("cli.unknown_preset", ["info", "--preset", "foo"], 2, r"unknown network preset 'foo'"),
        ]

    elif group == "datasets":
        h5py_or_skip()
        import h5py
        import numpy as np

        def ds(name, edit, expect, cmd="train"):
            p = f"{D}/{name}.h5"

            def make(p=p, edit=edit):
                os.makedirs(D, exist_ok=True)
                shutil.copy(data, p)
                with h5py.File(p, "r+") as f:
                    edit(f)
            args = (["train", SMOKE, "--set", f"data.path={p}", "--set", f"run.out_dir={D}/runs",
                     "--set", "train.steps=1"] if cmd == "train"
                    else ["classify", ema, "--data", p, "--limit", "16", "--out", out])
            L.append(Case(f"data.{name}", args, 2, expect, make=make, keep=keep))

        def replace(f, name, value):
            del f[name]
            f[name] = value
        ds("float_images", lambda f: replace(f, "/train/images", f["/train/images"][...].astype("f4")),
           r"float_images\.h5.*/train/images.*(uint8|float)")
        ds("uint16_images", lambda f: replace(f, "/train/images", f["/train/images"][...].astype("u2")),
           r"uint16_images\.h5.*/train/images")
        ds("float_labels", lambda f: replace(f, "/train/labels", f["/train/labels"][...].astype("f4") + 0.5),
           r"float_labels\.h5.*/train/labels")
        ds("label_out_of_range", lambda f: f["/train/labels"].__setitem__(3, 12),
           r"label_out_of_range\.h5.*/train/labels.*12")
        ds("negative_label", lambda f: f["/train/labels"].__setitem__(5, -3),
           r"negative_label\.h5.*/train/labels.*-3")
        ds("rank3_images", lambda f: replace(f, "/train/images", f["/train/images"][:, 0]),
           r"rank3_images\.h5.*/train/images.*rank")
        ds("labels_count", lambda f: replace(f, "/train/labels", f["/train/labels"][:100]),
           r"labels_count\.h5.*/train/labels")
        ds("no_train", lambda f: f.__delitem__("/train"), r"no_train\.h5.*/train")
        ds("no_labels", lambda f: f.__delitem__("/train/labels"), r"no_labels\.h5.*/train/labels")
        ds("huge_shape", lambda f: (f.__delitem__("/train/images"), f.__delitem__("/train/labels"),
                                    f.create_dataset("/train/images", shape=(10**12, 1, 28, 28), dtype="u1",
                                                     chunks=(1, 1, 28, 28)),
                                    f.create_dataset("/train/labels", shape=(10**12,), dtype="i4",
                                                     chunks=(1024,))),
           r"huge_shape\.h5.*/train/(images|labels).*declares shape.*(GB|memory)")
        ds("empty_split", lambda f: (replace(f, "/train/images", np.zeros((0, 1, 28, 28), "u1")),
                                     replace(f, "/train/labels", np.zeros((0,), "i4"))),
           r"empty_split\.h5', /train/images: expected at least one image, found N = 0")
        ds("class_names_count", lambda f: replace(f, "/class_names", np.array([b"a", b"b"])),
           r"class_names_count\.h5.*/class_names")
        ds("class_names_huge_strings", lambda f: replace(f, "/class_names", np.array([b"a"] * 10, dtype="S2000000")),
           r"class_names_huge_strings\.h5.*/class_names.*declares strings of 2000000 bytes each")
        ds("empty_candidates", lambda f: f.create_dataset("/train/candidates", data=np.zeros((512, 10), "u1")),
           r"empty_candidates\.h5.*/train/candidates.*empty")
        ds("other_image_size", lambda f: (replace(f, "/train/images", np.zeros((512, 3, 32, 32), "u1")),
                                          replace(f, "/test/images", np.zeros((128, 3, 32, 32), "u1"))),
           r"other_image_size\.h5.*3x32x32")
        def observations(f, value):
            x = f["/train/images"][...].astype("f4") / 127.5 - 1
            x.flat[5] = value
            del f["/train/images"]
            f["/train/observations"] = x
            f["/train/masks"] = np.ones((x.shape[0], 1) + x.shape[2:], "u1")
        for name, value, msg in (("observations_1e30", 1e30, r"value 1e\+30 at index 5: expected finite"),
                                 ("observations_nan", float("nan"), r"value nan at index 5"),
                                 ("observations_unscaled", 200.0, r"value 200 at index 5.*x / 127\.5 - 1")):
            ds(name, lambda f, v=value: observations(f, v), rf"{name}\.h5', /train/observations: {msg}")
        ds("test_float_images", lambda f: replace(f, "/test/images", f["/test/images"][...].astype("f8")),
           r"test_float_images\.h5.*/test/images", cmd="classify")

        def trunc(name, frac):
            p = f"{D}/{name}.h5"

            def make(p=p):
                os.makedirs(D, exist_ok=True)
                b = open(data, "rb").read()
                open(p, "wb").write(b[:int(len(b) * frac)])
            L.append(Case(f"data.{name}", ["classify", ema, "--data", p, "--limit", "16", "--out", out], 2,
                          rf"{name}\.h5.*(cut short|damaged|cannot)", make=make, keep=keep))
        trunc("truncated_half", 0.5)
        trunc("truncated_head", 0.001)
        L.append(Case("data.empty_file", ["classify", ema, "--data", f"{D}/empty.h5", "--out", out], 2,
                      r"empty\.h5.*not an HDF5 file", make=lambda: write(f"{D}/empty.h5", ""), keep=keep))
        L.append(Case("data.text_file", ["classify", ema, "--data", SMOKE, "--out", out], 2,
                      r"tiny-train\.yaml.*not an HDF5 file", keep=keep))
        L.append(Case("data.directory", ["classify", ema, "--data", D, "--out", out], 2,
                      rf"'{re.escape(D)}'", keep=keep, make=lambda: os.makedirs(D, exist_ok=True)))

    elif group == "checkpoints":
        def copy_edit(name, edit, resign=False):
            p = f"{D}/{name}.h5"

            def make(p=p):
                os.makedirs(D, exist_ok=True)
                shutil.copy(ema, p)
                edit(p)
                if resign:
                    subprocess.run([sys.executable, os.path.join(HERE, "resign.py"), p], check=True)
            return p, make

        def bytes_edit(fn):
            def e(p):
                b = bytearray(open(p, "rb").read())
                b = fn(b)
                open(p, "wb").write(b)
            return e

        def ck(name, edit, expect, resign=False, cmd="sample"):
            p, make = copy_edit(name, edit, resign)
            args = ["sample", p] + sample_to if cmd == "sample" else cmd(p)
            L.append(Case(f"ckpt.{name}", args, 2, expect, make=make, keep=keep))

        def flip_at(off):
            def f(b):
                b[off % len(b)] ^= 0x10
                return b
            return f
        ck("flip_in_weights", bytes_edit(flip_at(-5000)), r"flip_in_weights\.h5' is damaged: its bytes")
        ck("flip_in_header", bytes_edit(flip_at(20)), r"flip_in_header\.h5' is damaged")
        ck("flip_in_padding", bytes_edit(flip_at(400)), r"flip_in_padding\.h5' is damaged: its digest header")
        ck("flip_in_superblock", bytes_edit(flip_at(520)), r"flip_in_superblock\.h5' is damaged: its bytes")
        ck("zeroed_metadata", bytes_edit(lambda b: b[:2048] + bytes(4096) + b[6144:]),
           r"zeroed_metadata\.h5' is damaged")
        ck("truncated", bytes_edit(lambda b: b[:len(b) // 2]), r"truncated\.h5' is cut short")
        ck("appended", bytes_edit(lambda b: b + b"tail"), r"appended\.h5' is longer than written")
        ck("header_stripped", bytes_edit(lambda b: b[512:]), r"header_stripped\.h5' is damaged: it is format 3")
        ck("header_zeroed", bytes_edit(lambda b: bytes(512) + b[512:]), r"header_zeroed\.h5' is damaged")
        try:
            import h5py  # noqa: F401
            have_h5py = True
        except ImportError:
            have_h5py = False
        if have_h5py:
            import h5py

            def h5edit(fn):
                def e(p):
                    with h5py.File(p, "r+") as f:
                        fn(f)
                return e

            def nan(f):
                v = f["/ema"][...]
                v[7] = float("nan")
                f["/ema"][...] = v
            ck("nan_weight", h5edit(nan), r"nan_weight\.h5': /ema holds 1 of \d+ values that are not finite",
               resign=True)
            ck("nan_unsigned", h5edit(nan), r"nan_unsigned\.h5' is damaged: its bytes")
            ck("negative_step", h5edit(lambda f: f.attrs.modify("step", -5)),
               r"negative_step\.h5': root attributes step -5", resign=True)
            ck("other_kind", h5edit(lambda f: f.attrs.modify("kind", "weights")),
               r"other_kind\.h5': root attribute 'kind' is 'weights'", resign=True)
            ck("not_checkpoint_format", h5edit(lambda f: f.attrs.modify("format", "other")),
               r"not_checkpoint_format\.h5' is not a dmis checkpoint", resign=True)
            ck("edited_contents", h5edit(lambda f: f["/ema"].__setitem__(0, 1.0)),
               r"edited_contents\.h5' is damaged: its contents do not match its digest", resign=True)
            ck("no_ema", h5edit(lambda f: f.__delitem__("/ema")), r"no_ema\.h5' holds no /ema", resign=True)
            ck("short_ema", h5edit(lambda f: (f.__delitem__("/ema"), f.create_dataset("/ema", data=[1.0, 2.0]))),
               r"short_ema\.h5': /ema has 2 values", resign=True)
        L.append(Case("ckpt.dataset_as_checkpoint", ["sample", data] + sample_to, 2,
                      r"small\.h5' is not a dmis checkpoint", keep=keep))
        L.append(Case("ckpt.empty_file", ["sample", f"{D}/empty.h5"] + sample_to, 2, r"empty\.h5",
                      make=lambda: write(f"{D}/empty.h5", ""), keep=keep))
        L.append(Case("ckpt.missing", ["sample", f"{D}/nope-ema.h5"] + sample_to, 2, r"nope-ema\.h5", keep=keep))
        L.append(Case("ckpt.other_layout", ["sample", ema, "--set", "network.base=16"] + sample_to, 2,
                      r"ema-00000008\.h5' does not match its deck's network", keep=keep))
        p_res, make_res = copy_edit("resume_damaged", bytes_edit(flip_at(-100)))
        L.append(Case("ckpt.resume_from_damaged", tiny + ["--set", f"run.resume={p_res}", "--set", "train.steps=12"],
                      2, r"resume_damaged\.h5' is damaged", make=make_res))
        L.append(Case("ckpt.classify_damaged", ["classify", p_res, "--data", data, "--limit", "16", "--out", out], 2,
                      r"resume_damaged\.h5' is damaged", make=make_res, keep=keep))

    elif group == "mpi":
        if not a.mpiexec:
            print("no MPI launcher given: MPI cases skipped")
            sys.exit(77)
        h5py_or_skip()
        bad = f"{D}/damaged-ema.h5"

        def make_bad():
            os.makedirs(D, exist_ok=True)
            b = bytearray(open(ema, "rb").read())
            b[-3000] ^= 1
            open(bad, "wb").write(b)
        baddata = f"{D}/float-images.h5"

        def make_baddata():
            import h5py
            os.makedirs(D, exist_ok=True)
            shutil.copy(data, baddata)
            with h5py.File(baddata, "r+") as f:
                v = f["/train/images"][...].astype("f4")
                del f["/train/images"]
                f["/train/images"] = v
        trunc = f"{D}/truncated.h5"

        def make_trunc():
            os.makedirs(D, exist_ok=True)
            b = open(data, "rb").read()
            open(trunc, "wb").write(b[:len(b) // 3])
        L += [
            Case("mpi.sample_damaged_ema", ["sample", bad] + sample_to, 2, r"damaged-ema\.h5' is damaged",
                 make=make_bad, keep=keep, mpi=True, timeout=90),
            Case("mpi.train_float_images", ["train", SMOKE, "--set", f"data.path={baddata}", "--set",
                                            f"run.out_dir={D}/runs", "--set", "train.steps=2"], 2,
                 r"float-images\.h5.*/train/images", make=make_baddata, mpi=True, timeout=90),
            Case("mpi.train_truncated_data", ["train", SMOKE, "--set", f"data.path={trunc}", "--set",
                                              f"run.out_dir={D}/runs", "--set", "train.steps=2"], 2,
                 r"truncated\.h5", make=make_trunc, mpi=True, timeout=90),
            Case("mpi.classify_missing", ["classify", f"{D}/nope.h5", "--data", data], 2, r"nope\.h5",
                 mpi=True, timeout=90),
            Case("mpi.bad_deck_value", ["train", SMOKE, "--set", f"data.path={data}", "--set", "train.batch=0"], 2,
                 r"train\.batch", mpi=True, timeout=90),
            Case("mpi.resume_damaged", ["train", SMOKE, "--set", f"data.path={data}", "--set",
                                        f"run.out_dir={D}/runs", "--set", f"run.resume={bad}"], 2,
                 r"damaged-ema\.h5' is damaged", make=make_bad, mpi=True, timeout=90),
        ]

    elif group == "disk":
        mnt = f"{D}/mnt"

        def mount():
            subprocess.run(["umount", mnt], stderr=subprocess.DEVNULL)
            os.makedirs(mnt, exist_ok=True)
            if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt],
                              stderr=subprocess.DEVNULL).returncode != 0:
                print("disk cases skipped: cannot mount a tmpfs here (needs root)")
                sys.exit(77)
            # fill it up to the last few KB with a file the commands must leave alone
            with open(f"{mnt}/filler", "wb") as f:
                try:
                    f.write(bytes(60 * 1024))
                except OSError:
                    pass
            write(f"{mnt}/existing-out.h5", "existing output\n")
        full_out = f"{mnt}/existing-out.h5"
        L += [
            Case("disk.sample_onto_full", ["sample", ema, "--out", full_out, "--grid", f"{mnt}/g.png",
                                           "--set", "sample.per_class=4"], 2,
                 r"no space left on device", make=mount, keep=(full_out,)),
            Case("disk.classify_onto_full", ["classify", ema, "--data", data, "--limit", "64",
                                             "--out", full_out], 2, r"no space left on device", keep=(full_out,)),
            Case("disk.train_onto_full", ["train", SMOKE, "--set", f"data.path={data}", "--set",
                                          f"run.out_dir={mnt}", "--set", "train.steps=2"], 2,
                 r"no space left on device", keep=(full_out,)),
            Case("disk.import_onto_full", ["import", "fmnist", "--src", f"{W}/idx", "--out", f"{mnt}/d.h5"], 2,
                 r"no space left on device", keep=(full_out,)),
        ]
    return L


# ------------------------------------------------------------------------------------ run
def run_group(a):
    L = cases(a, a.group)
    if a.list:
        for c in L:
            print(c.name, " ".join(c.args))
        return 0
    launcher = shlex.split(a.mpiexec) if a.mpiexec else []
    failed = []
    t0 = time.time()
    for c in L:
        if c.make:
            c.make()
        for p in c.keep:
            if not os.path.exists(p):
                write(p, f"existing output of {c.name}\n")
        before = {p: sha(p) for p in c.keep}
        cmd = (launcher if c.mpi else []) + [a.dmis] + c.args
        rc, text, dt = run(cmd, timeout=c.timeout, limit_as=c.limit_as)
        problems = []
        if rc == "timeout":
            problems.append(f"no answer within {c.timeout} s (a hang)")
        elif rc < 0:
            problems.append(f"killed by a signal ({-rc})")
        elif rc != c.rc:
            problems.append(f"exit {rc}, expected {c.rc}")
        if c.expect and not re.search(c.expect, text, re.S):
            problems.append(f"the message does not match /{c.expect}/")
        if c.reject and re.search(c.reject, text):
            problems.append(f"the output matches /{c.reject}/")
        for p, h in before.items():
            if not os.path.exists(p) or sha(p) != h:
                problems.append(f"existing output {p} changed")
        msg = next((ln for ln in text.splitlines() if "error" in ln), text.strip().replace("\n", " / ")[-160:])
        print(f"{'FAIL' if problems else 'ok  '} {c.name:34s} exit {rc!s:7s} {dt:5.1f}s  {msg[:170]}", flush=True)
        if problems:
            failed.append((c, problems, text))
    if a.group == "disk":
        subprocess.run(["umount", f"{a.work}/cases/disk/mnt"], stderr=subprocess.DEVNULL)
    print(f"{a.group}: {len(L)} cases in {time.time() - t0:.0f} s, {len(failed)} failed")
    for c, problems, text in failed:
        print(f"--- {c.name}: {'; '.join(problems)}\n    dmis {' '.join(c.args)}\n{text[-1500:]}")
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["setup", "run"])
    ap.add_argument("--dmis", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--group", choices=["decks", "cli", "datasets", "checkpoints", "mpi", "disk"])
    ap.add_argument("--mpiexec", default="")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(f"{FMNIST}/train-images-idx3-ubyte.gz"):
        print("Debian dataset-fashion-mnist is not installed: hostile cases skipped")
        return 77
    return setup(a) if a.mode == "setup" else run_group(a)


if __name__ == "__main__":
    sys.exit(main())
