#pragma once
// Text files as people save them: every text file starft reads (class lists, CSV/TSV lists,
// Waterbirds' metadata.csv, template files, INI configs, tokenizer files) goes through these, so
// a UTF-8 byte-order mark (Excel, Notepad, pandas' encoding='utf-8-sig') and Windows CRLF line
// ends are accepted everywhere.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace starft {

// `text` without a leading UTF-8 byte-order mark (EF BB BF).
std::string strip_bom(std::string text);

// strip_bom, and CRLF and lone CR line ends turned into LF.
std::string normalize_text(std::string text);

// The whole file at `path`, as normalize_text leaves it. Throws starft::Error naming `what` and
// `path` when it does not exist, is a directory or cannot be read.
std::string read_text_file(const std::string& path, const std::string& what);

// `items` separated by ", " for messages; past the first `limit` items, ", ... (N more)".
std::string join(const std::vector<std::string>& items, size_t limit = SIZE_MAX);

}  // namespace starft
