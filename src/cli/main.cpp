// The `starft` command: dispatches to the registered subcommands.
#include <mpi.h>

#include <cstdlib>
#include <cstring>
#include <set>
#include <iostream>

#include "cli/command.h"
#include "common/allocator.h"
#include "common/error.h"
#include "common/hardware.h"
#include "common/log.h"

namespace starft::cli {

std::map<std::string, Command>& registry() {
  static std::map<std::string, Command> commands;
  return commands;
}

std::optional<po::variables_map> parse(int argc, char** argv, po::options_description options, const std::string& usage,
                                       const po::positional_options_description* positional,
                                       const std::vector<RenamedOption>& renamed) {
  options.add_options()("help,h", "show this help and exit");
  po::options_description all;
  all.add(options);
  if (!renamed.empty()) all.add(renamed_options(renamed));
  po::variables_map vm;
  try {
    auto parser = po::command_line_parser(argc, argv).options(all);
    if (positional) parser.positional(*positional);
    auto parsed = parser.run();
    refuse_renamed(parsed, renamed);
    po::store(parsed, vm);
    if (vm.count("help")) {
      std::cout << usage << "\n\n" << options << std::endl;
      return std::nullopt;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    fail(argv[0], ": ", e.what(), " (see `", argv[0], " --help`)");
  }
  return vm;
}

static void print_usage() {
  std::cout << "starft: robust fine-tuning of CLIP-style models with StarFT\n\n"
               "usage: starft <command> [options]   (starft <command> --help for its options)\n\n"
               "commands:\n";
  for (const auto& [name, cmd] : registry()) {
    std::cout << "  " << name << std::string(name.size() < 16 ? 16 - name.size() : 1, ' ') << cmd.summary << "\n";
  }
}

}  // namespace starft::cli

int main(int argc, char** argv) {
  using namespace starft;
  keep_freed_memory_for_reuse();  // before any thread or large allocation
  init_logging(rank_from_environment());
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    cli::print_usage();
    return argc < 2 ? 2 : 0;
  }
  auto& commands = cli::registry();
  auto it = commands.find(argv[1]);
  if (it == commands.end()) {
    std::cerr << "starft: unknown command '" << argv[1] << "'\n\n";
    cli::print_usage();
    return 2;
  }
  std::string prog = std::string("starft ") + argv[1];
  std::vector<char*> args{prog.data()};
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  try {
    const std::string& name = it->first;
    // The commands that start MPI (shard, train, eval, cache-teacher, dist-selftest) check the
    // world size against Slurm's task count themselves (distributed::check_slurm_world_size).
    // One-process commands that write files are refused under a multi-task srun step: every task
    // would write the same --out.
    static const std::set<std::string> kOneProcessWriters{"export", "encode", "demo-report"};
    const char* step_tasks = std::getenv("SLURM_STEP_NUM_TASKS");
    if (kOneProcessWriters.count(name) && step_tasks && std::atoi(step_tasks) > 1 &&
        !std::getenv("OMPI_COMM_WORLD_SIZE"))
      fail("srun started ", step_tasks, " tasks (SLURM_STEP_NUM_TASKS=", step_tasks, ") of `starft ", name,
           "`, which runs as one process: every task would write the same output. Run it as one task "
           "(`srun -n 1 starft ",
           name, " ...`) or outside srun.");
    // The commands that compute with the model describe the hardware; the others only warn.
    if (name != "hardware")
      log_hardware(name == "train" || name == "cache-teacher" || name == "eval" || name == "encode");
    return it->second.run(static_cast<int>(args.size()), args.data());
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    // One failing rank ends the whole job instead of leaving the others waiting in a collective.
    int initialized = 0, finalized = 0, size = 1;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized) {
      MPI_Comm_size(MPI_COMM_WORLD, &size);
      if (size > 1) {
        spdlog::default_logger()->flush();
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
    }
    return 1;
  }
}
