#include "train/text_encoder.h"

#include <algorithm>

namespace starft::train {

UniqueTexts unique_texts(const std::vector<std::string>& texts) {
  UniqueTexts out;
  std::unordered_map<std::string, int64_t> row;
  out.inverse = torch::empty({static_cast<int64_t>(texts.size())}, torch::kLong);
  auto* inv = out.inverse.data_ptr<int64_t>();
  for (size_t i = 0; i < texts.size(); ++i) {
    auto [it, added] = row.emplace(texts[i], static_cast<int64_t>(out.texts.size()));
    if (added) out.texts.push_back(texts[i]);
    inv[i] = it->second;
  }
  return out;
}

TextEncoder::TextEncoder(const clip::Tokenizer& tokenizer, bool dedup, bool truncate)
    : tokenizer_(tokenizer), dedup_(dedup), truncate_(truncate) {}

torch::Tensor TextEncoder::tokenize(const std::vector<std::string>& texts, int64_t context) {
  // A bound on the id cache: class captions and prompts repeat, pre-training captions may not.
  constexpr size_t kMaxCached = 1 << 20;
  if (ids_.size() > kMaxCached) ids_.clear();
  auto tokens = torch::zeros({static_cast<int64_t>(texts.size()), context}, torch::kLong);
  auto acc = tokens.accessor<int64_t, 2>();
  for (size_t i = 0; i < texts.size(); ++i) {
    auto it = ids_.find(texts[i]);
    if (it == ids_.end()) it = ids_.emplace(texts[i], tokenizer_.tokenize(texts[i], static_cast<int>(context))).first;
    const auto& ids = it->second;
    for (size_t j = 0; j < ids.size(); ++j) acc[i][j] = ids[j];
  }
  return tokens;
}

torch::Tensor TextEncoder::encode(clip::CLIP& model, const std::vector<std::string>& texts) {
  const int64_t context = model->config().context_length;
  if (!dedup_) return model->encode_text(tokenize(texts, context), truncate_);
  auto unique = unique_texts(texts);
  auto features = model->encode_text(tokenize(unique.texts, context), truncate_);
  if (static_cast<size_t>(features.size(0)) == texts.size()) return features;  // all distinct
  return features.index_select(0, unique.inverse.to(features.device()));
}

}  // namespace starft::train
