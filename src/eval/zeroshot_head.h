#pragma once
// The zero-shot classification head of method.md: for each class, every template of a set is
// filled with the class name ("a sketch of a {}." -> "a sketch of a tench."), embedded by the
// text tower, L2-normalised; the class embedding is the normalised mean. Stacked, they form
// W [C, D]; the head is exp(logit_scale) * W, and a sample's logits are norm(f_img(x)) @ head^T.
// It is rebuilt from the current text tower at every evaluation.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "clip/model.h"
#include "clip/tokenizer.h"
#include "distributed/communicator.h"

namespace starft::eval {

struct HeadOptions {
  int64_t text_batch_size = 256;  // texts per forward pass of the text tower
};

// Unit-norm class embeddings W [C, D] (float32, on the model's device), without the scale. No
// gradient; the model is put in eval mode for the call and restored afterwards.
// With `comm`, the classes are split into contiguous blocks over its ranks, each rank embeds its
// block and the blocks are all-gathered (collective; every rank returns the whole W). `comm`'s
// tensors must live on the model's device.
torch::Tensor class_embeddings(clip::CLIP& model, const clip::Tokenizer& tokenizer,
                               const std::vector<std::string>& class_names, const std::vector<std::string>& templates,
                               const HeadOptions& options = {}, distributed::Communicator* comm = nullptr);

// exp(logit_scale) * class_embeddings(...): [C, D].
torch::Tensor zeroshot_head(clip::CLIP& model, const clip::Tokenizer& tokenizer,
                            const std::vector<std::string>& class_names, const std::vector<std::string>& templates,
                            const HeadOptions& options = {}, distributed::Communicator* comm = nullptr);

// Logits [N, C] of images [N, 3, S, S] against a head [C, D]: norm(f_img(x)) @ head^T. No gradient.
torch::Tensor head_logits(clip::CLIP& model, const torch::Tensor& images, const torch::Tensor& head);

// Puts a module in eval mode for a scope and restores its previous mode.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(torch::nn::Module& module);
  ~EvalModeGuard();
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

}  // namespace starft::eval
