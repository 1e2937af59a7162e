#!/usr/bin/env bash
# Installs every Debian package starft needs, and only what is missing.
# Used by launch/test.sh and launch/demo.sh; safe to run again.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libtorch-dev libopenblas0-openmp          # LibTorch (CPU) and a fast BLAS for it
  libopenmpi-dev openmpi-bin                 # MPI launcher, CPU collectives, bootstrap
  libhdf5-dev                                # sharded image stores, teacher cache
  libspdlog-dev libboost-program-options-dev nlohmann-json3-dev libutf8proc-dev zlib1g-dev
  libopencv-imgcodecs-dev libopencv-imgproc-dev
  libjpeg62-turbo-dev                        # data/image.cpp decodes JPEGs itself to see libjpeg's warnings
  libgtest-dev
  clang libclang-rt-14-dev                   # tests/fuzz: libFuzzer with ASan + UBSan
  clang-format                               # tests: Style.CodeFollowsClangFormat (.clang-format)
  iproute2 util-linux                        # tests/multihost: network namespaces (ip netns, unshare)
  dataset-fashion-mnist gnuplot-nox          # built-in benchmark images, report charts
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
