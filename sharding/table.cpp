// Delimited text tables, shared by the converters.
#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/text.h"
#include "data/image.h"
#include "sharding/sources.h"

namespace starft::sharding {

std::vector<std::vector<std::string>> read_table(const std::string& path, char sep) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("table ", path, ": cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_table(buffer.str(), sep, path);
}

std::vector<std::vector<std::string>> parse_table(const std::string& text_in, char sep, const std::string& path) {
  // A UTF-8 byte-order mark is dropped (as pandas does); CRLF and CR line ends are handled below,
  // CRs inside quoted fields kept.
  const std::string text = strip_bom(text_in);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
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
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (any || !field.empty()) {
        row.push_back(field);
        rows.push_back(row);
      }
      row.clear();
      field.clear();
      any = false;
    } else {
      field += c;
      any = true;
    }
  }
  if (quoted) fail("table ", path, ": a quoted field is not closed");
  if (any || !field.empty()) {
    row.push_back(field);
    rows.push_back(row);
  }
  if (rows.empty()) fail("table ", path, ": empty file");
  for (size_t r = 1; r < rows.size(); ++r)
    if (rows[r].size() != rows[0].size())
      fail("table ", path, ": row ", r + 1, " has ", rows[r].size(), " fields, the header has ", rows[0].size());
  return rows;
}

SourceItem image_file_item(const std::string& path, data::SampleMeta meta) {
  return SourceItem{[path] { return data::read_image_rgb(path); }, std::move(meta)};
}

}  // namespace starft::sharding
