#include "eval/zeroshot_head.h"

#include <algorithm>

#include "common/error.h"
#include "data/templates.h"

namespace starft::eval {
namespace {

torch::Tensor normalize(const torch::Tensor& x) {
  return torch::nn::functional::normalize(x, torch::nn::functional::NormalizeFuncOptions().dim(-1));
}

// Embeddings of classes [begin, end): [end - begin, D].
torch::Tensor embed_classes(clip::CLIP& model, const clip::Tokenizer& tokenizer,
                            const std::vector<std::string>& class_names, const std::vector<std::string>& templates,
                            int64_t begin, int64_t end, int64_t batch_size) {
  const int64_t T = static_cast<int64_t>(templates.size());
  const int64_t D = model->config().embed_dim;
  const int context = static_cast<int>(model->config().context_length);
  std::vector<std::string> texts;
  texts.reserve((end - begin) * T);
  for (int64_t c = begin; c < end; ++c) {
    for (const auto& t : templates) texts.push_back(data::apply_template(t, class_names[c]));
  }
  std::vector<torch::Tensor> features;
  for (size_t i = 0; i < texts.size(); i += batch_size) {
    const auto last = std::min(texts.size(), i + static_cast<size_t>(batch_size));
    std::vector<std::string> chunk(texts.begin() + i, texts.begin() + last);
    auto tokens = tokenizer.tokenize_batch(chunk, context).to(model->device());
    features.push_back(normalize(model->encode_text(tokens, true).to(torch::kFloat)));
  }
  if (features.empty()) return torch::zeros({0, D}, torch::TensorOptions(model->device()));
  return normalize(torch::cat(features).view({end - begin, T, D}).mean(1));
}

}  // namespace

EvalModeGuard::EvalModeGuard(torch::nn::Module& module) : module_(module), was_training_(module.is_training()) {
  module_.eval();
}

EvalModeGuard::~EvalModeGuard() { module_.train(was_training_); }

torch::Tensor class_embeddings(clip::CLIP& model, const clip::Tokenizer& tokenizer,
                               const std::vector<std::string>& class_names, const std::vector<std::string>& templates,
                               const HeadOptions& options, distributed::Communicator* comm) {
  check(!class_names.empty(), "zero-shot head: no class names");
  check(!templates.empty(), "zero-shot head: no templates");
  check(options.text_batch_size > 0, "zero-shot head: the text batch size must be positive, got ",
        options.text_batch_size);
  check(tokenizer.vocab_size() <= model->config().vocab_size, "zero-shot head: the tokenizer has ",
        tokenizer.vocab_size(), " tokens but the model's text tower only ", model->config().vocab_size,
        "; pass the vocabulary the model was trained with (--vocab)");
  torch::NoGradGuard no_grad;
  EvalModeGuard eval_mode(*model);
  const int64_t C = static_cast<int64_t>(class_names.size());
  if (comm == nullptr || comm->size() == 1) {
    return embed_classes(model, tokenizer, class_names, templates, 0, C, options.text_batch_size);
  }
  const int64_t W = comm->size();
  const int64_t block = (C + W - 1) / W;
  const int64_t begin = std::min(C, comm->rank() * block), end = std::min(C, begin + block);
  auto mine = torch::zeros({block, model->config().embed_dim}, torch::TensorOptions(model->device()));
  if (end > begin) {
    mine.narrow(0, 0, end - begin)
        .copy_(embed_classes(model, tokenizer, class_names, templates, begin, end, options.text_batch_size));
  }
  return comm->all_gather(mine, "zeroshot_head").narrow(0, 0, C).contiguous();
}

torch::Tensor zeroshot_head(clip::CLIP& model, const clip::Tokenizer& tokenizer,
                            const std::vector<std::string>& class_names, const std::vector<std::string>& templates,
                            const HeadOptions& options, distributed::Communicator* comm) {
  auto w = class_embeddings(model, tokenizer, class_names, templates, options, comm);
  torch::NoGradGuard no_grad;
  return model->logit_scale.detach().exp().to(torch::kFloat) * w;
}

torch::Tensor head_logits(clip::CLIP& model, const torch::Tensor& images, const torch::Tensor& head) {
  torch::NoGradGuard no_grad;
  EvalModeGuard eval_mode(*model);
  auto features = normalize(model->encode_image(images.to(model->device())).to(torch::kFloat));
  return features.matmul(head.t());
}

}  // namespace starft::eval
