#pragma once
// Writes one shard file of a store, and StoreWriter, which writes a whole store in one process.
// Converters decode images themselves and hand over RGB pixels plus the sample's fields.
#include <opencv2/core.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "data/hdf5.h"
#include "data/manifest.h"

namespace starft::data {

// The fields of one sample besides its pixels. Which optional fields a store has is set by its
// manifest (has_groups, has_captions, attribute_names); a sample must give exactly those.
struct SampleMeta {
  int64_t label = 0;
  int32_t group = -1;
  std::map<std::string, int32_t> attributes;  // e.g. {"place", 1}
  std::string caption;
  std::string source;  // original relative path or id
};

// The per-image checksum dataset of a shard: uint32 [N], zlib CRC-32 of each image's S*S*3
// bytes. Shards written before it existed lack it (their damage is found per shard only).
inline constexpr const char* kImageCrcDataset = "image_crc32";

// One shard: written to DIR/<file>.tmp and renamed to DIR/<file> by finish(). A writer destroyed
// before finish() removes its temporary file, so a killed or failed conversion leaves nothing
// that looks like a shard.
class ShardWriter {
 public:
  // `layout` supplies image_size, compression and the optional fields (its shards are ignored).
  ShardWriter(const std::string& dir, const std::string& file, const Manifest& layout);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // `rgb` must already be [image_size, image_size] 8-bit RGB (see fit_square).
  void add(const cv::Mat& rgb, const SampleMeta& meta);
  int64_t count() const { return count_; }
  // Writes labels and the other fields, closes and renames. A shard with no samples is removed
  // and returned with count 0 (callers leave it out of the manifest).
  ShardInfo finish();

 private:
  void grow_images(int64_t rows);

  std::string dir_, file_, tmp_path_;
  Manifest layout_;
  h5::Handle h5file_, images_;
  int64_t count_ = 0, capacity_ = 0;
  uint32_t crc_ = 0;
  std::vector<int64_t> labels_;
  std::vector<uint32_t> image_crcs_;
  std::vector<int32_t> groups_;
  std::vector<std::vector<int32_t>> attributes_;  // one column per layout_.attribute_names
  std::vector<std::string> captions_, sources_;
  bool finished_ = false;
};

// Checks that `dir` may receive a store: creates it if missing; if it holds anything, refuses
// unless `overwrite`, in which case the old store's files (manifest.json first, then shards and
// temporaries) are removed. Other files are left alone.
void prepare_store_dir(const std::string& dir, bool overwrite);

// Writes a whole store from one process: samples go to shards of layout.shard_size in the order
// given; finish() writes the manifest last. Images of any size are fitted with fit_square.
class StoreWriter {
 public:
  StoreWriter(const std::string& dir, Manifest layout, bool overwrite);
  void add(const cv::Mat& image, const SampleMeta& meta);
  // `pixels` is [height, width, channels] 8-bit, channels 1 (grey) or 3 (RGB), row-major.
  void add(const uint8_t* pixels, int height, int width, int channels, const SampleMeta& meta);
  // Records an image that could not be used (it is listed in the manifest).
  void skip(const std::string& source, const std::string& reason);
  Manifest finish();

 private:
  void close_shard();

  std::string dir_;
  Manifest manifest_;
  std::unique_ptr<ShardWriter> shard_;
  int64_t next_shard_ = 0;
  int64_t skipped_in_shard_ = 0;
};

}  // namespace starft::data
