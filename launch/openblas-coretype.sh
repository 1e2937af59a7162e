# Sourced by launch/mpirun.sh, slurm/common.sh and launch/demo.sh. Defines
# `set_openblas_coretype STARFT_BIN`: when OPENBLAS_CORETYPE is unset and OpenBLAS runs generic
# kernels on a processor that has better ones (Debian's OpenBLAS 0.3.21 does not know recent
# Xeons and falls back to `Prescott`, 3x slower in float32), exports the kernel set the processor
# supports, as `starft hardware --openblas-coretype` reports it (one rule, in src/common/hardware.cpp).
# A value already set is left alone; so is everything when the binary is not built yet.
set_openblas_coretype() {
  local bin=$1 coretype
  [ -z "${OPENBLAS_CORETYPE:-}" ] || return 0
  [ -x "$bin" ] || return 0
  coretype=$("$bin" hardware --openblas-coretype 2>/dev/null) || return 0
  if [ -n "$coretype" ]; then
    export OPENBLAS_CORETYPE=$coretype
    echo "launch: OpenBLAS runs generic kernels on this processor; OPENBLAS_CORETYPE=$coretype" >&2
  fi
}
