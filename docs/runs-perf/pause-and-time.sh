#!/bin/bash
cd /work/main
P=$(pgrep -f "runs/bin/dmis-s3" | tr '\n' ' ')
trap "kill -CONT $P 2>/dev/null" EXIT
kill -STOP $P
sleep 2
export OMP_NUM_THREADS=2 OMP_PROC_BIND=spread OMP_PLACES=threads
for i in 1 2 3; do
  for ct in Haswell SkylakeX; do
    echo "train-step coretype=$ct run=$i"
    OPENBLAS_CORETYPE=$ct build/bin/dmis-bench train-step --preset unet-s --batch 64 --steps 5 --warmup 2 --compare-torch 2>&1 | tail -1
  done
done
