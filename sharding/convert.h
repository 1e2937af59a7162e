#pragma once
// The converter core: turns an ordered list of source items into a store, in parallel over
// ranks and threads. Every converter (folder, csv, waterbirds, fashion-mnist, and generators
// such as SpuriousFashion) only builds the item list and the store layout.
//
// Determinism: shard k holds the items [k * shard_size, (k + 1) * shard_size) of the list (less
// any that cannot be decoded) and shards go round-robin to ranks, so the store's content,
// manifest included, is the same for any number of ranks and threads.
#include <opencv2/core.hpp>

#include <functional>
#include <string>
#include <vector>

#include "data/manifest.h"
#include "data/shard_writer.h"
#include "sharding/shard_comm.h"

namespace starft::sharding {

struct SourceItem {
  // Produces the item's RGB image (any size; fitted to image_size by the core). Called on a
  // worker thread of whichever rank owns the item's shard, so it must be a pure function of
  // the item (no shared mutable state, no thread-local random generators) for the store to
  // be the same for any number of ranks and threads. Throws (starft::Error,
  // cv::Exception, ...) when the image is unusable; the message should name the file.
  std::function<cv::Mat()> decode;
  data::SampleMeta meta;  // label, group, attributes, caption, source
};

struct ConvertOptions {
  // The store's description: dataset, split, classes, image_size, shard_size, compression and
  // the optional fields. Its shards and skipped lists are filled in by convert().
  data::Manifest layout;
  std::string out;         // the store directory
  bool overwrite = false;  // replace an existing store in `out`
  bool strict = false;     // an unusable image stops the conversion instead of being skipped
  int workers = 0;         // decode threads per rank (--workers); 0: cores / ranks on this node
};

struct ConvertSummary {
  data::Manifest manifest;  // as written (on every rank)
  int64_t written = 0;
  int64_t skipped = 0;
};

// Converts `items` (the same list on every rank) into a store at options.out.
ConvertSummary convert(const std::vector<SourceItem>& items, const ConvertOptions& options, ShardComm& comm);

}  // namespace starft::sharding
