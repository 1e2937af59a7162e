#include "data/class_list.h"

#include <boost/algorithm/string/trim.hpp>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/text.h"

namespace starft::data {
namespace {

constexpr const char* kForms = "`name`, `id<TAB>name` or `wnid name, alias` (LOC_synset_mapping.txt)";

}  // namespace

ClassList parse_class_list(const std::string& text_in, const std::string& source) {
  static const std::regex wordnet_line(R"(^(n[0-9]{8})[ ]+(.+)$)");
  const std::string text = normalize_text(text_in);  // BOM, CRLF
  ClassList list;
  list.source = source;
  std::istringstream in(text);
  std::string raw;
  int number = 0, first_line = 0;
  bool with_ids = false;
  std::set<std::string> seen;
  while (std::getline(in, raw)) {
    ++number;
    const std::string line = boost::algorithm::trim_copy(raw);
    if (line.empty() || line[0] == '#') continue;
    std::string id, name;
    std::smatch m;
    if (line.find('\t') != std::string::npos) {
      std::vector<std::string> fields;
      std::stringstream split(line);
      std::string field;
      while (std::getline(split, field, '\t')) fields.push_back(boost::algorithm::trim_copy(field));
      check(fields.size() == 2, source, ":", number, ": ", fields.size(), " tab-separated fields; a class line is ",
            kForms);
      id = fields[0];
      name = fields[1];
      check(!id.empty() && !name.empty(), source, ":", number, ": empty field (fields are separated by a single tab)");
    } else if (std::regex_match(line, m, wordnet_line)) {
      id = m[1].str();
      name = boost::algorithm::trim_copy(m[2].str().substr(0, m[2].str().find(',')));
      check(!name.empty(), source, ":", number, ": no class name after the WordNet id ", id);
    } else {
      name = line;
    }
    if (first_line == 0) {
      first_line = number;
      with_ids = !id.empty();
    }
    check(id.empty() != with_ids, source, ":", number, ": every line must have the same form (line ", first_line,
          " has ", with_ids ? "an id" : "no id", ", this one ", with_ids ? "has none" : "has one",
          "); a class line is ", kForms);
    list.names.push_back(name);
    if (with_ids) {
      check(seen.insert(id).second, source, ":", number, ": class id '", id, "' appears twice");
      list.ids.push_back(id);
    }
  }
  check(!list.names.empty(), "class list ", source, ": no classes (one class per line: ", kForms, ")");
  return list;
}

ClassList read_class_list(const std::string& path) {
  return parse_class_list(read_text_file(path, "class list"), path);
}

ClassList class_list(const Manifest& manifest, const std::string& source) {
  ClassList list;
  list.names = manifest.class_names;
  list.ids = manifest.class_ids;
  list.source = source;
  return list;
}

}  // namespace starft::data
