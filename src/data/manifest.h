#pragma once
// manifest.json: the description of a store (a directory of HDF5 shards). Written last and
// atomically, so a store whose manifest exists is complete. Format: src/data/README.md.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace starft::data {

inline constexpr int kStoreFormatVersion = 1;
inline constexpr const char* kManifestName = "manifest.json";

struct ShardInfo {
  std::string file;      // relative to the store directory, e.g. "shard-00000.h5"
  int64_t count = 0;     // samples in the shard
  std::string checksum;  // "crc32:xxxxxxxx" over the image bytes, labels, then meta_crc32 (README)
};

// An image that a converter could not read, with the reason.
struct SkippedImage {
  std::string source;
  std::string reason;
};

struct Manifest {
  int format_version = kStoreFormatVersion;
  std::string dataset;                                               // e.g. "imagenet", "waterbirds"
  std::string split;                                                 // e.g. "train", "val", "test"
  std::vector<std::string> class_names;                              // label i is class_names[i]
  std::vector<std::string> class_ids;                                // e.g. WordNet ids; empty when unknown
  int image_size = 256;                                              // images are [image_size, image_size, 3] RGB
  int64_t shard_size = 1024;                                         // samples per shard before skipped images
  int compression = 0;                                               // gzip level of the image chunks, 0 = none
  bool has_groups = false;                                           // `groups` int32 dataset
  bool has_captions = false;                                         // `captions` UTF-8 strings
  std::vector<std::string> group_names;                              // optional names of group values
  std::vector<std::string> attribute_names;                          // `attributes/<name>` int32
  std::map<std::string, std::vector<std::string>> attribute_values;  // optional value names
  std::vector<ShardInfo> shards;
  std::vector<SkippedImage> skipped;

  int64_t count() const;
  nlohmann::json to_json() const;
  // `where` names the file in error messages.
  static Manifest from_json(const nlohmann::json& j, const std::string& where);

  // Reads and checks DIR/manifest.json (format, version, consistency of its own fields).
  static Manifest read(const std::string& dir);
  // Writes DIR/manifest.json through a temporary file and a rename.
  void write(const std::string& dir) const;
};

// "shard-00042.h5"
std::string shard_file_name(int64_t index);

}  // namespace starft::data
