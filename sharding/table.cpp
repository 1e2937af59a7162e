// Delimited text tables, shared by the converters.
#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/lfs_pointer.h"
#include "common/text.h"
#include "data/image.h"
#include "sharding/sources.h"

namespace starft::sharding {

namespace {

// The records of `text` (no byte-order mark) split at `sep`, with pandas' quoting: a field that
// starts with '"' runs to the next lone '"' (doubled quotes are one quote; separators, CRs and line
// ends inside are kept). LF, CRLF and CR end a record; blank lines are skipped. With `first_only`,
// stops after the first record. `lines[i]` is the line record i starts on; `unclosed` is set when
// the text ends inside a quoted field.
struct Records {
  std::vector<std::vector<std::string>> rows;
  std::vector<size_t> lines;
  bool unclosed = false;
};

Records split_records(const std::string& text, char sep, bool first_only) {
  Records out;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  size_t line = 1, start_line = 1;
  auto end_record = [&] {
    row.push_back(field);
    out.rows.push_back(std::move(row));
    out.lines.push_back(start_line);
    row.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n' || (c == '\r' && (i + 1 >= text.size() || text[i + 1] != '\n'))) ++line;
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field += c;
      }
    } else if (c == '"' && field.empty()) {
      quoted = any = true;
    } else if (c == sep) {
      row.push_back(field);
      field.clear();
      any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
        ++i;
        ++line;
      }
      if (any || !field.empty()) {
        end_record();
        if (first_only) return out;
      }
      row.clear();
      field.clear();
      any = false;
      start_line = line;
    } else {
      field += c;
      any = true;
    }
  }
  out.unclosed = quoted;
  if (any || !field.empty()) end_record();
  return out;
}

const char* separator_words(char sep) {
  return sep == '\t' ? "tab-separated" : sep == ',' ? "comma-separated" : "separated by another character";
}

}  // namespace

char detect_separator(const std::string& text_in) {
  const std::string text = strip_bom(text_in);
  auto header_fields = [&](char sep) {
    const Records first = split_records(text, sep, true);
    return first.rows.empty() ? size_t{0} : first.rows[0].size();
  };
  return header_fields(',') > header_fields('\t') ? ',' : '\t';
}

std::vector<std::vector<std::string>> read_table(const std::string& path, char sep, char* used) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("table ", path, ": cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  refuse_lfs_pointer(buffer.str(), "table " + path, path, "the file's content");
  return parse_table(buffer.str(), sep, path, used);
}

std::vector<std::vector<std::string>> parse_table(const std::string& text_in, char sep, const std::string& path,
                                                  char* used) {
  // UTF-16/UTF-32 (Excel's "Unicode Text") is refused naming the encoding, not misread as rows of one field.
  check_utf8_text(text_in, "table", path);
  // A UTF-8 byte-order mark is dropped (as pandas does); CRLF and CR line ends end records, CRs
  // inside quoted fields are kept.
  const std::string text = strip_bom(text_in);
  if (sep == kDetectSeparator) sep = detect_separator(text);
  if (used) *used = sep;
  Records records = split_records(text, sep, false);
  if (records.unclosed) fail("table ", path, ": a quoted field is not closed (a '\"' with no closing '\"')");
  auto& rows = records.rows;
  if (rows.empty()) fail("table ", path, ": empty file");
  for (size_t r = 1; r < rows.size(); ++r) {
    if (rows[r].size() == rows[0].size()) continue;
    const std::string where = records.lines[r] == r + 1 ? "" : " (line " + std::to_string(records.lines[r]) + ")";
    fail("table ", path, ": row ", r + 1, where, " has ", rows[r].size(), " fields, the header has ", rows[0].size(),
         " (the file is read as ", separator_words(sep),
         "; a field that holds the separator must be in double quotes, as pandas and Excel write it)");
  }
  return std::move(rows);
}

SourceItem image_file_item(const std::string& path, data::SampleMeta meta) {
  return SourceItem{[path] { return data::read_image_rgb(path); }, std::move(meta)};
}

}  // namespace starft::sharding
