#pragma once
// The start shared by the multi-rank benchmarks (comm_bench, overlap_bench): adds the runtime
// options to the bench's own, parses the command line, prints the usage for --help, and starts
// the distributed runtime with one intra-op thread per rank unless --threads says otherwise.
#include <boost/program_options.hpp>

#include <cstdio>
#include <iostream>

#include "distributed/runtime.h"

namespace starft::bench {

// Returns nullptr after printing the help; otherwise the started runtime, with the parsed
// options in `vm`.
inline distributed::Runtime* start_bench(int* argc, char*** argv, boost::program_options::options_description& options,
                                         const char* name, boost::program_options::variables_map& vm) {
  namespace po = boost::program_options;
  distributed::add_runtime_options(options);
  po::store(po::parse_command_line(*argc, *argv, options), vm);
  if (vm.count("help")) {
    std::printf("usage: mpirun -np N %s [options]\n", name);
    std::cout << options << std::endl;
    return nullptr;
  }
  po::notify(vm);
  auto ro = distributed::runtime_options(vm);
  if (vm["threads"].as<int>() == 0) ro.threads = 1;
  return &distributed::Runtime::start(ro, argc, argv);
}

}  // namespace starft::bench
