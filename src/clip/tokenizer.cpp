// The tokenizer's LibTorch side: its batches as tensors. Everything else is BpeTokenizer's
// (bpe_tokenizer.cpp).
#include "clip/tokenizer.h"

namespace starft::clip {

Tokenizer Tokenizer::load(const std::string& path) { return Tokenizer(BpeTokenizer::load(path)); }

Tokenizer Tokenizer::from_bpe_merges(const std::string& merges_path) {
  return Tokenizer(BpeTokenizer::from_bpe_merges(merges_path));
}

Tokenizer Tokenizer::from_hf(const std::string& vocab_json_path, const std::string& merges_txt_path) {
  return Tokenizer(BpeTokenizer::from_hf(vocab_json_path, merges_txt_path));
}

torch::Tensor Tokenizer::tokenize_batch(const std::vector<std::string>& texts, int context) const {
  check_context(context);
  torch::Tensor out = torch::empty({static_cast<int64_t>(texts.size()), context}, torch::kInt64);
  tokenize_rows(texts, context, out.data_ptr<int64_t>());
  return out;
}

}  // namespace starft::clip
