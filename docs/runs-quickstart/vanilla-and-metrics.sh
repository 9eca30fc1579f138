set -e
cd /work/main
export OMP_PROC_BIND=spread OMP_PLACES=threads
D=build/bin/dmis
V="--set method.name=vanilla --set run.name=quickstart-vanilla"
date
$D train inputs/quickstart.yaml $V
$D sample inputs/quickstart.yaml $V
$D classify inputs/quickstart.yaml $V
$D classify inputs/quickstart.yaml $V --set classify.timesteps=uniform --set classify.weights=equal \
  --set classify.uniform_min=2 --set classify.uniform_max=6 --out runs/quickstart-vanilla/posteriors-sigma2-6.h5
for r in quickstart quickstart-vanilla; do
  $D sample inputs/quickstart.yaml --set run.name=$r --set sample.per_class=50 --out runs/$r/samples50.h5 --grid runs/$r/samples50.png
  $D eval metrics runs/$r/samples50.h5 --evaluator runs/experiments-seeds/evaluator.h5 --data data/fmnist.h5 --no-cas --json runs/$r/metrics50.jsonl.tmp
  mv runs/$r/metrics50.jsonl.tmp runs/$r/metrics50.jsonl
done
date
