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

// Throws starft::Error naming `what` and `path` when `text` is not 8-bit text: a UTF-16 or UTF-32
// byte-order mark (FF FE, FE FF, FF FE 00 00, 00 00 FE FF; Excel's "Unicode Text" writes UTF-16),
// NUL bytes in its first line (UTF-16/UTF-32 without a mark, or a binary file) or a zip archive
// (an .xlsx workbook). The message names the encoding found and the iconv command that converts it.
void check_utf8_text(const std::string& text, const std::string& what, const std::string& path);

// strip_bom, and CRLF and lone CR line ends turned into LF.
std::string normalize_text(std::string text);

// The whole file at `path`, as normalize_text leaves it. Throws starft::Error naming `what` and
// `path` when it does not exist, is a directory or cannot be read, and when it is a Git LFS
// pointer (common/lfs_pointer.h: the message says `git lfs pull`) or UTF-16/UTF-32 text
// (check_utf8_text).
std::string read_text_file(const std::string& path, const std::string& what);

// `items` separated by ", " for messages; past the first `limit` items, ", ... (N more)".
std::string join(const std::vector<std::string>& items, size_t limit = SIZE_MAX);

}  // namespace starft
