#pragma once
// `starft verify STORE`: a full check of a store, for copies (rsync, scp, object stores) whose
// bytes may have changed without any file looking different. Unlike Store, which stops at the
// first problem it meets at open, this reads everything and reports every problem it finds.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace starft::data {

struct StoreProblem {
  std::string file;    // "manifest.json", "shard-00003.h5", ...
  int64_t row = -1;    // sample row inside the shard, -1 when the problem is the whole file
  int64_t index = -1;  // global sample index, -1 when unknown
  std::string source;  // the sample's `source` (original path), "" when unknown or unreadable
  std::string what;    // what is wrong, and what to do
};

struct StoreReport {
  std::string dir;
  int64_t shards = 0;               // shards listed in the manifest
  int64_t samples = 0;              // samples listed in the manifest
  int64_t samples_checked = 0;      // samples whose pixels were read and checksummed
  bool per_image_checksums = true;  // every shard has image_crc32 (else damage is found per shard)
  // Shards without meta_crc32 (written before it existed): their captions, sources, groups and
  // attributes are covered by no checksum, their labels by the shard checksum only.
  int64_t shards_without_field_checksums = 0;
  std::vector<StoreProblem> problems;
  std::vector<std::string> notes;  // not damage: leftover temporaries, shards not in the manifest
  std::string coverage;            // "" or one line: what older shards' checksums leave unchecked
  bool sound() const { return problems.empty(); }
};

// Checks DIR/manifest.json (readable, valid, consistent) and every shard it lists: present,
// an HDF5 file, format version / count / checksum attributes equal to the manifest's, dataset
// shapes, labels in range, every image readable and equal to its per-image CRC-32 (image_crc32),
// every sample's label, group, attributes, caption and source equal to their CRC-32s (meta_crc32;
// a problem names each field that changed), and the shard's content checksum. Shards written
// before meta_crc32 existed are checked for what they have (report.coverage says what is left
// unchecked). Never throws for a damaged store (problems are in the report);
// `progress(shard, shards)` is called after each shard.
StoreReport verify_store(const std::string& dir, const std::function<void(int64_t, int64_t)>& progress = {});

// Where a problem is, for messages: "shard-00001.h5 row 2 (sample 6) 'dir/image_6.jpg'", or just
// the file when the problem is the whole file.
std::string problem_location(const StoreProblem& problem);

}  // namespace starft::data
