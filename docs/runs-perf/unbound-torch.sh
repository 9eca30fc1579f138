#!/bin/bash
# Issue 19: the ratios to PyTorch re-measured after the fix that starts the PyTorch reference
# with every CPU (before it, OMP_PROC_BIND bound it to our thread's single CPU). Three runs of
# the unet-s training step with the machine's OPENBLAS_CORETYPE and with SkylakeX for the
# command alone, alternating, then three of the diffusion-classifier forward. The running
# experiments are stopped (SIGSTOP) while timing.
source "$(dirname "$0")/stop-experiments.sh"
M=${OPENBLAS_CORETYPE:-unset}
for i in 1 2 3; do
  for ct in "$M" SkylakeX; do
    echo "train-step coretype=$ct run=$i"
    if [[ $ct == unset ]]; then
      env -u OPENBLAS_CORETYPE build/bin/dmis-bench train-step --preset unet-s --batch 64 --steps 5 --warmup 2 --compare-torch 2>&1 | tail -1
    else
      OPENBLAS_CORETYPE=$ct build/bin/dmis-bench train-step --preset unet-s --batch 64 --steps 5 --warmup 2 --compare-torch 2>&1 | tail -1
    fi
  done
done
for i in 1 2 3; do
  echo "classifier run=$i"
  build/bin/dmis-bench classifier --preset unet-s --batch 64 --steps 5 --warmup 2 --compare-torch 2>&1 | tail -1
done
