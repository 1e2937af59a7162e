#pragma once
// The text side of a training step: captions and prompts to features, with the two exact
// savings: identical texts in a batch are encoded once and gathered back with index_select
// (whose backward sums the copies' gradients, so gradients are unchanged), and the text tower
// runs only up to the longest end token (causal truncation, clip::CLIPImpl::encode_text).
#include <torch/torch.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "clip/model.h"
#include "clip/tokenizer.h"

namespace starft::train {

struct UniqueTexts {
  std::vector<std::string> texts;  // distinct texts in order of first appearance
  torch::Tensor inverse;           // int64 [N]: row of each input in `texts`
};

UniqueTexts unique_texts(const std::vector<std::string>& texts);

class TextEncoder {
 public:
  // `tokenizer` must outlive the encoder.
  TextEncoder(const clip::Tokenizer& tokenizer, bool dedup, bool truncate);

  // Text features (before normalisation) [N, D] of `texts` from `model`'s text tower.
  torch::Tensor encode(clip::CLIP& model, const std::vector<std::string>& texts);
  // [N, context] int64 tokens, zero padded (ids cached per text).
  torch::Tensor tokenize(const std::vector<std::string>& texts, int64_t context);

  bool dedup() const { return dedup_; }
  bool truncate() const { return truncate_; }

 private:
  const clip::Tokenizer& tokenizer_;
  bool dedup_, truncate_;
  std::unordered_map<std::string, std::vector<int64_t>> ids_;
};

}  // namespace starft::train
