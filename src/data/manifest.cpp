#include "data/manifest.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/lfs_pointer.h"

namespace starft::data {

namespace fs = std::filesystem;
using json = nlohmann::json;

static const char* kFormatName = "starft-store";

int64_t Manifest::count() const {
  int64_t n = 0;
  for (const auto& s : shards) n += s.count;
  return n;
}

json Manifest::to_json() const {
  json j;
  j["format"] = kFormatName;
  j["format_version"] = format_version;
  j["dataset"] = dataset;
  j["split"] = split;
  j["class_names"] = class_names;
  if (!class_ids.empty()) j["class_ids"] = class_ids;
  j["image_shape"] = {image_size, image_size, 3};
  j["count"] = count();
  j["shard_size"] = shard_size;
  j["compression"] = compression == 0 ? std::string("none") : "gzip-" + std::to_string(compression);
  j["fields"] = {{"labels", true},
                 {"source", true},
                 {"groups", has_groups},
                 {"captions", has_captions},
                 {"attributes", attribute_names}};
  if (!group_names.empty()) j["group_names"] = group_names;
  if (!attribute_values.empty()) j["attribute_values"] = attribute_values;
  j["shards"] = json::array();
  for (const auto& s : shards) j["shards"].push_back({{"file", s.file}, {"count", s.count}, {"checksum", s.checksum}});
  j["skipped"] = json::array();
  for (const auto& s : skipped) j["skipped"].push_back({{"source", s.source}, {"reason", s.reason}});
  return j;
}

namespace {

// j[key] as an integer in [lo, hi]; a float, a string or an out-of-range number is an error naming
// the key (nlohmann's get<int> would convert 1e300 or 2^40 without a word).
int64_t integer_value(const json& v, const std::string& key, int64_t lo, int64_t hi, const std::string& where) {
  check(v.is_number_integer(), where, ": \"", key, "\" must be an integer, not ", v.dump());
  const bool in_range = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(hi)
                                               : v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
  check(in_range, where, ": \"", key, "\" is ", v.dump(), ", outside ", lo, "..", hi);
  return v.get<int64_t>();
}

int64_t integer(const json& j, const char* key, int64_t lo, int64_t hi, const std::string& where) {
  return integer_value(j.at(key), key, lo, hi, where);
}

}  // namespace

Manifest Manifest::from_json(const json& j, const std::string& where) {
  Manifest m;
  try {
    check(j.is_object(), where, ": not a JSON object");
    check(j.value("format", std::string()) == kFormatName, where, ": not a starft store manifest (\"format\" is not \"",
          kFormatName, "\")");
    m.format_version = static_cast<int>(integer(j, "format_version", 0, 1 << 20, where));
    check(m.format_version == kStoreFormatVersion, where, ": store format version ", m.format_version,
          " is not supported by this starft (it reads version ", kStoreFormatVersion,
          "); convert the data again with this starft's `starft shard`");
    m.dataset = j.at("dataset").get<std::string>();
    m.split = j.at("split").get<std::string>();
    m.class_names = j.at("class_names").get<std::vector<std::string>>();
    if (j.contains("class_ids")) m.class_ids = j.at("class_ids").get<std::vector<std::string>>();
    std::vector<int> shape;
    check(j.at("image_shape").is_array(), where, ": image_shape must be [S, S, 3]");
    for (size_t i = 0; i < j.at("image_shape").size(); ++i)
      shape.push_back(static_cast<int>(integer_value(j.at("image_shape")[i], "image_shape", 0, 1 << 16, where)));
    check(shape.size() == 3 && shape[0] == shape[1] && shape[0] > 0 && shape[2] == 3, where,
          ": image_shape must be [S, S, 3] with S > 0");
    m.image_size = shape[0];
    m.shard_size = integer(j, "shard_size", 1, int64_t{1} << 40, where);
    auto compression = j.at("compression").get<std::string>();
    if (compression == "none") {
      m.compression = 0;
    } else {
      const std::string level = compression.substr(std::min<size_t>(5, compression.size()));
      check(compression.rfind("gzip-", 0) == 0 && level.size() == 1 && level[0] >= '0' && level[0] <= '9', where,
            ": unknown compression '", compression, "' (\"none\" or \"gzip-1\" .. \"gzip-9\")");
      m.compression = level[0] - '0';
    }
    const auto& fields = j.at("fields");
    m.has_groups = fields.at("groups").get<bool>();
    m.has_captions = fields.at("captions").get<bool>();
    m.attribute_names = fields.at("attributes").get<std::vector<std::string>>();
    if (j.contains("group_names")) m.group_names = j.at("group_names").get<std::vector<std::string>>();
    if (j.contains("attribute_values"))
      m.attribute_values = j.at("attribute_values").get<std::map<std::string, std::vector<std::string>>>();
    std::set<std::string> files;
    for (const auto& s : j.at("shards")) {
      ShardInfo info{s.at("file").get<std::string>(), integer(s, "count", 0, int64_t{1} << 40, where),
                     s.at("checksum").get<std::string>()};
      // Bounded so that no sum of counts can overflow (a store holds far fewer samples).
      check(info.count > 0 && info.count < (int64_t{1} << 40), where, ": shard ", info.file, " has count ", info.count);
      check(!info.file.empty() && info.file.find('/') == std::string::npos, where, ": bad shard file name '", info.file,
            "'");
      check(files.insert(info.file).second, where, ": shard ", info.file, " is listed twice");
      m.shards.push_back(info);
    }
    if (j.contains("skipped"))
      for (const auto& s : j.at("skipped"))
        m.skipped.push_back({s.at("source").get<std::string>(), s.at("reason").get<std::string>()});
    check(integer(j, "count", 0, int64_t{1} << 62, where) == m.count(), where, ": count ", j.at("count").dump(),
          " is not the sum of the shard counts (", m.count(), ")");
  } catch (const json::exception& e) {
    fail(where, ": malformed manifest: ", e.what());
  }
  check(m.class_ids.empty() || m.class_ids.size() == m.class_names.size(), where, ": ", m.class_ids.size(),
        " class_ids for ", m.class_names.size(), " class_names");
  check(m.compression >= 0 && m.compression <= 9, where, ": gzip level ", m.compression, " is not in 0..9");
  return m;
}

Manifest Manifest::read(const std::string& dir) {
  fs::path path = fs::path(dir) / kManifestName;
  if (!fs::is_directory(dir)) fail("store ", dir, ": no such directory");
  std::ifstream in(path);
  if (!in) {
    fail("store ", dir, ": ", kManifestName,
         " is missing, so the store is incomplete (a conversion that did not "
         "finish leaves no manifest); run `starft shard` again");
  }
  json j;
  try {
    in >> j;
  } catch (const json::exception& e) {
    refuse_lfs_pointer_file(path.string(), path.string(), "the store's manifest");
    fail(path.string(), ": not valid JSON: ", e.what());
  }
  return from_json(j, path.string());
}

void Manifest::write(const std::string& dir) const {
  write_file_atomically((fs::path(dir) / kManifestName).string(), to_json().dump(2) + "\n");
}

std::string shard_file_name(int64_t index) {
  char name[32];
  std::snprintf(name, sizeof name, "shard-%05lld.h5", static_cast<long long>(index));
  return name;
}

}  // namespace starft::data
