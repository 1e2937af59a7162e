// `starft shard --from waterbirds`: metadata.csv -> train / val / test stores with groups.
#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "sharding/sources.h"

namespace starft::sharding {

namespace fs = std::filesystem;

std::vector<Source> waterbirds_sources(const std::string& root) {
  const std::string metadata = (fs::path(root) / "metadata.csv").string();
  if (!fs::exists(metadata)) fail("--input ", root, ": no metadata.csv (expected the Waterbirds dataset folder)");
  auto rows = read_table(metadata, ',');
  const auto& header = rows[0];
  auto column = [&](const std::string& name) {
    auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) fail(metadata, ": no '", name, "' column (expected img_filename, y, split, place)");
    return static_cast<size_t>(it - header.begin());
  };
  size_t file_col = column("img_filename"), y_col = column("y"), split_col = column("split"),
         place_col = column("place");

  static const char* kSplits[] = {"train", "val", "test"};
  std::vector<Source> sources(3);
  for (int s = 0; s < 3; ++s) {
    data::Manifest& m = sources[s].layout;
    m.dataset = "waterbirds";
    m.split = kSplits[s];
    m.class_names = {"landbird", "waterbird"};
    m.has_groups = true;
    m.group_names = {"landbird on land", "landbird on water", "waterbird on land", "waterbird on water"};
    m.attribute_names = {"place"};
    m.attribute_values["place"] = {"land", "water"};
  }
  auto small_int = [&](size_t r, size_t col, int hi) {
    const std::string& v = rows[r][col];
    if (v.size() != 1 || v[0] < '0' || v[0] > '0' + hi)
      fail(metadata, ": row ", r + 1, ": '", header[col], "' is '", v, "', expected 0..", hi);
    return v[0] - '0';
  };
  for (size_t r = 1; r < rows.size(); ++r) {
    int y = small_int(r, y_col, 1), split = small_int(r, split_col, 2), place = small_int(r, place_col, 1);
    data::SampleMeta meta;
    meta.label = y;
    meta.group = 2 * y + place;
    meta.attributes["place"] = place;
    meta.source = rows[r][file_col];
    sources[split].items.push_back(image_file_item((fs::path(root) / meta.source).string(), meta));
  }
  return sources;
}

}  // namespace starft::sharding
