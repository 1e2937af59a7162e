// The benchmarks' program (bench_main.h): runs the benchmark named by the link it was started
// through (build/bench/store_bench ...), or by its first argument (starft_bench store_bench ...).
#include "bench_main.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <string>

namespace starft::bench {

namespace {

std::map<std::string, BenchMain>& table() {
  static std::map<std::string, BenchMain> benches;
  return benches;
}

}  // namespace

bool register_bench(const char* name, BenchMain main) {
  table()[name] = main;
  return true;
}

bool usage_requested(int argc, char** argv, const char* usage, int* status) {
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "-h") || !std::strcmp(argv[i], "--help")) {
      std::printf("%s\n", usage);
      *status = 0;
      return true;
    }
  }
  if (argc % 2 == 0) {  // "--option value" pairs after argv[0]: an odd count leaves one without
    std::fprintf(stderr, "%s needs a value\n%s\n", argv[argc - 1], usage);
    *status = 2;
    return true;
  }
  return false;
}

// Runs the benchmark `argv` names (see the file's comment); lists them when it names none.
int run_bench(int argc, char** argv) {
  const auto& benches = table();
  const char* slash = std::strrchr(argv[0], '/');
  const std::string called = slash ? slash + 1 : argv[0];
  if (auto it = benches.find(called); it != benches.end()) return it->second(argc, argv);
  if (argc > 1) {
    if (auto it = benches.find(argv[1]); it != benches.end()) return it->second(argc - 1, argv + 1);
    std::fprintf(stderr, "%s: no benchmark named '%s'\n", called.c_str(), argv[1]);
  }
  std::fprintf(stderr, "usage: %s BENCHMARK [its options], or build/bench/BENCHMARK [its options]\nbenchmarks:\n",
               called.c_str());
  for (const auto& entry : benches) std::fprintf(stderr, "  %s\n", entry.first.c_str());
  return 2;
}

}  // namespace starft::bench

int main(int argc, char** argv) { return starft::bench::run_bench(argc, argv); }
