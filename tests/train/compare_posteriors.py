"""Compares the posteriors of two dmis classify outputs:
python3 compare_posteriors.py A.h5 B.h5 same|differ  (exit 77 without h5py)"""
import sys
try:
    import h5py
    import numpy as np
except ImportError:
    sys.exit(77)

a_path, b_path, want = sys.argv[1], sys.argv[2], sys.argv[3]
with h5py.File(a_path, "r") as f, h5py.File(b_path, "r") as g:
    a, b = f["posteriors"][...], g["posteriors"][...]
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.allclose(a.sum(1), 1, atol=1e-4) and np.allclose(b.sum(1), 1, atol=1e-4)
    diff = float(np.abs(a - b).max())
    if want == "same":
        assert diff == 0, f"posteriors differ by {diff}"
    else:
        assert diff > 1e-6, f"posteriors agree to {diff}: the corruption did not reach the network"
print("ok", diff)
