#include "clip/model.h"

#include <ATen/autocast_mode.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <limits>

#include "common/error.h"

namespace starft::clip {

namespace F = torch::nn::functional;

// ---- config ---------------------------------------------------------------------------------

nlohmann::json CLIPConfig::to_json() const {
  return {{"embed_dim", embed_dim},           {"image_size", image_size},       {"patch_size", patch_size},
          {"vision_width", vision_width},     {"vision_layers", vision_layers}, {"vision_heads", vision_heads},
          {"context_length", context_length}, {"vocab_size", vocab_size},       {"text_width", text_width},
          {"text_layers", text_layers},       {"text_heads", text_heads},       {"quick_gelu", quick_gelu},
          {"vision_mlp_width", vision_mlp()}, {"text_mlp_width", text_mlp()},   {"layer_norm_eps", layer_norm_eps},
          {"image_mean", image_mean},         {"image_std", image_std},         {"init_logit_scale", init_logit_scale}};
}

CLIPConfig CLIPConfig::from_json(const nlohmann::json& j) {
  CLIPConfig c;
  auto get = [&](const char* key, auto& field) {
    if (j.contains(key)) field = j.at(key).get<std::decay_t<decltype(field)>>();
  };
  get("embed_dim", c.embed_dim);
  get("image_size", c.image_size);
  get("patch_size", c.patch_size);
  get("vision_width", c.vision_width);
  get("vision_layers", c.vision_layers);
  get("vision_heads", c.vision_heads);
  get("context_length", c.context_length);
  get("vocab_size", c.vocab_size);
  get("text_width", c.text_width);
  get("text_layers", c.text_layers);
  get("text_heads", c.text_heads);
  get("quick_gelu", c.quick_gelu);
  get("vision_mlp_width", c.vision_mlp_width);
  get("text_mlp_width", c.text_mlp_width);
  get("layer_norm_eps", c.layer_norm_eps);
  get("image_mean", c.image_mean);
  get("image_std", c.image_std);
  get("init_logit_scale", c.init_logit_scale);
  return c;
}

void CLIPConfig::validate() const {
  auto positive = [](int64_t v, const char* key) { check(v > 0, "model config: ", key, " must be positive, got ", v); };
  positive(embed_dim, "embed_dim");
  positive(image_size, "image_size");
  positive(patch_size, "patch_size");
  positive(vision_width, "vision_width");
  positive(vision_layers, "vision_layers");
  positive(vision_heads, "vision_heads");
  positive(context_length, "context_length");
  positive(vocab_size, "vocab_size");
  positive(text_width, "text_width");
  positive(text_layers, "text_layers");
  positive(text_heads, "text_heads");
  check(image_size % patch_size == 0, "model config: image_size ", image_size, " is not a multiple of patch_size ",
        patch_size);
  check(vision_width % vision_heads == 0, "model config: vision_width ", vision_width,
        " is not divisible by vision_heads ", vision_heads);
  check(text_width % text_heads == 0, "model config: text_width ", text_width, " is not divisible by text_heads ",
        text_heads);
  check(vision_mlp_width >= 0 && text_mlp_width >= 0, "model config: the MLP widths must be positive (0: 4 x width)");
  check(layer_norm_eps > 0 && std::isfinite(layer_norm_eps), "model config: layer_norm_eps must be positive, got ",
        layer_norm_eps);
  for (int ch = 0; ch < 3; ++ch) {
    check(std::isfinite(image_mean[ch]) && std::isfinite(image_std[ch]) && image_std[ch] > 0,
          "model config: image_mean / image_std must be finite with std > 0");
  }
}

// ---- blocks ---------------------------------------------------------------------------------

namespace {
// A named container so parameters get the OpenAI names (`attn.in_proj_weight`, `mlp.c_fc`).
struct Container : torch::nn::Module {};

torch::nn::LayerNorm layer_norm(int64_t width, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps));
}
}  // namespace

ResidualAttentionBlockImpl::ResidualAttentionBlockImpl(int64_t width, int64_t heads, bool quick_gelu, int64_t mlp_width,
                                                       double eps)
    : width_(width), heads_(heads), quick_gelu_(quick_gelu) {
  attn_ = register_module("attn", std::make_shared<Container>());
  in_proj_weight_ = attn_->register_parameter("in_proj_weight", torch::empty({3 * width, width}));
  in_proj_bias_ = attn_->register_parameter("in_proj_bias", torch::zeros({3 * width}));
  out_proj_ = attn_->register_module("out_proj", torch::nn::Linear(width, width));
  ln_1_ = register_module("ln_1", layer_norm(width, eps));
  mlp_ = register_module("mlp", std::make_shared<Container>());
  c_fc_ = mlp_->register_module("c_fc", torch::nn::Linear(width, mlp_width));
  c_proj_ = mlp_->register_module("c_proj", torch::nn::Linear(mlp_width, width));
  ln_2_ = register_module("ln_2", layer_norm(width, eps));
  torch::nn::init::xavier_uniform_(in_proj_weight_);
}

