#pragma once
// The benchmarks are one program, build/bench/starft_bench, with a link per benchmark
// (build/bench/precision_bench -> starft_bench, ...): each bench/*_bench.cpp defines its entry
// point with STARFT_BENCH_MAIN(name) instead of main(), and the program runs the benchmark its
// link (or its first argument) names. One program is compiled in a few unity batches and linked
// once, where ten programs each paid for LibTorch's precompiled header and a link (a clean build
// spent 220 CPU-seconds on them). A benchmark file's helpers may therefore not share a name with
// another's; shared ones are here.
#include <chrono>

namespace starft::bench {

using BenchMain = int (*)(int argc, char** argv);

// Adds `main` under `name` to the program's table (STARFT_BENCH_MAIN calls it before main()).
bool register_bench(const char* name, BenchMain main);

// For the benchmarks that read "--option value" pairs by hand: true when the arguments ask for help
// (-h or --help: `usage` goes to stdout, *status = 0) or end with an option that has no value
// (the option and `usage` go to stderr, *status = 2); the benchmark then returns *status.
bool usage_requested(int argc, char** argv, const char* usage, int* status);

// Seconds of std::chrono::steady_clock since `t0`.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace starft::bench

// Defines the entry point of benchmark `name`: STARFT_BENCH_MAIN(store_bench) { ... return 0; }
// with `argc` and `argv` as main() has them (argv[0] the benchmark's name or link).
#define STARFT_BENCH_MAIN(name)                                                                               \
  static int name##_main(int argc, char** argv);                                                              \
  [[maybe_unused]] static const bool name##_registered = ::starft::bench::register_bench(#name, name##_main); \
  static int name##_main(int argc, char** argv)
