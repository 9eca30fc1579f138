#!/bin/bash
# The quickstart's E-step in fp32 and in bf16 (method.estep_precision), compared where it acts:
# the diffusion classifier of an EMA snapshot at the E-step's setting (one draw per class at
# sigma 5) on the first 1000 test images, once with fp32 GEMMs and once with bf16
# (classify.precision), the same noise; then the top-class agreement, the total variation and
# KL between the two posteriors, and their entropies.
# usage: compare.sh EMA_SNAPSHOT.h5 [OUT_DIR]   (DMIS: the dmis binary, default build/bin/dmis)
set -euo pipefail
cd "$(dirname "$0")/../../.."
D=${DMIS:-build/bin/dmis}
ema=$1 out=${2:-docs/runs-quickstart/estep-precision}
tag=$(basename "$ema" .h5)
for p in fp32 bf16; do
  "$D" classify "$ema" --set classify.timesteps=uniform --set classify.points=1 \
    --set classify.uniform_min=5 --set classify.uniform_max=5.001 --set classify.weights=equal \
    --set classify.precision=$p --out "$out/$tag-$p.h5" | grep accuracy
done
/usr/bin/python3 - "$out/$tag-fp32.h5" "$out/$tag-bf16.h5" <<'PY'
import sys, h5py, numpy as np
a, b = (np.array(h5py.File(f, 'r')['posteriors']) for f in sys.argv[1:3])
la, lb = (np.log(np.clip(p, 1e-30, 1)) for p in (a, b))
print('top class agrees %.4f, total variation mean %.4f max %.4f, KL(fp32 || bf16) mean %.5f, '
      'entropy %.3f / %.3f nats' % ((a.argmax(1) == b.argmax(1)).mean(), 0.5 * np.abs(a - b).sum(1).mean(),
                                    0.5 * np.abs(a - b).sum(1).max(), (a * (la - lb)).sum(1).mean(),
                                    -(a * la).sum(1).mean(), -(b * lb).sum(1).mean()))
PY
