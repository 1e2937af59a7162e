#pragma once
// Template sets: the spurious prompt pools (datasets/pools/*.txt) that StarFT draws p_i from,
// and the zero-shot template sets (datasets/templates/*.txt). Format (datasets/README.md): one
// template per line with exactly one "{}" where the text goes; lines whose first non-blank
// character is '#' are comments; blank lines are ignored; surrounding whitespace is trimmed.
#include <cstdint>
#include <string>
#include <vector>

namespace starft::data {

// The folder holding pools/ and templates/: $STARFT_DATASETS if set, else
// <source dir>/datasets.
std::string datasets_dir();

// Names of the built-in sets ("backgrounds", "imagenet", ...), sorted.
std::vector<std::string> builtin_template_sets();

// Reads templates from `name_or_path`: a built-in name resolves to <datasets>/pools/<name>.txt
// or <datasets>/templates/<name>.txt; anything containing '/' or ending in ".txt" is a path read
// as is. Several comma-separated entries are joined in order (a template already present from
// an earlier entry is kept once). Throws starft::Error for an unknown name (listing the built-in
// ones), an unreadable file or a Git LFS pointer (with `git lfs pull`), a template without
// exactly one "{}" (naming file and line), a template repeated within one file, or a set with no
// templates.
std::vector<std::string> load_templates(const std::string& name_or_path);

// Parses the text of one template file; `source` names it in errors ("<source>:<line>: ...").
std::vector<std::string> parse_templates(const std::string& text, const std::string& source);

// Puts `caption` into the template's "{}" after removing the caption's final period (and
// trailing spaces): ("{} in the snow.", "a photo of a tench.") -> "a photo of a tench in the
// snow."; ("a sketch of a {}.", "tench") -> "a sketch of a tench.".
std::string apply_template(const std::string& tpl, const std::string& caption);

// Which of `pool_size` templates sample `sample` (its index in the dataset, not in a rank's
// slice) uses at (epoch, step): uniform over [0, pool_size), a pure function of its arguments
// (a splitmix64 counter hash), so it does not depend on the number of ranks or the order in
// which samples are drawn.
int64_t draw_template(uint64_t seed, int64_t epoch, int64_t step, int64_t sample, int64_t pool_size);

}  // namespace starft::data
