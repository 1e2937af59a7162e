// `starft shard --from csv`: the reference code's tab-separated (title, filepath, label) files, or comma-separated.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "common/text.h"
#include "data/class_list.h"
#include "sharding/sources.h"

namespace starft::sharding {

namespace fs = std::filesystem;

static size_t column(const std::vector<std::string>& header, const std::string& name, const std::string& path) {
  auto it = std::find(header.begin(), header.end(), name);
  if (it != header.end()) return it - header.begin();
  std::string hint;
  if (header.size() == 1 && header[0].find(';') != std::string::npos)
    hint = "; it looks semicolon-separated (Excel in a locale with decimal commas): save it with tabs or commas";
  fail("csv ", path, ": no '", name, "' column in the header (", join(header, 8),
       "); expected a header line with title, filepath and label columns separated by tabs or commas", hint);
}

Source csv_source(const std::string& csv_path, const std::string& image_root, const std::string& class_names_file,
                  const std::string& split) {
  // Tab- or comma-separated (open_clip's --csv-separator), decided from the header line alone, so
  // a tab inside a quoted caption of a comma-separated file (or a comma in a TSV's) is just text.
  char sep = '\t';
  auto rows = read_table(csv_path, kDetectSeparator, &sep);
  if (sep == ',')
    spdlog::info("csv {}: the header line splits at commas, not tabs; reading it as comma-separated", csv_path);
  const auto& header = rows[0];
  size_t title = column(header, "title", csv_path), filepath = column(header, "filepath", csv_path),
         label_col = column(header, "label", csv_path);
  fs::path root = image_root.empty() ? fs::path(csv_path).parent_path() : fs::path(image_root);

  Source src;
  data::Manifest& m = src.layout;
  m.dataset = fs::path(csv_path).stem().string();
  m.split = split;
  m.has_captions = true;
  int64_t max_label = -1;
  for (size_t r = 1; r < rows.size(); ++r) {
    const auto& row = rows[r];
    data::SampleMeta meta;
    try {
      size_t used = 0;
      const std::string& text = row[label_col];
      meta.label = std::stoll(text, &used);
      // "3.0": pandas writes an integer column holding a NaN as floats; whole numbers are accepted.
      if (used < text.size() && text[used] == '.' && text.find_first_not_of('0', used + 1) == std::string::npos &&
          used + 1 < text.size())
        used = text.size();
      if (used != text.size()) throw std::invalid_argument("trailing characters");
    } catch (const std::exception&) {
      fail("csv ", csv_path, ": row ", r + 1, ": label '", row[label_col], "' is not an integer");
    }
    if (meta.label < 0) fail("csv ", csv_path, ": row ", r + 1, ": negative label ", meta.label);
    max_label = std::max(max_label, meta.label);
    meta.caption = row[title];
    meta.source = row[filepath];
    fs::path file = fs::path(row[filepath]).is_absolute() ? fs::path(row[filepath]) : root / row[filepath];
    src.items.push_back(image_file_item(file.string(), meta));
  }
  if (src.items.empty()) fail("csv ", csv_path, ": no rows");
  if (!class_names_file.empty()) {
    const data::ClassList names = data::read_class_list(class_names_file);
    if (static_cast<int64_t>(names.names.size()) <= max_label)
      fail("--class-names ", class_names_file, " lists ", names.names.size(), " classes but ", csv_path, " uses label ",
           max_label);
    m.class_names = names.names;
    m.class_ids = names.ids;
  } else {
    spdlog::warn("no --class-names for {}: class names will be the label numbers 0..{}", csv_path, max_label);
    for (int64_t i = 0; i <= max_label; ++i) m.class_names.push_back(std::to_string(i));
  }
  return src;
}

}  // namespace starft::sharding
