# Sourced by the sbatch templates in slurm/. Defines `run_ranks ARGS...`, which runs
# `starft ARGS...` on every task of the job: under Slurm with `srun --mpi=pmix` (one task per
# GPU), elsewhere through launch/mpirun.sh with $RANKS ranks (default 2), so each template can be
# tried on a workstation before it is submitted.
#
# Environment: STARFT_ROOT (project checkout; default: the submit directory), STARFT_BIN (the
# starft binary; default $STARFT_ROOT/build/starft), RANKS (ranks outside Slurm),
# STARFT_SRUN_ARGS (extra srun arguments).
set -euo pipefail
STARFT_ROOT=${STARFT_ROOT:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}}
STARFT_BIN=${STARFT_BIN:-$STARFT_ROOT/build/starft}
cd "$STARFT_ROOT"
if [ ! -x "$STARFT_BIN" ]; then
  echo "slurm: $STARFT_BIN not found; build first (cmake -S . -B build && cmake --build build)" >&2
  exit 2
fi

# NCCL on multi-node GPU clusters. Uncomment and adapt to the fabric:
# export NCCL_SOCKET_IFNAME=ib0        # the interface NCCL's bootstrap uses (not docker0/lo)
# export NCCL_IB_HCA=mlx5              # InfiniBand adapters to use
# export NCCL_DEBUG=WARN               # INFO to see the rings/trees NCCL builds
# export NCCL_ASYNC_ERROR_HANDLING=1
# Read-only stores on NFS/Lustre: HDF5 file locking off (starft also turns it off for reads).
export HDF5_USE_FILE_LOCKING=FALSE
# OpenBLAS kernels: set OPENBLAS_CORETYPE when unset and OpenBLAS would run generic ones here
# (srun passes the environment on to the tasks).
# shellcheck source=../launch/openblas-coretype.sh
. "$STARFT_ROOT/launch/openblas-coretype.sh"
set_openblas_coretype "$STARFT_BIN"

run_ranks() {
  if [ -n "${SLURM_JOB_ID:-}" ]; then
    # --kill-on-bad-exit: one failing rank ends the step instead of leaving the others waiting.
    # shellcheck disable=SC2086
    srun --mpi=pmix --kill-on-bad-exit=1 ${STARFT_SRUN_ARGS:-} "$STARFT_BIN" "$@"
  else
    "$STARFT_ROOT/launch/mpirun.sh" -n "${RANKS:-2}" -- "$STARFT_BIN" "$@"
  fi
}
