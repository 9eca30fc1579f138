#!/usr/bin/env python3
"""Rewrites the whole-file digest header of a dmis checkpoint (src/io/file_digest.hpp) after
the file was edited on purpose, e.g. with h5py in a test that puts a NaN into the weights: the
edit then reaches the checks behind the digest instead of being refused as damage.

    resign.py FILE
"""
import struct
import sys

BLOCK = 512
MAGIC = b"DMIS-DIGEST 1\n"


def fnv1a64w(data):
    h = 14695981039346656037
    if len(data) % 8:
        data = data + bytes(8 - len(data) % 8)
    for (w,) in struct.iter_unpack("<Q", data):
        h = ((h ^ w) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def main(path):
    with open(path, "r+b") as f:
        data = f.read()
        if not data.startswith(MAGIC):
            sys.exit(f"{path}: no dmis digest header (not a format-3 checkpoint)")
        head = MAGIC + b"size %d\nfnv1a64w %016x\n" % (len(data), fnv1a64w(data[BLOCK:]))
        f.seek(0)
        f.write(head.ljust(BLOCK, b"\0"))


if __name__ == "__main__":
    main(sys.argv[1])
