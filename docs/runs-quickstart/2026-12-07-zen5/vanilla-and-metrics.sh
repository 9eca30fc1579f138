#!/bin/bash
# After ./scripts/quickstart (its console output in /tmp/quickstart.log): the evaluator of
# scripts/experiments-seeds (1 epoch), 500 samples of the DMIS run and their metrics, then the
# deck's vanilla comparison with the same classification, samples and metrics. The machine's
# own environment (OPENBLAS_CORETYPE=Haswell on this AMD EPYC), as the quickstart ran.
set -e
cd /work/main
while ! grep -q "quickstart: done" /tmp/quickstart.log; do sleep 5; done
export OMP_PROC_BIND=spread OMP_PLACES=threads
D=build/bin/dmis
E=runs/experiments-seeds/evaluator.h5
mkdir -p runs/experiments-seeds
[ -f $E ] || $D eval train-evaluator --data data/fmnist.h5 --out $E --epochs 1
r=quickstart
$D sample inputs/quickstart.yaml --set run.name=$r --set sample.per_class=50 --out runs/$r/samples50.h5 --grid runs/$r/samples50.png
$D eval metrics runs/$r/samples50.h5 --evaluator $E --data data/fmnist.h5 --no-cas --json runs/$r/metrics50.jsonl.tmp
mv runs/$r/metrics50.jsonl.tmp runs/$r/metrics50.jsonl
V="--set method.name=vanilla --set run.name=quickstart-vanilla"
$D train inputs/quickstart.yaml $V
$D classify inputs/quickstart.yaml $V
$D classify inputs/quickstart.yaml $V --set classify.timesteps=uniform --set classify.weights=equal \
  --set classify.uniform_min=2 --set classify.uniform_max=6 --out runs/quickstart-vanilla/posteriors-sigma2-6.h5
r=quickstart-vanilla
$D sample inputs/quickstart.yaml --set run.name=$r --set sample.per_class=50 --out runs/$r/samples50.h5 --grid runs/$r/samples50.png
$D eval metrics runs/$r/samples50.h5 --evaluator $E --data data/fmnist.h5 --no-cas --json runs/$r/metrics50.jsonl.tmp
mv runs/$r/metrics50.jsonl.tmp runs/$r/metrics50.jsonl
date > /tmp/qs-vanilla.done
