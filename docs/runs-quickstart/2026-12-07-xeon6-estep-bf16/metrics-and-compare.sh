#!/bin/bash
set -e
cd "$(dirname "$0")/../../.."
export OMP_PROC_BIND=spread OMP_PLACES=threads OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
D=build/bin/dmis
r=quickstart
$D sample inputs/quickstart.yaml --set run.name=$r --set sample.per_class=50 --out runs/$r/samples50.h5 --grid runs/$r/samples50.png
$D eval metrics runs/$r/samples50.h5 --evaluator runs/experiments-seeds/evaluator.h5 --data data/fmnist.h5 --no-cas --json runs/$r/metrics50.jsonl.tmp
mv runs/$r/metrics50.jsonl.tmp runs/$r/metrics50.jsonl
mkdir -p docs/runs-quickstart/estep-precision/bf16-estep-run
for ck in 750 1000; do docs/runs-quickstart/estep-precision/compare.sh runs/quickstart/ema-$(printf %08d $ck).h5 docs/runs-quickstart/estep-precision/bf16-estep-run; done

