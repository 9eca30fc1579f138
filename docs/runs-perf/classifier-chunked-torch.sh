#!/bin/bash
# Issue 19: the diffusion-classifier forward (64 images x 10 classes) against PyTorch no_grad
# in 10 forwards of 64 (its fastest here; one forward of 640 took 7x as long per image), three
# runs; then one run of each with the PyTorch forward of 640 for the record. The running
# experiments are stopped (SIGSTOP) while timing.
source "$(dirname "$0")/stop-experiments.sh"
for i in 1 2 3; do
  echo "classifier run=$i"
  build/bin/dmis-bench classifier --preset unet-s --batch 64 --steps 5 --warmup 2 --compare-torch 2>&1 | tail -1
done
for c in 64 0; do
  echo "torch alone, chunk=$c"
  /usr/bin/python3 bench/torch_ref.py classifier --preset unet-s --batch 64 --warmup 2 --steps 5 --threads 2 --chunk $c
done
