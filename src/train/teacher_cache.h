#pragma once
// The teacher cache: what the frozen zero-shot model says about the training data, computed once
// by `starft cache-teacher` (train/teacher_cache_build.h) so that a StarFT step needs no teacher
// forward pass. This file: its format and its reader.
//
// One HDF5 file (default <store>/teacher-cache.h5):
//   image_features   [N, D]     normalised image embedding of every store sample's eval view
//   prompt_features  [C, T, D]  normalised text embedding of apply_template(template t,
//                               caption of class c), for every class and pool template
//   templates        [T]        the pool, in draw order (strings)
//   teacher_scale    scalar f64 s0 = exp(logit_scale) of the teacher
//   attributes: format_version, fingerprint (JSON), dtype ("float16" | "float32")
// Features are float16 or float32; training reads them as float32.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/hdf5.h"
#include "train/teacher_fingerprint.h"

namespace starft::train {

inline constexpr int kTeacherCacheVersion = 1;

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
