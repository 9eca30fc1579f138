"""Checks dmis sample / classify outputs: python3 check_outputs.py samples.h5 posteriors.h5"""
import sys
try:
    import h5py
    import numpy as np
except ImportError:
    sys.exit(77)

samples, posts = sys.argv[1], sys.argv[2]
with h5py.File(samples, "r") as f:
    x, y = f["images"][...], f["labels"][...]
    assert x.shape == (30, 1, 28, 28), x.shape
    assert x.dtype == np.float32, x.dtype
    assert np.isfinite(x).all()
    assert x.min() >= -1 and x.max() <= 1, (x.min(), x.max())
    assert x.std() > 0.01, "constant samples"
    assert list(np.bincount(y, minlength=10)) == [3] * 10, y
with h5py.File(posts, "r") as f:
    p, pred, lab = f["posteriors"][...], f["predictions"][...], f["labels"][...]
    assert p.shape == (40, 10), p.shape
    assert np.allclose(p.sum(1), 1, atol=1e-4), p.sum(1)
    assert (pred == p.argmax(1)).all()
    assert lab.shape == (40,) and lab.min() >= 0 and lab.max() < 10
print("ok")
