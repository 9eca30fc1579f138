#!/bin/bash
# train.precision: bf16 against fp32 and PyTorch fp32 (same run), the unet-s training step at
# batch 64 on both cores, with the machine's OpenBLAS setting (unset: Prescott kernels on the
# Xeon 6) and with SkylakeX's, alternating; then the diffusion-classifier forward (64 images x 10
# classes) against PyTorch no_grad. The running experiments stopped while timing.
# Usage: [PRECISIONS="bf16"] docs/runs-perf/bf16-train-step.sh [train|classifier|both]
# (PRECISIONS: which of fp32 and bf16 to time, both by default)
cd "$(dirname "$0")/../.."
# the experiment scripts too, so that none starts a new run meanwhile
P=$(pgrep -f "scripts/experiments-seeds|runs/bin/dmis-" | tr '\n' ' ')
trap "[ -n \"$P\" ] && kill -CONT $P 2>/dev/null" EXIT
[ -n "$P" ] && kill -STOP $P
sleep 2
export OMP_NUM_THREADS=2 OMP_PROC_BIND=spread OMP_PLACES=threads
what=${1:-both}
[ "$what" = classifier ] || for i in 1 2 3; do
  for ct in unset SkylakeX; do
    for pr in ${PRECISIONS:-fp32 bf16}; do
      echo "train-step coretype=$ct precision=$pr run=$i"
      if [ "$ct" = unset ]; then
        env -u OPENBLAS_CORETYPE build/bin/dmis-bench train-step --preset unet-s --batch 64 --steps 5 --warmup 2 --precision $pr --compare-torch 2>&1 | tail -1
      else
        OPENBLAS_CORETYPE=$ct build/bin/dmis-bench train-step --preset unet-s --batch 64 --steps 5 --warmup 2 --precision $pr --compare-torch 2>&1 | tail -1
      fi
    done
  done
done
[ "$what" = train ] || for i in 1 2 3; do
  for pr in ${PRECISIONS:-fp32 bf16}; do
    echo "classifier coretype=unset precision=$pr run=$i"
    env -u OPENBLAS_CORETYPE build/bin/dmis-bench classifier --preset unet-s --batch 64 --steps 3 --warmup 1 --precision $pr --compare-torch 2>&1 | tail -1
  done
done
