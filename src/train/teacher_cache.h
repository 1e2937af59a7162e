#pragma once
// The teacher cache: what the frozen zero-shot model says about the training data, computed once
// by `starft cache-teacher` so that a StarFT step needs no teacher forward pass.
//
// One HDF5 file (default <store>/teacher-cache.h5):
//   image_features   [N, D]     normalised image embedding of every store sample's eval view
//   prompt_features  [C, T, D]  normalised text embedding of apply_template(template t,
//                               caption of class c), for every class and pool template
//   templates        [T]        the pool, in draw order (strings)
//   teacher_scale    scalar f64 s0 = exp(logit_scale) of the teacher
//   attributes: format_version, fingerprint (JSON), dtype ("float16" | "float32")
// Features are float16 or float32; training reads them as float32.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "clip/model.h"
#include "clip/tokenizer.h"
#include "data/augment.h"
#include "data/hdf5.h"
#include "data/manifest.h"
#include "data/store.h"
#include "distributed/communicator.h"

namespace starft::train {

inline constexpr int kTeacherCacheVersion = 1;

// What a cache was computed from. Each part is a short text ("crc32:..." or a description);
// a cache is valid for a run when every part matches.
struct CacheFingerprint {
  std::string weights;             // crc32 over the teacher's float32 parameters in name order
  std::string prompts;             // crc32 over the caption template and the pool's templates
  std::string store;               // crc32 over the store manifest (class names, shards and checksums)
  std::string preprocessing;       // the eval view: transform, size, normalisation
  std::string precision = "fp32";  // of the teacher's forward passes (fp32 | amp_bf16); caches
                                   // written before it was recorded were fp32

  nlohmann::json to_json() const;
  static CacheFingerprint from_json(const nlohmann::json& j, const std::string& where);
  // "" when equal; otherwise one phrase per differing part ("the teacher weights differ ...").
  std::string difference(const CacheFingerprint& current) const;
};

// crc32 of bytes, as "crc32:xxxxxxxx" (zlib).
std::string crc32_text(const void* data, size_t size, uint32_t seed = 0);

// The precision part comes from teacher->precision().
CacheFingerprint compute_fingerprint(const clip::CLIP& teacher, const std::string& caption_template,
                                     const std::vector<std::string>& pool, const data::Manifest& manifest,
                                     const data::AugmentOptions& eval_view);

// The eval view the teacher sees: the store's images resized/centre-cropped to the model's size.
data::AugmentOptions teacher_view(const clip::CLIP& teacher);

// The caption c of a class: apply_template(caption_template, class name).
std::string class_caption(const std::string& caption_template, const std::string& class_name);

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

class TeacherCache {
 public:
  // Opens the file and reads the prompt features (image rows are read per step).
  explicit TeacherCache(const std::string& path);
  ~TeacherCache();
  TeacherCache(const TeacherCache&) = delete;
  TeacherCache& operator=(const TeacherCache&) = delete;

  // Throws when the cache was computed from something else than `current`, naming what changed
  // and how to rebuild it.
  void check_fingerprint(const CacheFingerprint& current) const;

  // float32 [b, D]: rows `indices` (int64 [b], any order, repeats allowed) of image_features.
  torch::Tensor image_features(const torch::Tensor& indices) const;
  // float32 [B, D]: prompt_features[labels[i], templates[i]].
  torch::Tensor prompt_features(const torch::Tensor& labels, const torch::Tensor& templates) const;

  double teacher_scale() const { return teacher_scale_; }
  const CacheFingerprint& fingerprint() const { return fingerprint_; }
  const std::vector<std::string>& templates() const { return templates_; }
  int64_t num_samples() const { return num_samples_; }
  int64_t num_classes() const { return prompt_features_.size(0); }
  int64_t dim() const { return prompt_features_.size(2); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  h5::Handle file_, images_;
  bool float16_ = false;
  int64_t num_samples_ = 0;
  torch::Tensor prompt_features_;  // float32 [C, T, D]
  std::vector<std::string> templates_;
  double teacher_scale_ = 0;
  CacheFingerprint fingerprint_;
};

}  // namespace starft::train
