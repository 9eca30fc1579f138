#!/bin/bash
# 2026-12-07, the 2-core AMD EPYC (Zen 5): the quickstart's DMIS step against its vanilla step
# before (PREV: the bf16 layout change alone, 21e66e0) and after the beta-0 classification slice
# ran as an inference network in the E-step's precision, alternating; then issue 19's three
# comparisons with PyTorch (train step fp32 and bf16, classifier forward bf16), under the
# machine's OPENBLAS_CORETYPE=Haswell and SkylakeX. Any dmis run of the session is stopped
# (SIGSTOP) meanwhile. Usage: zen5-round.sh PREV_BENCH > log
cd /work/main
PREV=${1:?usage: zen5-round.sh PREV_BENCH}
P=$(pgrep -x dmis | tr '\n' ' ')
[ -n "$P" ] && kill -STOP $P
trap '[ -n "$P" ] && kill -CONT $P' EXIT
sleep 2
export OMP_NUM_THREADS=2 OMP_PROC_BIND=spread OMP_PLACES=threads
for ct in Haswell SkylakeX; do
  for i in 1 2 3; do
    for b in "$PREV" build/bin/dmis-bench; do
      echo "dmis-step coretype=$ct run=$i bench=$b"
      OPENBLAS_CORETYPE=$ct $b dmis-step --deck inputs/quickstart.yaml --warmup 2 --steps 10 2>&1 | tail -1
    done
  done
done
for i in 1 2 3; do
  for ct in Haswell SkylakeX; do
    for p in fp32 bf16; do
      echo "train-step coretype=$ct precision=$p run=$i"
      OPENBLAS_CORETYPE=$ct build/bin/dmis-bench train-step --preset unet-s --batch 64 --steps 5 --warmup 2 \
        --precision $p --compare-torch 2>&1 | tail -1
    done
  done
  echo "classifier coretype=Haswell precision=bf16 run=$i"
  build/bin/dmis-bench classifier --preset unet-s --batch 64 --steps 3 --warmup 1 --precision bf16 --compare-torch 2>&1 | tail -1
done
