#pragma once
// A tiny two-tower (CLIP-shaped) model for the distributed tests that run ranks as threads, and
// the data-parallel training step they compare against a single process.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "distributed/all_gather.h"
#include "distributed/communicator.h"
#include "tensor_close.h"
#include "train/losses.h"

namespace starft::testing {

// Image tower: two linear layers; text tower: embedding, mean over tokens, linear. `rare` is
// added to the text features of captions that contain token 0 only (so a rank whose slice has
// no such caption does not use it); `unused` is never used.
struct TinyTowersImpl : torch::nn::Module {
  TinyTowersImpl() {
    image1 = register_module("image1", torch::nn::Linear(12, 10));
    image2 = register_module("image2", torch::nn::Linear(10, 6));
    token = register_module("token", torch::nn::Embedding(20, 10));
    text = register_module("text", torch::nn::Linear(10, 6));
    rare = register_parameter("rare", torch::full({6}, 0.1));
    unused = register_parameter("unused", torch::ones({4}));
    logit_scale = register_parameter("logit_scale", torch::tensor(2.0));
  }
  // Normalised image and text features.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& images, const torch::Tensor& tokens) {
    auto img = image2(torch::gelu(image1(images)));
    auto txt = text(token(tokens).mean(1));
    auto has_zero = (tokens == 0).any(1);
    if (has_zero.any().item<bool>()) txt = txt + has_zero.unsqueeze(1).to(txt.scalar_type()) * rare;
    return {torch::nn::functional::normalize(img, torch::nn::functional::NormalizeFuncOptions().dim(1)),
            torch::nn::functional::normalize(txt, torch::nn::functional::NormalizeFuncOptions().dim(1))};
  }
  torch::nn::Linear image1{nullptr}, image2{nullptr}, text{nullptr};
  torch::nn::Embedding token{nullptr};
  torch::Tensor rare, unused, logit_scale;
};
TORCH_MODULE(TinyTowers);

// A global batch of `batch` samples: images [batch, 12], tokens [batch, 5]; only sample 0's
// caption contains token 0.
inline std::pair<torch::Tensor, torch::Tensor> tiny_batch(int64_t batch, int64_t step) {
  auto gen = at::detail::createCPUGenerator(1234 + step);
  auto images = at::randn({batch, 12}, gen);
  auto tokens = at::randint(1, 20, {batch, 5}, gen, torch::TensorOptions().dtype(torch::kLong));
  tokens[0][2] = 0;
  return {images, tokens};
}

// The FLYP loss of this rank's slice [offset, offset + b) against all ranks' features.
inline torch::Tensor tiny_loss(TinyTowers& model, const torch::Tensor& images, const torch::Tensor& tokens,
                               distributed::Communicator* comm) {
  auto [img, txt] = model->forward(images, tokens);
  if (!comm) return train::flyp_loss(img, txt, img, txt, model->logit_scale.exp(), 0);
  auto img_all = distributed::all_gather_with_grad(img, *comm, "image_features");
  auto txt_all = distributed::all_gather_with_grad(txt, *comm, "text_features");
  return train::flyp_loss(img, txt, img_all, txt_all, model->logit_scale.exp(), comm->rank() * images.size(0));
}

}  // namespace starft::testing
