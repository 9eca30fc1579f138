# The weight-gradient GEMMs of the row-unfolded 3x3 convolutions (G = dy~ rows^T, K = the
# pixels of a chunk) at the UNet's shapes, through the same OpenBLAS as dmis (numpy links
# Debian's libblas, the OpenMP OpenBLAS): GFLOP/s of the best of 5, in both operand orders.
# Run by gemm-shapes.sh under each OPENBLAS_CORETYPE and thread count.
import numpy as np, time
np.random.seed(0)
def t(f, n=5):
    f(); best=1e9
    for _ in range(n):
        a=time.perf_counter(); f(); best=min(best, time.perf_counter()-a)
    return best
for (O, I3, K) in [(32, 96, 37*840), (64, 192, 18*840), (64,192, 64*240), (128, 384, 64*63)]:
    dy = np.random.rand(O, K).astype(np.float32)      # dy~ (O, K) row-major
    rows = np.random.rand(I3, K + 8).astype(np.float32)   # rows (3I, K) row-major, read at offset
    R = rows[:, 1:K+1]
    G = np.empty((O, I3), np.float32); GT = np.empty((I3, O), np.float32)
    fl = 2*O*I3*K
    t1 = t(lambda: np.matmul(dy, R.T, out=G))
    t2 = t(lambda: np.matmul(R, dy.T, out=GT))
    print(O, I3, K, "G=dy R^T %.1f GF/s" % (fl/t1/1e9), " G^T=R dy^T %.1f GF/s" % (fl/t2/1e9))
