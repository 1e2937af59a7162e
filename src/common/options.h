#pragma once
// Option parsing that every command shares: INI files of options (`--config`), and option names
// that were renamed, which are refused with a message naming the new one instead of Boost's
// "unrecognised option".
//
// Precedence of a value: the command line, then the --config files in the order given (an
// earlier file over a later one), then the option's default. Keys of the files are the long
// option names (`batch-size = 64` is `--batch-size 64`).
#include <boost/program_options.hpp>

#include <string>
#include <vector>

namespace starft {

// An option's former name. `note` (may be empty) is appended to the refusal in parentheses.
struct RenamedOption {
  std::string old_name;  // e.g. "classnames"
  std::string new_name;  // e.g. "class-names"
  std::string note;
  // true: the old name still works (published scripts use it), read as the new name with a
  // warning naming it; false: refused.
  bool still_accepted = false;
};

// The old names as options that take a value (repeatable), for parsing only: keep them out of the
// description that --help prints, so they are not offered.
boost::program_options::options_description renamed_options(const std::vector<RenamedOption>& renamed);

// Throws starft::Error when `parsed` holds one of the old names: "--OLD was renamed --NEW" for
// the command line (`where` empty), "WHERE: key OLD was renamed NEW" for a file. An old name with
// `still_accepted` is instead given its new name in `parsed` (so it sets the new option) and a
// warning "--OLD is deprecated: read as --NEW" is logged.
void refuse_renamed(boost::program_options::parsed_options& parsed, const std::vector<RenamedOption>& renamed,
                    const std::string& where = "");

// Adds `--config FILE` (repeatable) to a command's options.
void add_config_option(boost::program_options::options_description& options);

// After the command line is stored in `vm`: stores the INI files named by --config, in order,
// with the keys of `fields` (a value already in `vm` wins, so the command line wins over every
// file and an earlier file over a later one), then notifies `vm` so bound variables hold the
// result. `command` ("starft train") names the help to consult in errors. Throws starft::Error
// naming the file for a file that cannot be opened or is a Git LFS pointer (read_text_file: with
// `git lfs pull`), an unknown key, a bad value or a key in `renamed` (naming its new name), and
// naming the option for an error found when notifying.
void load_config_files(boost::program_options::variables_map& vm,
                       const boost::program_options::options_description& fields, const std::string& command,
                       const std::vector<RenamedOption>& renamed = {});

}  // namespace starft
