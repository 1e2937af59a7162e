#pragma once
// The OpenAI CLIP ViT architecture in LibTorch. Parameter names are those of the OpenAI /
// open_clip state dict (`visual.conv1.weight`, `transformer.resblocks.0.attn.in_proj_weight`,
// `logit_scale`, ...), so `named_parameters()` maps one to one onto published checkpoints.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "common/precision.h"

namespace starft::clip {

struct CLIPConfig {
  int64_t embed_dim = 512;
  // image tower
  int64_t image_size = 224;
  int64_t patch_size = 16;
  int64_t vision_width = 768;
  int64_t vision_layers = 12;
  int64_t vision_heads = 12;
  // text tower
  int64_t context_length = 77;
  int64_t vocab_size = 49408;
  int64_t text_width = 512;
  int64_t text_layers = 12;
  int64_t text_heads = 8;
  // QuickGELU (x * sigmoid(1.702 x)) as in OpenAI's weights; false = exact GELU.
  bool quick_gelu = true;
  // Hidden width of each block's MLP (Hugging Face `intermediate_size`, open_clip width x
  // mlp_ratio); 0 means 4 x width, CLIP's ratio.
  int64_t vision_mlp_width = 0;
  int64_t text_mlp_width = 0;
  double layer_norm_eps = 1e-5;  // every LayerNorm of both towers (LayerNorm's default in CLIP and open_clip)
  // Image preprocessing: (x / 255 - mean) / std per RGB channel (OpenAI's values unless the
  // model's configuration gives others).
  std::array<double, 3> image_mean{0.48145466, 0.4578275, 0.40821073};
  std::array<double, 3> image_std{0.26862954, 0.26130258, 0.27577711};
  double init_logit_scale = 2.6592600369327779;  // log(1 / 0.07) as in CLIP and open_clip, for random initialisation
  // Where each setting came from ("heads" -> "open_clip model config ViT-H-14: head_width 80"),
  // for the log and the metadata of saved weights (`starft.config_sources`). Not part of
  // to_json(): two configs with equal settings are equal wherever they came from.
  std::map<std::string, std::string> sources;
  // The keys of `sources`: every setting whose origin the log and the metadata report.
  static constexpr const char* source_keys[] = {"sizes",          "vision_heads",   "text_heads",  "activation",
                                                "layer_norm_eps", "image_mean_std", "text_pooling"};
  // Records one origin for every key of source_keys (a configuration that gives them all).
  void set_all_sources(const std::string& origin) {
    for (const char* key : source_keys) sources[key] = origin;
  }

  int64_t grid() const { return image_size / patch_size; }
  int64_t vision_mlp() const { return vision_mlp_width > 0 ? vision_mlp_width : 4 * vision_width; }
  int64_t text_mlp() const { return text_mlp_width > 0 ? text_mlp_width : 4 * text_width; }
  // Every setting (the MLP widths resolved), as stored in `starft.config`.
  nlohmann::json to_json() const;
  static CLIPConfig from_json(const nlohmann::json& j);  // missing keys keep their defaults
  // Checks that the numbers make a valid model; throws starft::Error naming the bad key.
  void validate() const;
};

// An architecture by name: the open_clip model names of clip/architecture.h's table (ViT-B-16,
// ViT-B-16-quickgelu, ViT-B-32, ViT-L-14, ViT-L-14-336, ViT-H-14, ViT-g-14, ViT-bigG-14, ...,
// with open_clip's published settings), OpenAI's spellings (ViT-B/16: QuickGELU) and "tiny"
// (32 px, patch 8, width 128, 2 layers, embed 64, QuickGELU, 64-wide heads: the tiny_clip
// fixture's architecture). Throws starft::Error listing the known names for an unknown one.
CLIPConfig config_by_name(const std::string& name);

// Pre-LayerNorm transformer block: x + attn(ln_1(x)); x + mlp(ln_2(x)). Fused q/k/v projection.
class ResidualAttentionBlockImpl : public torch::nn::Module {
 public:
  // mlp_width: the MLP's hidden width; eps: the LayerNorms' epsilon.
  ResidualAttentionBlockImpl(int64_t width, int64_t heads, bool quick_gelu, int64_t mlp_width, double eps);
  // x: [B, L, W]; mask: additive [L, L] or undefined.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask);

