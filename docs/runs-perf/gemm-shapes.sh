#!/bin/bash
# Issue 19: how close OpenBLAS's sgemm comes to the cores' peak on the weight-gradient shapes,
# with the machine's OPENBLAS_CORETYPE and with SkylakeX, on 1 and 2 threads.
source "$(dirname "$0")/stop-experiments.sh"
for ct in "${OPENBLAS_CORETYPE:-unset}" SkylakeX; do
  for t in 1 2; do
    echo "OPENBLAS_CORETYPE=$ct threads=$t"
    if [[ $ct == unset ]]; then env -u OPENBLAS_CORETYPE OMP_NUM_THREADS=$t /usr/bin/python3 docs/runs-perf/gemm-shapes.py
    else OPENBLAS_CORETYPE=$ct OMP_NUM_THREADS=$t /usr/bin/python3 docs/runs-perf/gemm-shapes.py; fi
  done
done
