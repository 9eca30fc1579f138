#!/bin/bash
set -e
cd /work/main
while [ ! -f /tmp/quickstart.end ]; do sleep 5; done
export OMP_PROC_BIND=spread OMP_PLACES=threads OPENBLAS_CORETYPE=SkylakeX
D=build/bin/dmis
r=quickstart
$D sample inputs/quickstart.yaml --set run.name=$r --set sample.per_class=50 --out runs/$r/samples50.h5 --grid runs/$r/samples50.png
$D eval metrics runs/$r/samples50.h5 --evaluator runs/experiments-seeds/evaluator.h5 --data data/fmnist.h5 --no-cas --json runs/$r/metrics50.jsonl.tmp
mv runs/$r/metrics50.jsonl.tmp runs/$r/metrics50.jsonl
date > /tmp/qs-metrics.done
V="--set method.name=vanilla --set run.name=quickstart-vanilla"
$D train inputs/quickstart.yaml $V
$D classify inputs/quickstart.yaml $V
$D classify inputs/quickstart.yaml $V --set classify.timesteps=uniform --set classify.weights=equal \
  --set classify.uniform_min=2 --set classify.uniform_max=6 --out runs/quickstart-vanilla/posteriors-sigma2-6.h5
r=quickstart-vanilla
$D sample inputs/quickstart.yaml --set run.name=$r --set sample.per_class=50 --out runs/$r/samples50.h5 --grid runs/$r/samples50.png
$D eval metrics runs/$r/samples50.h5 --evaluator runs/experiments-seeds/evaluator.h5 --data data/fmnist.h5 --no-cas --json runs/$r/metrics50.jsonl.tmp
mv runs/$r/metrics50.jsonl.tmp runs/$r/metrics50.jsonl
date > /tmp/qs-vanilla.done
