#pragma once
// CLIP's byte-level BPE tokenizer: same ids as the reference implementation
// (open_clip / OpenAI `SimpleTokenizer`, and Hugging Face `CLIPTokenizer`). The vocabulary and
// the text-to-ids path are BpeTokenizer's (bpe_tokenizer.h, no LibTorch); this adds the batch as
// a tensor.
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "clip/bpe_tokenizer.h"  // BpeTokenizer, kContextLength, pretokenize, clean_text

namespace starft::clip {

class Tokenizer : public BpeTokenizer {
 public:
  // BpeTokenizer's loaders (the same files, the same errors).
  static Tokenizer load(const std::string& path);
  static Tokenizer from_bpe_merges(const std::string& merges_path);
  static Tokenizer from_hf(const std::string& vocab_json_path, const std::string& merges_txt_path);

  // [N, context] int64, zero padded (the reference padding).
  torch::Tensor tokenize_batch(const std::vector<std::string>& texts, int context = kContextLength) const;

 private:
  explicit Tokenizer(BpeTokenizer&& vocabulary) : BpeTokenizer(std::move(vocabulary)) {}
};

}  // namespace starft::clip