 private:
  torch::Tensor attention(const torch::Tensor& x, const torch::Tensor& mask);
  int64_t width_, heads_;
  bool quick_gelu_;
  std::shared_ptr<torch::nn::Module> attn_, mlp_;
  torch::Tensor in_proj_weight_, in_proj_bias_;
  torch::nn::Linear out_proj_{nullptr}, c_fc_{nullptr}, c_proj_{nullptr};
  torch::nn::LayerNorm ln_1_{nullptr}, ln_2_{nullptr};
};
TORCH_MODULE(ResidualAttentionBlock);

class TransformerImpl : public torch::nn::Module {
 public:
  TransformerImpl(int64_t width, int64_t layers, int64_t heads, bool quick_gelu, int64_t mlp_width, double eps);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& mask);

 private:
  torch::nn::ModuleList resblocks_;
};
TORCH_MODULE(Transformer);

class VisionTransformerImpl : public torch::nn::Module {
 public:
  explicit VisionTransformerImpl(const CLIPConfig& cfg);
  torch::Tensor forward(const torch::Tensor& images);  // [N,3,S,S] -> [N, embed_dim]

 private:
  torch::nn::Conv2d conv1_{nullptr};
  torch::Tensor class_embedding_, positional_embedding_, proj_;
  torch::nn::LayerNorm ln_pre_{nullptr}, ln_post_{nullptr};
  Transformer transformer_{nullptr};
};
TORCH_MODULE(VisionTransformer);

class CLIPImpl : public torch::nn::Module {
 public:
  explicit CLIPImpl(const CLIPConfig& cfg);

  // Image features before L2 normalisation: [N, embed_dim], float32 in every precision.
  torch::Tensor encode_image(const torch::Tensor& images);
  // Text features before L2 normalisation: [M, embed_dim], float32 in every precision. tokens: [M, L<=context] int64,
  // the end token has the largest id in each row. With `truncate` the tower runs only on the first (largest end-token
  // position + 1) positions, which gives identical features because attention is causal and pooling happens at the end
  // token.
  torch::Tensor encode_text(const torch::Tensor& tokens, bool truncate = true);
  // exp(logit_scale) * norm(image) @ norm(text)^T: [N, M].
  torch::Tensor logits_per_image(const torch::Tensor& image_features, const torch::Tensor& text_features);

  const CLIPConfig& config() const { return cfg_; }
  // The precision of encode_image / encode_text (common/precision.h); fp32 unless set. The
  // parameters stay float32 either way.
  Precision precision() const { return precision_; }
  void set_precision(Precision precision) { precision_ = precision; }
  torch::Device device() const { return logit_scale.device(); }

  VisionTransformer visual{nullptr};
  Transformer transformer{nullptr};
  torch::nn::Embedding token_embedding{nullptr};
  torch::nn::LayerNorm ln_final{nullptr};
  torch::Tensor positional_embedding, text_projection, logit_scale;

 private:
  CLIPConfig cfg_;
  Precision precision_ = Precision::fp32;
  torch::Tensor causal_mask_;  // [context, context], -inf above the diagonal (a buffer)
};
TORCH_MODULE(CLIP);

// Initialises a fresh model the way open_clip does (normal with the towers' stds), for training
// from scratch (the built-in benchmark's pre-training).
void init_parameters(CLIP& model, uint64_t seed);

// For its lifetime, autocasts this thread's operations on `device` to bfloat16 when `precision`
// is amp_bf16 (at::autocast, the C++ side of torch.autocast(device_type, dtype=torch.bfloat16));
// a no-op for fp32. Restores the previous autocast state; nests.
class AutocastGuard {
 public:
  AutocastGuard(Precision precision, const torch::Device& device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false, cuda_ = false;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kFloat;
};

}  // namespace starft::clip
