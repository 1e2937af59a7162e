#pragma once
// Class lists: the classes of a store (`starft shard --class-names`) or of a zero-shot head
// (`starft eval --class-names`, `train --eval-class-names`), read by one function for every
// command. Format (datasets/classnames/README.md), one class per line in label order:
//   name                     a class name alone;
//   id<TAB>name              an id (e.g. a WordNet id) and the name;
//   n01440764 tench, Tinca   ImageNet's LOC_synset_mapping.txt: a WordNet id (n + 8 digits), a
//                            space, the name, then aliases after the first comma (dropped).
// Either every line has an id or none has; ids are unique. Blank lines and lines whose first
// non-blank character is '#' are skipped, spaces around fields are trimmed, a UTF-8 byte-order
// mark at the start and CR of CRLF line ends are ignored.
#include <cstdint>
#include <string>
#include <vector>

#include "data/manifest.h"

namespace starft::data {

struct ClassList {
  std::vector<std::string> names;
  std::vector<std::string> ids;  // empty, or one per name
  std::string source;            // where the list came from, for messages

  int64_t size() const { return static_cast<int64_t>(names.size()); }
  bool has_ids() const { return !ids.empty(); }
};

// Reads a class-list file (format above); `source` of the result is `path`. Throws
// starft::Error naming the file (and line) for a file that cannot be read or is a Git LFS pointer
// (with `git lfs pull`; read_text_file), a line with more than two tab-separated fields or an
// empty field, a file that mixes lines with and without ids, a repeated id, or a file with no
// classes.
ClassList read_class_list(const std::string& path);

// Parses the text of a class-list file; `source` names it in errors ("<source>:<line>: ...").
ClassList parse_class_list(const std::string& text, const std::string& source);

// The classes of a store's manifest (`class_names`, and `class_ids` when present).
ClassList class_list(const Manifest& manifest, const std::string& source);

}  // namespace starft::data
