#!/bin/bash
# The quickstart deck trained with train.precision: bf16 (the convolutions' GEMMs in bf16 with
# fp32 accumulation), then sampled and classified as scripts/quickstart does (in fp32), into
# runs/quickstart-bf16: the comparison with the fp32 quickstart run of the same machine.
# DMIS: the dmis binary (default build/bin/dmis); extra arguments go to every command.
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${DMIS:-build/bin/dmis}
export OMP_PROC_BIND=${OMP_PROC_BIND:-spread} OMP_PLACES=${OMP_PLACES:-threads}
R=(--set run.name=quickstart-bf16)
"$D" train inputs/quickstart.yaml "${R[@]}" --set train.precision=bf16 "$@"
"$D" sample inputs/quickstart.yaml "${R[@]}" "$@"
"$D" classify inputs/quickstart.yaml "${R[@]}" "$@"
"$D" classify inputs/quickstart.yaml "${R[@]}" "$@" --set classify.timesteps=uniform --set classify.weights=equal \
  --set classify.uniform_min=2 --set classify.uniform_max=6 --out runs/quickstart-bf16/posteriors-sigma2-6.h5