torch::Tensor ResidualAttentionBlockImpl::attention(const torch::Tensor& x, const torch::Tensor& mask) {
  const int64_t B = x.size(0), L = x.size(1), Dh = width_ / heads_;
  // [B, L, 3W] -> 3 x [B, H, L, Dh]
  auto qkv = F::linear(x, in_proj_weight_, in_proj_bias_).view({B, L, 3, heads_, Dh}).permute({2, 0, 3, 1, 4});
  auto q = qkv[0] * (1.0 / std::sqrt(static_cast<double>(Dh)));
  auto k = qkv[1], v = qkv[2];
  auto scores = torch::matmul(q, k.transpose(-2, -1));  // [B, H, L, L]
  if (mask.defined()) scores = scores + mask;
  auto out = torch::matmul(torch::softmax(scores, -1), v);  // [B, H, L, Dh]
  return out_proj_(out.transpose(1, 2).reshape({B, L, width_}));
}

torch::Tensor ResidualAttentionBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  auto h = x + attention(ln_1_(x), mask);
  auto m = c_fc_(ln_2_(h));
  m = quick_gelu_ ? m * torch::sigmoid(1.702 * m) : torch::gelu(m);
  return h + c_proj_(m);
}

TransformerImpl::TransformerImpl(int64_t width, int64_t layers, int64_t heads, bool quick_gelu, int64_t mlp_width,
                                 double eps) {
  resblocks_ = register_module("resblocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < layers; ++i)
    resblocks_->push_back(ResidualAttentionBlock(width, heads, quick_gelu, mlp_width, eps));
}

torch::Tensor TransformerImpl::forward(torch::Tensor x, const torch::Tensor& mask) {
  for (const auto& block : *resblocks_) x = block->as<ResidualAttentionBlock>()->forward(x, mask);
  return x;
}

// ---- towers ---------------------------------------------------------------------------------

VisionTransformerImpl::VisionTransformerImpl(const CLIPConfig& cfg) {
  const int64_t W = cfg.vision_width;
  conv1_ = register_module(
      "conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, W, cfg.patch_size).stride(cfg.patch_size).bias(false)));
  const double scale = 1.0 / std::sqrt(static_cast<double>(W));
  class_embedding_ = register_parameter("class_embedding", scale * torch::randn({W}));
  positional_embedding_ =
      register_parameter("positional_embedding", scale * torch::randn({cfg.grid() * cfg.grid() + 1, W}));
  ln_pre_ = register_module("ln_pre", layer_norm(W, cfg.layer_norm_eps));
  transformer_ = register_module("transformer", Transformer(W, cfg.vision_layers, cfg.vision_heads, cfg.quick_gelu,
                                                            cfg.vision_mlp(), cfg.layer_norm_eps));
  ln_post_ = register_module("ln_post", layer_norm(W, cfg.layer_norm_eps));
  proj_ = register_parameter("proj", scale * torch::randn({W, cfg.embed_dim}));
}

torch::Tensor VisionTransformerImpl::forward(const torch::Tensor& images) {
  check(images.dim() == 4 && images.size(1) == 3, "image tower: expected images [N,3,H,W], got ", images.sizes());
  const int64_t expected = (positional_embedding_.size(0) - 1);
  // The residual stream stays float32 under amp_bf16 (the patch embedding's bfloat16 output is
  // widened); only the products inside each block run in bfloat16.
  auto x = conv1_(images).to(torch::kFloat);  // [N, W, g, g]
  x = x.flatten(2).transpose(1, 2);           // [N, g*g, W]
  check(x.size(1) == expected, "image tower: images of ", images.size(2), "x", images.size(3), " px give ", x.size(1),
        " patches but the model has ", expected, " positions; resize images to the model's image_size");
  auto cls = class_embedding_.to(x.dtype()).view({1, 1, -1}).expand({x.size(0), 1, x.size(2)});
  x = torch::cat({cls, x}, 1) + positional_embedding_.to(x.dtype());
  x = ln_pre_(x);
  x = transformer_(x, torch::Tensor());
  x = ln_post_(x.select(1, 0));
  return torch::matmul(x, proj_);
}

CLIPImpl::CLIPImpl(const CLIPConfig& cfg) : cfg_(cfg) {
  cfg.validate();
  visual = register_module("visual", VisionTransformer(cfg));
  transformer = register_module("transformer", Transformer(cfg.text_width, cfg.text_layers, cfg.text_heads,
                                                           cfg.quick_gelu, cfg.text_mlp(), cfg.layer_norm_eps));
  token_embedding = register_module("token_embedding", torch::nn::Embedding(cfg.vocab_size, cfg.text_width));
  positional_embedding =
      register_parameter("positional_embedding", torch::empty({cfg.context_length, cfg.text_width}).normal_(0, 0.01));
  ln_final = register_module("ln_final", layer_norm(cfg.text_width, cfg.layer_norm_eps));
  text_projection = register_parameter("text_projection", torch::randn({cfg.text_width, cfg.embed_dim}) /
                                                              std::sqrt(static_cast<double>(cfg.text_width)));
  logit_scale = register_parameter("logit_scale", torch::full({}, cfg.init_logit_scale));
  causal_mask_ = register_buffer(
      "causal_mask",
      torch::full({cfg.context_length, cfg.context_length}, -std::numeric_limits<float>::infinity()).triu(1));
}

torch::Tensor CLIPImpl::encode_image(const torch::Tensor& images) {
  AutocastGuard autocast(precision_, device());
  return visual(images.to(device())).to(torch::kFloat);
}

torch::Tensor CLIPImpl::encode_text(const torch::Tensor& tokens_in, bool truncate) {
  AutocastGuard autocast(precision_, device());
  check(tokens_in.dim() == 2, "text tower: expected tokens [M, L], got ", tokens_in.sizes());
  check(tokens_in.size(1) <= cfg_.context_length, "text tower: ", tokens_in.size(1),
        " token positions exceed the model's context length ", cfg_.context_length);
  auto tokens = tokens_in.to(device(), torch::kLong);
  auto eot = tokens.argmax(-1);  // the end token has the largest id
  int64_t L = tokens.size(1);
  if (truncate && tokens.size(0) > 0) {
    L = eot.max().item<int64_t>() + 1;
    tokens = tokens.narrow(1, 0, L);
  }
  auto x = token_embedding(tokens) + positional_embedding.narrow(0, 0, L);
  x = transformer(x, causal_mask_.narrow(0, 0, L).narrow(1, 0, L).to(x.dtype()));
  x = ln_final(x);
  auto pooled = x.index({torch::arange(x.size(0), eot.options()), eot});
  return torch::matmul(pooled, text_projection).to(torch::kFloat);
}

torch::Tensor CLIPImpl::logits_per_image(const torch::Tensor& image_features, const torch::Tensor& text_features) {
  auto i = F::normalize(image_features, F::NormalizeFuncOptions().dim(-1));
  auto t = F::normalize(text_features, F::NormalizeFuncOptions().dim(-1));
  return logit_scale.exp() * torch::matmul(i, t.t());
}

// ---- initialisation -------------------------------------------------------------------------

void init_parameters(CLIP& model, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const CLIPConfig& cfg = model->config();
  auto normal = [&](torch::Tensor t, double std) {
    t.copy_(torch::empty(t.sizes(), torch::kFloat).normal_(0.0, std, gen));
  };
  auto init_tower = [&](const std::string& prefix, int64_t width, int64_t layers) {
    const double attn_std = std::pow(width, -0.5);
    const double proj_std = attn_std * std::pow(2.0 * layers, -0.5);
    const double fc_std = std::pow(2.0 * width, -0.5);
    for (auto& p : model->named_parameters()) {
      const std::string& n = p.key();
      if (n.rfind(prefix, 0) != 0) continue;
      auto ends = [&](const std::string& s) {
        return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0;
      };
      if (ends("attn.in_proj_weight"))
        normal(p.value(), attn_std);
      else if (ends("attn.out_proj.weight"))
        normal(p.value(), proj_std);
      else if (ends("mlp.c_fc.weight"))
        normal(p.value(), fc_std);
      else if (ends("mlp.c_proj.weight"))
        normal(p.value(), proj_std);
      else if (ends("attn.in_proj_bias") || ends("attn.out_proj.bias") || ends("mlp.c_fc.bias") ||
               ends("mlp.c_proj.bias"))
        p.value().zero_();
    }
  };
  init_tower("transformer.", cfg.text_width, cfg.text_layers);
  init_tower("visual.transformer.", cfg.vision_width, cfg.vision_layers);
  const double vscale = std::pow(cfg.vision_width, -0.5);
  auto params = model->named_parameters();
  normal(params["visual.class_embedding"], vscale);
  normal(params["visual.positional_embedding"], vscale);
  normal(params["visual.proj"], vscale);
  normal(params["visual.conv1.weight"], std::pow(3.0 * cfg.patch_size * cfg.patch_size, -0.5));
  normal(params["token_embedding.weight"], 0.02);
  normal(params["positional_embedding"], 0.01);
  normal(params["text_projection"], std::pow(cfg.text_width, -0.5));
  params["logit_scale"].fill_(cfg.init_logit_scale);
  for (auto& p : model->named_parameters()) {
    const std::string& n = p.key();
    if (n.find("ln_") != std::string::npos) {
      if (n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0)
        p.value().fill_(1.0);
      else
        p.value().zero_();
    }
  }
}

// ---- autocast -------------------------------------------------------------------------------

AutocastGuard::AutocastGuard(Precision precision, const torch::Device& device) {
  if (precision != Precision::amp_bf16) return;
  cuda_ = device.is_cuda();
  if (cuda_) {
    prev_enabled_ = at::autocast::is_enabled();
    prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    prev_enabled_ = at::autocast::is_cpu_enabled();
    prev_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  // Leaving the outermost region drops the bfloat16 copies of the weights, which the optimizer
  // step is about to change (torch.autocast does the same).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  if (cuda_) {
    at::autocast::set_enabled(prev_enabled_);
    at::autocast::set_autocast_gpu_dtype(prev_dtype_);
  } else {
    at::autocast::set_cpu_enabled(prev_enabled_);
    at::autocast::set_autocast_cpu_dtype(prev_dtype_);
  }
}

}  // namespace starft::clip
