#pragma once
// Reads a store: random access by global sample index (shards concatenated in manifest order).
// Opening validates manifest.json against every shard (present, readable, format version,
// count, shapes, checksum attribute, label range). Labels, groups and attributes are held in
// memory; pixels, captions and sources are read on demand. Every HDF5 call holds h5::lock(),
// so a Store may be shared between threads, but reads are serialised (use one reader thread,
// as Loader does).
#include <opencv2/core.hpp>

#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/hdf5.h"
#include "data/manifest.h"

namespace starft::data {

struct Sample {
  int64_t index = 0;
  cv::Mat image;  // [S, S] CV_8UC3 RGB, owns its pixels
  int64_t label = 0;
  int32_t group = -1;
  std::vector<int32_t> attributes;  // in manifest().attribute_names order
  std::string caption;              // "" when the store has no captions
  std::string source;
};

class Store {
 public:
  explicit Store(const std::string& dir);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& dir() const { return dir_; }
  const Manifest& manifest() const { return manifest_; }
  int64_t size() const { return static_cast<int64_t>(labels_.size()); }
  int image_size() const { return manifest_.image_size; }

  const std::vector<int64_t>& labels() const { return labels_; }
  // Empty when the store has no groups.
  const std::vector<int32_t>& groups() const { return groups_; }
  // The values of one attribute (e.g. "place") for every sample; throws if the store lacks it.
  const std::vector<int32_t>& attribute(const std::string& name) const;

  // Copies sample `index`'s pixels ([S, S, 3] RGB, S*S*3 bytes) to `out`.
  void read_image(int64_t index, uint8_t* out) const;
  std::string caption(int64_t index) const;
  std::string source(int64_t index) const;
  Sample get(int64_t index) const;

  // Reads every shard in full and checks every checksum, as `starft verify` (verify_store) does;
  // throws naming the first damaged shard and sample. Costs a full read of the store.
  void verify() const;

 private:
  struct Shard;
  struct Location {
    size_t shard;
    hsize_t row;
  };
  Location locate(int64_t index) const;
  Shard& open_shard(size_t shard) const;  // caller holds h5::lock()
  std::string shard_path(size_t shard) const;

  std::string dir_;
  Manifest manifest_;
  std::vector<int64_t> offsets_;  // first global index of each shard, plus the total
  std::vector<int64_t> labels_;
  std::vector<int32_t> groups_;
  std::vector<std::vector<int32_t>> attributes_;
  // Open shard files, least recently used at the back; at most kMaxOpenShards open at once.
  mutable std::list<size_t> lru_;
  mutable std::unordered_map<size_t, std::unique_ptr<Shard>> open_;
};

}  // namespace starft::data
