// Class list files and delimited text tables, shared by the converters.
#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>

#include "common/error.h"
#include "data/image.h"
#include "sharding/sources.h"

namespace starft::sharding {

static std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

ClassNames read_class_names(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("class names file ", path, ": cannot open");
  static const std::regex wnid_line(R"(^(n\d{8})\s+(.+)$)");
  ClassNames out;
  std::string line;
  int line_no = 0, wnid_lines = 0, plain_lines = 0;
  while (std::getline(in, line)) {
    ++line_no;
    line = trim(line);
    if (line.empty()) continue;
    std::smatch m;
    if (std::regex_match(line, m, wnid_line)) {
      ++wnid_lines;
      std::string name = m[2].str();
      out.ids.push_back(m[1].str());
      out.names.push_back(trim(name.substr(0, name.find(','))));
    } else {
      ++plain_lines;
      out.names.push_back(line);
    }
    if (wnid_lines > 0 && plain_lines > 0)
      fail("class names file ", path, ":", line_no, ": mixes `wnid name` lines and plain name lines");
  }
  if (out.names.empty()) fail("class names file ", path, ": no class names in it");
  return out;
}

std::vector<std::vector<std::string>> read_table(const std::string& path, char sep) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("table ", path, ": cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
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
