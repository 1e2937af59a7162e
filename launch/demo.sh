#!/usr/bin/env bash
# The main job on the built-in data. Installs what is missing, builds, then runs.
#
# Until the built-in SpuriousFashion benchmark lands (issue 7), this encodes the fixture images and
# prompts with the tiny fixture CLIP model and prints the zero-shot similarity table.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash launch/install-deps.sh
build=${STARFT_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$build" -j "${STARFT_JOBS:-$(nproc)}" --target starft
fixtures=${STARFT_FIXTURES:-$root/../shared/fixtures}
out=${STARFT_RUN_DIR:-runs/demo}
mkdir -p "$out"
"$build/starft" encode \
  --weights "$fixtures/clip/tiny_clip_openai.safetensors" \
  --inputs "$fixtures/clip/tiny_clip_reference.safetensors" \
  --vocab "$fixtures/clip/bpe_simple_vocab_16e6.txt.gz" \
  --out "$out/encode.safetensors" --print
