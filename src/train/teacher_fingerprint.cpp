#include "train/teacher_fingerprint.h"

#include <sstream>

#include "common/checksum.h"
#include "common/error.h"
#include "data/templates.h"

namespace starft::train {

namespace {

std::string describe_view(const data::AugmentOptions& v) {
  std::ostringstream os;
  os.precision(9);
  os << "eval size=" << v.output_size << " mean=" << v.mean[0] << "," << v.mean[1] << "," << v.mean[2]
     << " std=" << v.std[0] << "," << v.std[1] << "," << v.std[2];
  return os.str();
}

}  // namespace

nlohmann::json CacheFingerprint::to_json() const {
  return {{"weights", weights},
          {"prompts", prompts},
          {"store", store},
          {"preprocessing", preprocessing},
          {"precision", precision}};
}

CacheFingerprint CacheFingerprint::from_json(const nlohmann::json& j, const std::string& where) {
  CacheFingerprint f;
  try {
    f.weights = j.at("weights").get<std::string>();
    f.prompts = j.at("prompts").get<std::string>();
    f.store = j.at("store").get<std::string>();
    f.preprocessing = j.at("preprocessing").get<std::string>();
    f.precision = j.value("precision", std::string("fp32"));
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": the teacher cache fingerprint is not valid (", e.what(), "); rebuild the cache");
  }
  return f;
}

std::string CacheFingerprint::difference(const CacheFingerprint& now) const {
  std::vector<std::string> parts;
  if (weights != now.weights)
    parts.push_back("the teacher weights differ (cache " + weights + ", now " + now.weights + ")");
  if (prompts != now.prompts)
    parts.push_back("the caption template or spurious pool differs (cache " + prompts + ", now " + now.prompts + ")");
  if (store != now.store) parts.push_back("the store manifest differs (cache " + store + ", now " + now.store + ")");
  if (preprocessing != now.preprocessing)
    parts.push_back("the preprocessing differs (cache '" + preprocessing + "', now '" + now.preprocessing + "')");
  if (precision != now.precision)
    parts.push_back("the precision differs (cache " + precision + ", now " + now.precision +
                    "; build the cache with the run's --precision)");
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

CacheFingerprint compute_fingerprint(const clip::CLIP& teacher, const std::string& caption_template,
                                     const std::vector<std::string>& pool, const data::Manifest& manifest,
                                     const data::AugmentOptions& eval_view) {
  CacheFingerprint f;
  uint32_t crc = 0;
  for (const auto& p : teacher->named_parameters()) {
    crc = crc32_update(crc, p.key().data(), p.key().size());
    auto t = p.value().detach().to(torch::kCPU, torch::kFloat).contiguous();
    crc = crc32_update(crc, t.data_ptr(), t.numel() * sizeof(float));
  }
  f.weights = crc32_text(crc);
  std::string text = caption_template;
  for (const auto& t : pool) text += "\n" + t;
  f.prompts = crc32_text(crc32_of(text.data(), text.size()));
  const std::string m = manifest.to_json().dump();
  f.store = crc32_text(crc32_of(m.data(), m.size()));
  f.preprocessing = describe_view(eval_view);
  f.precision = precision_name(teacher->precision());
  return f;
}

data::AugmentOptions teacher_view(const clip::CLIP& teacher) {
  data::AugmentOptions v;
  v.transform = data::Transform::eval;
  v.output_size = static_cast<int>(teacher->config().image_size);
  for (int ch = 0; ch < 3; ++ch) {
    v.mean[ch] = static_cast<float>(teacher->config().image_mean[ch]);
    v.std[ch] = static_cast<float>(teacher->config().image_std[ch]);
  }
  return v;
}

std::string class_caption(const std::string& caption_template, const std::string& class_name) {
  return data::apply_template(caption_template, class_name);
}

}  // namespace starft::train
