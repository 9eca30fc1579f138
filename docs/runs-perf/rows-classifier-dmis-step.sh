#!/bin/bash
# Issue 19 / 18: the diffusion-classifier forward against PyTorch no_grad, and the DMIS step
# against the vanilla step, with the row-unfolded convolutions (the default since 2026-12-06);
# the running experiments are stopped (SIGSTOP) while timing and continued after.
source "$(dirname "$0")/stop-experiments.sh"
for i in 1 2 3; do
  echo "classifier run=$i"
  build/bin/dmis-bench classifier --preset unet-s --batch 64 --steps 5 --warmup 2 --compare-torch 2>&1 | tail -2
done
for i in 1 2 3; do
  echo "dmis-step run=$i"
  build/bin/dmis-bench dmis-step --deck inputs/quickstart.yaml --warmup 2 --steps 6 2>&1 | tail -2
done
