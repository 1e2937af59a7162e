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

Manifest Manifest::from_json(const json& j, const std::string& where) {
  Manifest m;
  try {
    check(j.is_object(), where, ": not a JSON object");
    check(j.value("format", std::string()) == kFormatName, where, ": not a starft store manifest (\"format\" is not \"",
          kFormatName, "\")");
    m.format_version = j.at("format_version").get<int>();
    check(m.format_version == kStoreFormatVersion, where, ": store format version ", m.format_version,
          " is not supported by this starft (it reads version ", kStoreFormatVersion,
          "); convert the data again with this starft's `starft shard`");
    m.dataset = j.at("dataset").get<std::string>();
    m.split = j.at("split").get<std::string>();
    m.class_names = j.at("class_names").get<std::vector<std::string>>();
    if (j.contains("class_ids")) m.class_ids = j.at("class_ids").get<std::vector<std::string>>();
    auto shape = j.at("image_shape").get<std::vector<int>>();
    check(shape.size() == 3 && shape[0] == shape[1] && shape[0] > 0 && shape[2] == 3, where,
          ": image_shape must be [S, S, 3] with S > 0");
    m.image_size = shape[0];
    m.shard_size = j.at("shard_size").get<int64_t>();
    auto compression = j.at("compression").get<std::string>();
    if (compression == "none") {
      m.compression = 0;
    } else {
      check(compression.rfind("gzip-", 0) == 0, where, ": unknown compression '", compression, "'");
      m.compression = std::stoi(compression.substr(5));
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
      ShardInfo info{s.at("file").get<std::string>(), s.at("count").get<int64_t>(), s.at("checksum").get<std::string>()};
      check(info.count > 0, where, ": shard ", info.file, " has count ", info.count);
      check(!info.file.empty() && info.file.find('/') == std::string::npos, where, ": bad shard file name '",
            info.file, "'");
      check(files.insert(info.file).second, where, ": shard ", info.file, " is listed twice");
      m.shards.push_back(info);
    }
    if (j.contains("skipped"))
      for (const auto& s : j.at("skipped"))
        m.skipped.push_back({s.at("source").get<std::string>(), s.at("reason").get<std::string>()});
    check(j.at("count").get<int64_t>() == m.count(), where, ": count ", j.at("count").get<int64_t>(),
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
    fail("store ", dir, ": ", kManifestName, " is missing, so the store is incomplete (a conversion that did not "
         "finish leaves no manifest); run `starft shard` again");
  }
  json j;
  try {
    in >> j;
  } catch (const json::exception& e) {
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
