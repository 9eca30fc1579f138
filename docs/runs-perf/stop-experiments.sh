# Sourced by the timing scripts of this folder: from the repository root, stops the running
# experiments (SIGSTOP; their results do not depend on it) until the sourcing script exits,
# sets the thread settings every timing here uses and prints the BLAS variables it ran under.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
P=$(pgrep -f "runs/bin/dmis-s3" | tr '\n' ' ')
trap "kill -CONT $P 2>/dev/null" EXIT
[[ -n "$P" ]] && kill -STOP $P
sleep 2
export OMP_NUM_THREADS=2 OMP_PROC_BIND=spread OMP_PLACES=threads
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}"
