#pragma once
// Shared by the commands that take a training run's configuration (`train`, `cache-teacher`), so
// one --config gives both the same values and the same device.
#include <torch/torch.h>

#include <optional>
#include <string>

#include "cli/command.h"
#include "distributed/runtime.h"
#include "train/config.h"

namespace starft::cli {

// Parses every TrainConfig option (bound to `config`), the command's own `extra` options, the
// distributed runtime options and --config. Returns nullopt after printing --help; otherwise
// `config` holds command line > config files (in order) > defaults. Throws starft::Error naming
// the bad option or file.
std::optional<po::variables_map> parse_train_command(int argc, char** argv, train::TrainConfig& config,
                                                     const po::options_description& extra, const std::string& usage);

}  // namespace starft::cli
