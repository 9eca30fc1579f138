#!/usr/bin/env bash
# How sample accuracy follows the purity of the generative labels at the quickstart budget: the
# sym40 seed-1 warm-up (40 kimg) continued vanilla for 32 kimg on symmetric labels at other
# rates (0.32: 68 % right, what a 2-level E-step's posterior reaches; 0.24: 76 %, an 8-level one)
set -e
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
D=build/bin/dmis
export OMP_NUM_THREADS=1 OMP_PROC_BIND=false
for rate in 0.32 0.24; do
  dir=runs/purity/sym40-seed1-rate$rate
  A=(inputs/quickstart.yaml --set run.out_dir=$dir --set run.name=vanilla --set run.seed=1
     --set method.name=vanilla --set data.path=data/fmnist.h5 --set supervision.rate=$rate
     --set sample.per_class=50 --set sample.steps=18 --set run.keep_checkpoints=2 --set run.resume=latest)
  if [[ ! -f $dir/vanilla/ema-00001125.h5 ]]; then
    mkdir -p $dir/vanilla
    [[ -f $dir/vanilla/ckpt-00000625.h5 ]] || cp runs/experiments-seeds/sym40/seed1/warmup/ckpt-00000625.h5 $dir/vanilla/
    $D train "${A[@]}" > $dir/train.log 2>&1
  fi
  [[ -f $dir/vanilla/samples.h5 ]] || $D sample "${A[@]}" > $dir/sample.log 2>&1
  [[ -f $dir/vanilla/metrics.jsonl ]] || $D eval metrics $dir/vanilla/samples.h5 --evaluator runs/experiments-seeds/evaluator.h5 \
     --data data/fmnist.h5 --no-cas --json $dir/vanilla/metrics.jsonl > $dir/metrics.log 2>&1
  echo "rate $rate: $(tail -c 400 $dir/vanilla/metrics.jsonl)"
done
