#pragma once
// Building the teacher cache (train/teacher_cache.h for the file and its reader): every rank
// encodes its share of the store's images and of the (class, template) prompts with the frozen
// teacher, and rank 0 merges the parts into the file.
#include <cstdint>
#include <string>
#include <vector>

#include "clip/model.h"
#include "clip/tokenizer.h"
#include "data/store.h"
#include "distributed/communicator.h"

namespace starft::train {

struct CacheBuildOptions {
  std::string caption_template = "a photo of a {}.";
  bool float16 = false;
  int64_t batch_size = 64;  // images (and texts) per teacher forward, per rank
  int workers = 2;          // augmentation threads
  bool truncate = true;
};

// Collective over `comm`: rank r encodes samples r, r+W, ... and (class, template) pairs
// r, r+W, ...; each rank writes its part file beside `path`, rank 0 merges them into `path`
// (temporary name, then rename) and removes the parts. `teacher` should be in eval mode.
void build_teacher_cache(const std::string& path, clip::CLIP& teacher, const data::Store& store,
                         const clip::Tokenizer& tokenizer, const std::vector<std::string>& pool,
                         const CacheBuildOptions& options, distributed::Communicator& comm);

}  // namespace starft::train
