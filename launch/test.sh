#!/usr/bin/env bash
# Builds starft and runs every test (unit tests and multi-rank tests under mpiexec).
# Installs missing Debian packages first. Usage: launch/test.sh [extra ctest args]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash launch/install-deps.sh
build=${STARFT_BUILD_DIR:-build}
jobs=${STARFT_JOBS:-$(nproc)}
build_start=$SECONDS
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$jobs"
echo "test.sh: configured and built in $((SECONDS - build_start)) s with $jobs jobs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores)"
# Open MPI refuses root without these; tests also oversubscribe the 2 cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
cd "$build"
ctest --output-on-failure -j "$jobs" "$@"
