#include "cli/train_options.h"

#include "common/error.h"
#include "common/options.h"

namespace starft::cli {

std::optional<po::variables_map> parse_train_command(int argc, char** argv, train::TrainConfig& config,
                                                     const po::options_description& extra, const std::string& usage) {
  auto fields = train::train_options(config);
  if (!extra.options().empty()) fields.add(extra);
  po::options_description runtime("distributed runtime");
  distributed::add_runtime_options(runtime);
  fields.add(runtime);
  po::options_description all;
  add_config_option(all);
  all.add(fields);
  auto vm = parse(argc, argv, all, usage, nullptr, train::renamed_train_options());
  if (vm) load_config_files(*vm, fields, argv[0], train::renamed_train_options());
  return vm;
}

}  // namespace starft::cli
