#pragma once
// Subcommand registry for the `starft` executable. Each src/cli/cmd_*.cpp defines one
// subcommand and registers it with a static `Registration` object.
#include <boost/program_options.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/options.h"

namespace starft::cli {

namespace po = boost::program_options;

struct Command {
  std::string summary;
  std::function<int(int argc, char** argv)> run;  // argv[0] is "starft <name>"
};

std::map<std::string, Command>& registry();

struct Registration {
  Registration(const std::string& name, const std::string& summary,
               std::function<int(int, char**)> run) {
    registry()[name] = Command{summary, std::move(run)};
  }
};

// Parses argv against `options` (a --help option is added). Prints usage and returns nullopt
// for --help; throws starft::Error naming the bad option otherwise. `usage` is the first line.
// An option of `renamed` (former names, not shown in --help) is refused naming its new name.
std::optional<po::variables_map> parse(int argc, char** argv, po::options_description options,
                                       const std::string& usage,
                                       const po::positional_options_description* positional = nullptr,
                                       const std::vector<RenamedOption>& renamed = {});

}  // namespace starft::cli
