#!/usr/bin/env bash
# The E-step's classifier choices (docs/results-label-purity.md): the diffusion classifier of the
# sym40 seed-1 vanilla model (EMA at 72 kimg; runs/experiments-seeds-hardem/sym40/seed1/vanilla)
# on the first 1000 test images, at one or more noise levels. One level "at sigma s" is a
# uniform grid of one point on [s - 0.1, s + 0.1] (its midpoint); "4 draws at 2.4" four points in
# [2.39, 2.41]. The two 8-level files are that experiment's own classify outputs
# (u2-6-k8.h5 = posteriors-high.h5, window-k8.h5 = posteriors.h5). Then:
#   scripts/posterior_purity.py "NAME=docs/runs-estep-levels/FILE.h5" ...
set -e
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
M=runs/experiments-seeds-hardem/sym40/seed1/vanilla/ema-00001125.h5
OUT=runs/estep-levels
mkdir -p $OUT
export OMP_NUM_THREADS=1 OMP_PROC_BIND=false
U="--set classify.timesteps=uniform --set classify.weights=equal"
c() { local name=$1; shift; [[ -f $OUT/$name.h5 ]] && return 0
  build/bin/dmis classify $M --data data/fmnist.h5 --limit 1000 --set data.test_limit=1000 "$@" \
    --out $OUT/$name.h5 | grep "dmis classify: accuracy" | sed "s/^/$name: /"; }
c fixed2.4-k1 --set classify.points=1 $U --set classify.uniform_min=2.3 --set classify.uniform_max=2.5
c fixed3-k1 --set classify.points=1 $U --set classify.uniform_min=2.9 --set classify.uniform_max=3.1
c fixed4-k1 --set classify.points=1 $U --set classify.uniform_min=3.9 --set classify.uniform_max=4.1
c fixed5-k1 --set classify.points=1 $U --set classify.uniform_min=4.9 --set classify.uniform_max=5.1
c fixed6-k1 --set classify.points=1 $U --set classify.uniform_min=5.9 --set classify.uniform_max=6.1
c u2-6-k2 --set classify.points=2 $U --set classify.uniform_min=2 --set classify.uniform_max=6
c u3-6-k2 --set classify.points=2 $U --set classify.uniform_min=3 --set classify.uniform_max=6
c fixed2.4-k4 --set classify.points=4 $U --set classify.uniform_min=2.39 --set classify.uniform_max=2.41
c u2-6-k4 --set classify.points=4 $U --set classify.uniform_min=2 --set classify.uniform_max=6
