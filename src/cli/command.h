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
  Registration(const std::string& name, const std::string& summary, std::function<int(int, char**)> run) {
    registry()[name] = Command{summary, std::move(run)};
  }
};

// Parses argv against `options` (a --help option is added). Prints usage and returns nullopt
// for --help; throws starft::Error naming the bad option otherwise. `usage` is the first line.
// An option of `renamed` (former names, not shown in --help) is refused naming its new name.
std::optional<po::variables_map> parse(int argc, char** argv, po::options_description options, const std::string& usage,
                                       const po::positional_options_description* positional = nullptr,
                                       const std::vector<RenamedOption>& renamed = {});

// The help of --model, the one option that names the architecture of the weights in every command.
inline constexpr const char* kModelHelp =
    "the architecture of the weights, when no configuration came with them (starft's metadata, or config.json / "
    "open_clip_config.json beside them) and their shapes are not exactly an OpenAI model's: an open_clip model name "
    "(ViT-B-16, ViT-B-16-quickgelu, ViT-B-32, ViT-L-14, ViT-L-14-336, ViT-H-14, ViT-g-14, ViT-bigG-14, ...) or a "
    "model-config JSON file (open_clip's, or Hugging Face's config.json)";

}  // namespace starft::cli
