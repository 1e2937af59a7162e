#include "eval/class_map.h"

#include <boost/algorithm/string/trim.hpp>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/text.h"

namespace starft::eval {
namespace {

struct Line {
  int number;
  std::vector<std::string> fields;  // split at tabs, each trimmed
};

// The non-blank, non-comment lines of a text file, split at tabs.
std::vector<Line> read_tab_lines(const std::string& path, const char* what) {
  std::istringstream in(read_text_file(path, what));  // BOM and CRLF dropped
  std::vector<Line> lines;
  std::string text;
  int number = 0;
  while (std::getline(in, text)) {
    ++number;
    const std::string t = boost::algorithm::trim_copy(text);
    if (t.empty() || t[0] == '#') continue;
    Line line{number, {}};
    std::stringstream fields(t);
    std::string field;
    while (std::getline(fields, field, '\t')) line.fields.push_back(boost::algorithm::trim_copy(field));
    for (const auto& f : line.fields) {
      check(!f.empty(), path, ":", number, ": empty field (fields are separated by a single tab)");
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

std::string describe(const ClassList& list, int64_t c) {
  if (!list.has_ids()) return "'" + list.names[c] + "'";
  return list.ids[c] + " ('" + list.names[c] + "')";
}

std::string first_few(const std::vector<std::string>& items, size_t most = 10) {
  std::string s;
  for (size_t i = 0; i < items.size() && i < most; ++i) s += (i ? ", " : "") + items[i];
  if (items.size() > most) s += ", ... (" + std::to_string(items.size() - most) + " more)";
  return s;
}

std::multimap<std::string, int64_t> index_of(const std::vector<std::string>& keys) {
  std::multimap<std::string, int64_t> index;
  for (size_t i = 0; i < keys.size(); ++i) index.emplace(keys[i], static_cast<int64_t>(i));
  return index;
}

// Columns of `key` in `head`: by id first, then by name. Empty when absent; more than one when
// the key is an ambiguous name.
std::vector<int64_t> lookup(const ClassList& head, const std::multimap<std::string, int64_t>& ids,
                            const std::multimap<std::string, int64_t>& names, const std::string& key) {
  std::vector<int64_t> found;
  auto [b, e] = ids.equal_range(key);
  if (b == e) std::tie(b, e) = names.equal_range(key);
  for (auto it = b; it != e; ++it) found.push_back(it->second);
  return found;
}

}  // namespace

const char* to_string(Matching matching) {
  switch (matching) {
    case Matching::identity:
      return "identity";
    case Matching::class_id:
      return "class id";
    case Matching::class_name:
      return "class name";
    case Matching::class_map:
      return "class map";
  }
  return "?";
}

torch::Tensor ClassMapping::apply(const torch::Tensor& head_logits) const {
  check(head_logits.dim() == 2 && head_logits.size(1) == head_classes, "class mapping: expected logits [N, ",
        head_classes, "], got ", head_logits.sizes());
  if (matching == Matching::identity) return head_logits;
  size_t widest = 0;
  for (const auto& cols : columns) widest = std::max(widest, cols.size());
  // [C, K] column indices; a class with fewer than K columns repeats its first one, which leaves
  // the maximum unchanged.
  std::vector<int64_t> flat;
  flat.reserve(columns.size() * widest);
  for (const auto& cols : columns) {
    for (size_t k = 0; k < widest; ++k) flat.push_back(cols[k < cols.size() ? k : 0]);
  }
  auto index = torch::tensor(flat, torch::kLong).to(head_logits.device());
  auto picked = head_logits.index_select(1, index);
  if (widest == 1) return picked;
  return std::get<0>(picked.view({head_logits.size(0), store_classes(), static_cast<int64_t>(widest)}).max(2));
}

ClassMapping match_classes(const ClassList& store, const ClassList& head, const std::string& store_where) {
  ClassMapping m;
  m.head_classes = head.size();
  check(store.size() > 0, store_where, ": the store has no classes");
  const bool same_ids = store.ids == head.ids || !store.has_ids() || !head.has_ids();
  if (store.names == head.names && same_ids) {
    m.matching = Matching::identity;
    for (int64_t c = 0; c < store.size(); ++c) m.columns.push_back({c});
    return m;
  }
  const bool by_id = store.has_ids() && head.has_ids();
  m.matching = by_id ? Matching::class_id : Matching::class_name;
  const auto index = index_of(by_id ? head.ids : head.names);
  const auto& keys = by_id ? store.ids : store.names;
  std::vector<std::string> missing, ambiguous;
  std::set<int64_t> used;
  for (int64_t c = 0; c < store.size(); ++c) {
    auto [b, e] = index.equal_range(keys[c]);
    const auto n = std::distance(b, e);
    if (n == 0) {
      missing.push_back(describe(store, c));
    } else if (n > 1) {
      ambiguous.push_back(describe(store, c));
    } else {
      check(used.insert(b->second).second, store_where, ": classes ", describe(store, c),
            " and another class of the store match the same head column ", b->second, " (", describe(head, b->second),
            "); give a --class-map");
      m.columns.push_back({b->second});
    }
  }
  const std::string how = by_id ? "class id" : "class name";
  if (!missing.empty()) {
    fail(store_where, ": ", missing.size(), " of its ", store.size(), " classes have no column in the head built from ",
         head.source, " (", head.size(), " classes, matched by ", how, "): ", first_few(missing),
         ". Build the head from classes that cover the store's (--class-names, or class-names=store for the "
         "store's own), or give a --class-map");
  }
  if (!ambiguous.empty()) {
    fail(store_where, ": the class names ", first_few(ambiguous), " each appear more than once in the head built from ",
         head.source, ", so they cannot be matched by name. Give class ids on both sides or a --class-map");
  }
  return m;
}

ClassMapping read_class_map(const std::string& path, const ClassList& store, const ClassList& head) {
  ClassMapping m;
  m.matching = Matching::class_map;
  m.head_classes = head.size();
  m.columns.assign(store.size(), {});
  const auto lines = read_tab_lines(path, "class map");
  check(!lines.empty(), "class map ", path, ": no entries (one line per store class: `store_class<TAB>head_class...`)");
  const auto store_ids = index_of(store.ids), store_names = index_of(store.names);
  const auto head_ids = index_of(head.ids), head_names = index_of(head.names);
  std::vector<int> entry_line(store.size(), 0);
  for (const auto& line : lines) {
    check(line.fields.size() >= 2, path, ":", line.number,
          ": a class map line is `store_class<TAB>head_class[<TAB>head_class...]` (tab-separated), got '",
          line.fields[0], "'");
    const auto target = lookup(store, store_ids, store_names, line.fields[0]);
    check(!target.empty(), path, ":", line.number, ": '", line.fields[0], "' is not a class of the store ",
          store.source, " (neither a class id nor a class name)");
    check(target.size() == 1, path, ":", line.number, ": '", line.fields[0], "' names ", target.size(),
          " classes of the store ", store.source, "; use its class id");
    const int64_t c = target[0];
    check(entry_line[c] == 0, path, ":", line.number, ": store class ", describe(store, c),
          " already has an entry on line ", entry_line[c]);
    entry_line[c] = line.number;
    std::set<int64_t> cols;
    for (size_t f = 1; f < line.fields.size(); ++f) {
      const auto found = lookup(head, head_ids, head_names, line.fields[f]);
      check(!found.empty(), path, ":", line.number, ": '", line.fields[f], "' is not a class of the head built from ",
            head.source, " (neither a class id nor a class name)");
      check(found.size() == 1, path, ":", line.number, ": '", line.fields[f], "' names ", found.size(),
            " classes of the head built from ", head.source, "; use its class id");
      cols.insert(found[0]);
    }
    m.columns[c].assign(cols.begin(), cols.end());
  }
  std::vector<std::string> missing;
  for (int64_t c = 0; c < store.size(); ++c) {
    if (entry_line[c] == 0) missing.push_back(describe(store, c));
  }
  check(missing.empty(), "class map ", path, ": no entry for ", missing.size(), " of the ", store.size(),
        " classes of the store ", store.source, ": ", first_few(missing), ". Add a line for each");
  return m;
}

}  // namespace starft::eval
