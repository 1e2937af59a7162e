#pragma once
// Writes one shard file of a store, and StoreWriter, which writes a whole store in one process.
// Converters decode images themselves and hand over RGB pixels plus the sample's fields.
#include <opencv2/core.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

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

// The per-sample field checksum dataset of a shard: uint32 [N, F], row r column c the zlib CRC-32
// of field meta_crc_columns(layout)[c] of row r, serialised as src/data/README.md specifies. It
// covers what image_crc32 does not (label, group, attributes, caption, source), so `starft
// verify` names the sample and the field that changed; the shard checksum covers it in turn.
// Shards written before it existed lack it: their captions, sources, groups and attributes are
// covered by no checksum (their labels by the shard checksum only).
inline constexpr const char* kMetaCrcDataset = "meta_crc32";

// The columns of meta_crc32 for a store's layout, in order: "label", "group" when the store has
// groups, "attributes/<name>" for each attribute in manifest order, "caption" when it has
// captions, and "source". The dataset's `columns` attribute holds them joined by ",".
std::vector<std::string> meta_crc_columns(const Manifest& layout);

// Appends the CRC-32 of each of `meta`'s fields to `out`, in meta_crc_columns(layout) order:
// label as 8 bytes little-endian int64, group and attributes as 4 bytes little-endian int32,
// caption and source as their UTF-8 bytes up to the first NUL (what HDF5 stores), no length or
// terminator. Throws when `meta` lacks one of the layout's attributes.
void append_meta_crcs(const SampleMeta& meta, const Manifest& layout, std::vector<uint32_t>& out);

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
  std::vector<uint32_t> meta_crcs_;  // [count_, meta_crc_columns(layout_).size()], row-major
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
