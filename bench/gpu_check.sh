#!/usr/bin/env bash
# The GPU check, in one prepared script: on a machine with an NVIDIA GPU and a CUDA LibTorch (the
# one inside a PyTorch wheel will do), builds starft against it and runs
#   - tests/starft_tests --gtest_filter='NcclCore.*' (the NCCL communicator's one-rank all-reduce and
#     all-gather on the GPU),
#   - tests/mpi_tests --gtest_filter='DataParallelEquivalence.*' with one rank (data-parallel equals
#     one process, fp32 and amp_bf16; on the GPU the towers autocast with CUDA's bfloat16),
#   - bench/clip_step_bench --device cuda at ViT-B/16 (fp32 and amp_bf16 side by side), which prints
#     samples/s and MFU against --peak-tflops (989: H100 / H200 SXM dense bfloat16).
#
#   bench/gpu_check.sh --fetch DIR     (here, with apt-get) download the Debian packages the GPU
#                                      machine lacks (MPI, HDF5, Boost, spdlog, OpenCV, ...) into DIR
#   bench/gpu_check.sh [--deps DIR] [--dry-run]
#                                      (there) unpack DIR's packages into a prefix, configure, build, run
#
# Environment: TORCH_PREFIX (CUDA LibTorch's CMake prefix; default: asked from python3's torch),
# CUDA_ROOT (default /usr/local/cuda), BUILD (default build-gpu), OUT (where logs go; default $BUILD).
# --dry-run prints every command instead of running the build and the checks (the package list and
# the LibTorch lookup still run), so the script can be checked on a machine without a GPU.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
deps="" fetch="" dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --deps) deps=$2; shift 2 ;;
    --fetch) fetch=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# Runtime and development packages of Debian 12 that the build links against and a PyTorch
# machine does not have (LibTorch, CUDA and NCCL come with PyTorch there).
packages=(
  libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libpmix2 libevent-core-2.1-7 libevent-pthreads-2.1-7
  libhwloc15 libfabric1 libucx0 libpsm2-2 libibverbs1 librdmacm1 libnl-3-200 libnl-route-3-200
  libhdf5-dev libhdf5-103-1 libsz2 libaec0 libcurl4
  libboost-program-options-dev libboost-program-options1.74.0 libboost1.74-dev
  libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 nlohmann-json3-dev libutf8proc-dev libutf8proc2
  libopencv-core-dev libopencv-core406 libopencv-imgcodecs-dev libopencv-imgcodecs406
  libopencv-imgproc-dev libopencv-imgproc406 libtbb12 libjpeg62-turbo libpng16-16 libtiff6 libwebp7
  libopenjp2-7 libgdcm3.0 libopenexr-3-1-30 libimath-3-1-29 libgtest-dev googletest ninja-build
)

if [ -n "$fetch" ]; then
  mkdir -p "$fetch"
  (cd "$fetch" && apt-get download "${packages[@]}")
  du -sh "$fetch"
  echo "gpu_check: carry $fetch to the GPU machine (64 MiB at most) and run bench/gpu_check.sh --deps $fetch"
  exit 0
fi

run() {
  echo "+ $*"
  [ "$dry" = 1 ] || "$@"
}

torch_prefix=${TORCH_PREFIX:-}
if [ -z "$torch_prefix" ]; then
  torch_prefix=$(python3 -c "import torch; print(torch.utils.cmake_prefix_path)" 2>/dev/null || true)
fi
if [ -z "$torch_prefix" ]; then
  if [ "$dry" = 1 ]; then
    torch_prefix=/usr/lib/x86_64-linux-gnu/cmake  # a stand-in for the dry run
    echo "gpu_check: no python3 torch here; dry run with $torch_prefix"
  else
    echo "gpu_check: no CUDA LibTorch found; set TORCH_PREFIX or install PyTorch with CUDA" >&2
    exit 2
  fi
fi
cuda=${CUDA_ROOT:-/usr/local/cuda}
build=${BUILD:-build-gpu}
out=${OUT:-$build}
prefix_path="$torch_prefix"
if [ -n "$deps" ]; then
  sysroot="$root/$build/deps"
  run mkdir -p "$sysroot"
  for f in "$deps"/*.deb; do run dpkg -x "$f" "$sysroot"; done
  prefix_path="$torch_prefix;$sysroot/usr"
  export LD_LIBRARY_PATH="$sysroot/usr/lib/x86_64-linux-gnu:$sysroot/usr/lib/x86_64-linux-gnu/openmpi/lib:${LD_LIBRARY_PATH:-}"
  export PATH="$sysroot/usr/bin:$PATH"
  export OPAL_PREFIX="$sysroot/usr/lib/x86_64-linux-gnu/openmpi"  # relocated Open MPI finds its files
  export CPATH="$sysroot/usr/include:$sysroot/usr/include/hdf5/serial:${CPATH:-}"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "gpu_check: no nvidia-smi here"
run cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=$prefix_path" \
  -DSTARFT_CUDA_ROOT="$cuda" -DSTARFT_BUILD_TESTS=ON -DSTARFT_BUILD_BENCH=ON
run cmake --build "$build" -j "$(nproc)" --target starft starft_tests mpi_tests clip_step_bench
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
status=0
run "$build/tests/starft_tests" --gtest_filter='NcclCore.*' || status=1
run mpiexec -np 1 "$build/tests/mpi_tests" --gtest_filter='DataParallelEquivalence.*' || status=1
run "$build/bench/clip_step_bench" --device cuda --precision both --batch 128 --steps 5 --peak-tflops 989 || status=1
echo "gpu_check: $([ "$status" = 0 ] && echo passed || echo FAILED) (logs above; OUT=$out)"
exit "$status"
