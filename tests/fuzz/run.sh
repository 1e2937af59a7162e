#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/fuzz_parsers.cpp with Debian's clang
# (-fsanitize=fuzzer,address,undefined) and runs each for FUZZ_SECONDS (default 60) from its seed
# corpus in tests/fuzz/corpus/<target>/. Exit status 0 only with 0 crashes, 0 sanitizer reports,
# 0 hangs (-timeout) and 0 out-of-memory. Prints each target's executions and time.
#   bash tests/fuzz/run.sh [target...]      (targets: class_list table templates manifest ini image
#                                            safetensors tokenizer)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
out=${FUZZ_OUT:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-60}
CXX=${FUZZ_CXX:-clang++}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(class_list table templates manifest ini image safetensors tokenizer)
mkdir -p "$out/generated/starft" "$out/obj"
sed -e "s|@CMAKE_SOURCE_DIR@|$root|; s|@STARFT_FIXTURES@|$root/../shared/fixtures|" \
    -e "s|#cmakedefine01 \([A-Z_]*\)|#define \1 0|" \
  src/common/build_config.h.in > "$out/generated/starft/build_config.h"
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
       -I"$root/src" -I"$root" -I"$out/generated" -I/usr/include/opencv4 -I/usr/include/hdf5/serial)
sources=(src/common/text.cpp src/common/lfs_pointer.cpp src/common/atomic_file.cpp src/data/class_list.cpp
         src/data/templates.cpp src/data/manifest.cpp src/data/image.cpp sharding/table.cpp
         src/clip/safetensors_format.cpp src/clip/bpe_tokenizer.cpp src/clip/text_clean.cpp src/clip/utf8.cpp)
objs=()
for s in "${sources[@]}"; do
  o="$out/obj/$(echo "$s" | tr / _).o"
  if [ ! -f "$o" ] || [ "$s" -nt "$o" ]; then "$CXX" "${flags[@]}" -fsanitize=fuzzer-no-link -c "$s" -o "$o"; fi
  objs+=("$o")
done
libs=(-lopencv_imgcodecs -lopencv_imgproc -lopencv_core -ljpeg -lboost_program_options -lutf8proc -lz)
status=0
for t in "${targets[@]}"; do
  T=$(echo "$t" | tr a-z A-Z)
  bin="$out/fuzz_$t"
  "$CXX" "${flags[@]}" -fsanitize=fuzzer -DFUZZ_$T tests/fuzz/fuzz_parsers.cpp "${objs[@]}" "${libs[@]}" -o "$bin"
  corpus="$out/corpus/$t"
  mkdir -p "$corpus" "$out/findings/$t"
  log="$out/fuzz_$t.log"
  set +e
  (cd "$out/findings/$t" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=3000 -malloc_limit_mb=3500 -max_len=65536 \
    -print_final_stats=1 "$corpus" "$root/tests/fuzz/corpus/$t" > "$log" 2>&1)
  rc=$?
  set -e
  execs=$(grep -o "stat::number_of_executed_units: *[0-9]*" "$log" | grep -o "[0-9]*$" || echo "?")
  secs=$(grep -o "Done [0-9]* runs in [0-9]* second" "$log" | grep -o "in [0-9]*" | grep -o "[0-9]*" || echo "?")
  crashes=$(ls "$out/findings/$t" | grep -c -E "^(crash|leak|timeout|oom|slow-unit)-" || true)
  echo "fuzz $t: $execs executions in ${secs}s, exit $rc, findings $crashes (log $log)"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then status=1; tail -30 "$log"; fi
done
exit $status
