#!/usr/bin/env bash
# Local multi-rank launcher: starts N ranks of a command with Open MPI's mpirun.
#
#   launch/mpirun.sh [-n RANKS] [-t THREADS_PER_RANK] [--bind core|none] -- COMMAND [ARGS...]
#
# Defaults: 2 ranks, threads per rank = cores / ranks (at least 1), no binding (binding to cores
# is faster on a dedicated node: --bind core). Adds --allow-run-as-root when run as root and
# --oversubscribe when there are more ranks than cores. Environment: MPIRUN (default mpirun),
# STARFT_MPIRUN_ARGS (extra mpirun arguments). Sets OPENBLAS_CORETYPE when unset and OpenBLAS
# would run generic kernels (launch/openblas-coretype.sh), and passes it to every rank.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=openblas-coretype.sh
. "$here/openblas-coretype.sh"
ranks=2
threads=""
bind=none
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--ranks) ranks=$2; shift 2 ;;
    -t|--threads) threads=$2; shift 2 ;;
    --bind) bind=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "launch/mpirun.sh: no command given (see --help)" >&2; exit 2; }
case "$ranks" in ''|*[!0-9]*) echo "launch/mpirun.sh: -n must be a positive integer, got '$ranks'" >&2; exit 2 ;; esac
[ "$ranks" -ge 1 ] || { echo "launch/mpirun.sh: -n must be at least 1" >&2; exit 2; }
# The command's own binary when it is starft, else the project's build.
bin=$1
case "$(basename "$bin")" in starft) ;; *) bin="$here/../build/starft" ;; esac
set_openblas_coretype "$bin"
cores=$(nproc)
if [ -z "$threads" ]; then threads=$(( cores / ranks )); [ "$threads" -ge 1 ] || threads=1; fi
args=(-np "$ranks" --bind-to "$bind" -x OMP_NUM_THREADS="$threads")
[ "$(id -u)" -eq 0 ] && args+=(--allow-run-as-root)
[ "$ranks" -gt "$cores" ] && args+=(--oversubscribe)
# Forward the variables starft reads.
for v in STARFT_LOG_LEVEL STARFT_FIXTURES STARFT_DATASETS HDF5_USE_FILE_LOCKING OPENBLAS_CORETYPE; do
  [ -n "${!v:-}" ] && args+=(-x "$v")
done
# shellcheck disable=SC2086
exec ${MPIRUN:-mpirun} "${args[@]}" ${STARFT_MPIRUN_ARGS:-} "$@"
