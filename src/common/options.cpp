#include "common/options.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/log.h"
#include "common/text.h"

namespace starft {

namespace po = boost::program_options;

po::options_description renamed_options(const std::vector<RenamedOption>& renamed) {
  po::options_description hidden;
  for (const auto& r : renamed) {
    hidden.add_options()(r.old_name.c_str(), po::value<std::vector<std::string>>()->composing(), "");
  }
  return hidden;
}

void refuse_renamed(po::parsed_options& parsed, const std::vector<RenamedOption>& renamed, const std::string& where) {
  for (auto& option : parsed.options) {
    for (const auto& r : renamed) {
      if (option.string_key != r.old_name) continue;
      const std::string note = r.note.empty() ? "" : " (" + r.note + ")";
      if (r.still_accepted) {
        spdlog::warn("{}--{} is deprecated: read as --{}{}; please write --{}", where.empty() ? "" : where + ": ",
                     r.old_name, r.new_name, note, r.new_name);
        option.string_key = r.new_name;
        break;
      }
      if (where.empty()) fail("--", r.old_name, " was renamed --", r.new_name, note);
      fail(where, ": key ", r.old_name, " was renamed ", r.new_name, note);
    }
  }
}

void add_config_option(po::options_description& options) {
  options.add_options()("config", po::value<std::vector<std::string>>()->composing(),
                        "INI file(s) of options (`key = value`, keys as the long options); the command line "
                        "wins over a file, an earlier file over a later one");
}

void load_config_files(po::variables_map& vm, const po::options_description& fields, const std::string& command,
                       const std::vector<RenamedOption>& renamed) {
  po::options_description keys;
  keys.add(fields);
  if (!renamed.empty()) keys.add(renamed_options(renamed));
  if (vm.count("config")) {
    for (const auto& path : vm["config"].as<std::vector<std::string>>()) {
      // A BOM (Notepad) and CRLF line ends are dropped: Boost would read them into the first key
      // and into every value.
      check(static_cast<bool>(std::ifstream(path)), "--config ", path, ": cannot open the file (", std::strerror(errno),
            ")");
      std::istringstream in(read_text_file(path, "--config"));
      po::parsed_options parsed(&keys);
      try {
        parsed = po::parse_config_file(in, keys);
      } catch (const po::error& e) {
        fail("--config ", path, ": ", e.what(), " (keys are the option names of `", command, " --help`)");
      }
      refuse_renamed(parsed, renamed, "--config " + path);
      try {
        po::store(parsed, vm);
      } catch (const po::error& e) {
        fail("--config ", path, ": ", e.what(), " (keys are the option names of `", command, " --help`)");
      }
    }
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    fail(command, ": ", e.what(), " (see `", command, " --help`)");
  }
}

}  // namespace starft
