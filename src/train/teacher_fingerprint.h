#pragma once
// What a teacher cache was computed from (its fingerprint), and the two things a training run and
// `starft cache-teacher` must agree on to share one: the view of the images the teacher sees and
// the caption of a class. The cache file itself is train/teacher_cache.h.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "clip/model.h"
#include "data/augment.h"
#include "data/manifest.h"

namespace starft::train {

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

// The precision part comes from teacher->precision().
CacheFingerprint compute_fingerprint(const clip::CLIP& teacher, const std::string& caption_template,
                                     const std::vector<std::string>& pool, const data::Manifest& manifest,
                                     const data::AugmentOptions& eval_view);

// The eval view the teacher sees: the store's images resized/centre-cropped to the model's size.
data::AugmentOptions teacher_view(const clip::CLIP& teacher);

// The caption c of a class: apply_template(caption_template, class name).
std::string class_caption(const std::string& caption_template, const std::string& class_name);

}  // namespace starft::train
