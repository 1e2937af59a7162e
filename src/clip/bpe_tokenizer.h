#pragma once
// CLIP's byte-level BPE tokenizer without LibTorch: the vocabulary files and the path from text
// (any bytes) to ids and back. Same ids as the reference implementation (open_clip / OpenAI
// `SimpleTokenizer`, and Hugging Face `CLIPTokenizer`). Tokenizer (tokenizer.h) adds the batch
// as a LibTorch tensor.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "clip/text_clean.h"  // clean_text, the step before pretokenize

namespace starft::clip {

// The context length of every CLIP text tower.
constexpr int kContextLength = 77;

class BpeTokenizer {
 public:
  // Loads a merges file in the format of `bpe_simple_vocab_16e6.txt.gz` (gzip read directly;
  // plain text accepted too), or a directory / `vocab.json` path of a Hugging Face tokenizer
  // (`vocab.json` + `merges.txt` side by side). Throws starft::Error naming the file when one is
  // missing, damaged or a Git LFS pointer (with `git lfs pull`).
  static BpeTokenizer load(const std::string& path);
  static BpeTokenizer from_bpe_merges(const std::string& merges_path);
  static BpeTokenizer from_hf(const std::string& vocab_json_path, const std::string& merges_txt_path);

  // BPE ids of the cleaned, lower-cased text, without start and end tokens.
  std::vector<int64_t> encode(const std::string& text) const;
  // Start token + encode(text) + end token; cut to `context` ids with the end token kept last.
  std::vector<int64_t> tokenize(const std::string& text, int context = kContextLength) const;
  // tokenize() of each text, zero padded (the reference padding) to `context` ids, written as
  // the rows of a [texts.size(), context] row-major array at `rows`. Refuses context < 2 (as
  // check_context) before writing.
  void tokenize_rows(const std::vector<std::string>& texts, int context, int64_t* rows) const;
  // The reference decoding: token strings joined, byte symbols back to UTF-8 (invalid sequences
  // become U+FFFD), every `</w>` replaced by a space. Throws for an id outside the vocabulary.
  std::string decode(const std::vector<int64_t>& ids) const;

  // The token string of an id (byte-level symbols; a trailing `</w>` marks a word end).
  const std::string& token(int64_t id) const;

  // Writes the vocabulary as a Hugging Face pair `vocab.json` + `merges.txt` into `directory`
  // (created if needed; each file written under a temporary name, then renamed).
  void save_hf(const std::string& directory) const;

  int64_t sot() const;
  int64_t eot() const;
  int64_t vocab_size() const;

  BpeTokenizer(BpeTokenizer&&) noexcept;
  BpeTokenizer& operator=(BpeTokenizer&&) noexcept;
  ~BpeTokenizer();

 private:
  struct Impl;
  explicit BpeTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Refuses (starft::Error) a context length below 2: it must hold the start and end tokens.
void check_context(int context);

// CLIP's pre-tokenisation of already cleaned text: start/end token literals, contractions
// ('s 't 're 've 'm 'll 'd), runs of letters, single digits, runs of other symbols.
std::vector<std::string> pretokenize(const std::string& cleaned);

}  // namespace starft::clip
