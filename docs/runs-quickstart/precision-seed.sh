#!/bin/bash
# The quickstart deck at one seed and one train.precision (fp32 or bf16: the convolutions'
# GEMMs in bf16 with fp32 accumulation), then classified as scripts/quickstart does (in fp32:
# the window, and sigma 2-6), into runs/quickstart-<precision>-s<seed>: the fp32 / bf16 pairs
# of docs/runs-quickstart/README.md.
# usage: precision-seed.sh fp32|bf16 SEED [extra arguments for every command]
# DMIS: the dmis binary (default build/bin/dmis).
set -euo pipefail
cd "$(dirname "$0")/../.."
P=$1 S=$2
shift 2
D=${DMIS:-build/bin/dmis}
export OMP_PROC_BIND=${OMP_PROC_BIND:-spread} OMP_PLACES=${OMP_PLACES:-threads}
N=quickstart-$P-s$S
R=(--set run.name="$N" --set run.seed="$S")
"$D" train inputs/quickstart.yaml "${R[@]}" --set train.precision="$P" "$@"
"$D" classify inputs/quickstart.yaml "${R[@]}" "$@"
"$D" classify inputs/quickstart.yaml "${R[@]}" "$@" --set classify.timesteps=uniform --set classify.weights=equal \
  --set classify.uniform_min=2 --set classify.uniform_max=6 --out runs/"$N"/posteriors-sigma2-6.h5
