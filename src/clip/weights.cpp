#include "clip/weights.h"

#include <regex>
#include <set>
#include <sstream>

#include "common/error.h"

namespace starft::clip {

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Per-layer renames from the HF layout (`...encoder.layers.N.<from>`) to OpenAI (`...resblocks.N.<to>`).
const std::vector<std::pair<std::string, std::string>>& hf_layer_renames() {
  static const std::vector<std::pair<std::string, std::string>> renames = {
      {"self_attn.out_proj.weight", "attn.out_proj.weight"},
      {"self_attn.out_proj.bias", "attn.out_proj.bias"},
      {"layer_norm1.weight", "ln_1.weight"},
      {"layer_norm1.bias", "ln_1.bias"},
      {"layer_norm2.weight", "ln_2.weight"},
      {"layer_norm2.bias", "ln_2.bias"},
      {"mlp.fc1.weight", "mlp.c_fc.weight"},
      {"mlp.fc1.bias", "mlp.c_fc.bias"},
      {"mlp.fc2.weight", "mlp.c_proj.weight"},
      {"mlp.fc2.bias", "mlp.c_proj.bias"},
  };
  return renames;
}

const std::map<std::string, std::string>& hf_plain_renames() {
  static const std::map<std::string, std::string> renames = {
      {"vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight"},
      {"vision_model.embeddings.class_embedding", "visual.class_embedding"},
      {"vision_model.embeddings.position_embedding.weight", "visual.positional_embedding"},
      {"vision_model.pre_layrnorm.weight", "visual.ln_pre.weight"},
      {"vision_model.pre_layrnorm.bias", "visual.ln_pre.bias"},
      {"vision_model.post_layernorm.weight", "visual.ln_post.weight"},
      {"vision_model.post_layernorm.bias", "visual.ln_post.bias"},
      {"text_model.embeddings.token_embedding.weight", "token_embedding.weight"},
      {"text_model.embeddings.position_embedding.weight", "positional_embedding"},
      {"text_model.final_layer_norm.weight", "ln_final.weight"},
      {"text_model.final_layer_norm.bias", "ln_final.bias"},
      {"logit_scale", "logit_scale"},
  };
  return renames;
}

std::string join(const std::vector<std::string>& items, size_t limit = 20) {
  std::ostringstream os;
  for (size_t i = 0; i < items.size() && i < limit; ++i) os << (i ? ", " : "") << items[i];
  if (items.size() > limit) os << ", ... (" << items.size() - limit << " more)";
  return os.str();
}

}  // namespace

Naming detect_naming(const safetensors::TensorMap& tensors) {
  for (const auto& kv : tensors) {
    if (starts_with(kv.first, "vision_model.") || starts_with(kv.first, "text_model.")) return Naming::HuggingFace;
  }
  return Naming::OpenAI;
}

safetensors::TensorMap to_openai_naming(const safetensors::TensorMap& input, const std::string& source) {
  // Strip a DDP `module.` prefix if every key has it.
  safetensors::TensorMap tensors;
  bool all_module = !input.empty();
  for (const auto& kv : input) all_module = all_module && starts_with(kv.first, "module.");
  for (const auto& kv : input) tensors[all_module ? kv.first.substr(7) : kv.first] = kv.second;
  if (detect_naming(tensors) == Naming::OpenAI) return tensors;

  safetensors::TensorMap out;
  std::vector<std::string> unknown;
  // q/k/v parts per layer prefix, fused at the end: prefix -> {"q.weight": t, ...}
  std::map<std::string, std::map<std::string, torch::Tensor>> qkv;
  static const std::regex layer_re(R"(^(vision|text)_model\.encoder\.layers\.(\d+)\.(.+)$)");
  for (const auto& [name, t] : tensors) {
    if (ends_with(name, "position_ids")) continue;  // a buffer, nothing to load
    auto plain = hf_plain_renames().find(name);
    if (plain != hf_plain_renames().end()) {
      out[plain->second] = t;
      continue;
    }
    if (name == "visual_projection.weight") {
      out["visual.proj"] = t.t().contiguous();
      continue;
    }
    if (name == "text_projection.weight") {
      out["text_projection"] = t.t().contiguous();
      continue;
    }
    std::smatch m;
    if (std::regex_match(name, m, layer_re)) {
      const std::string prefix = (m[1] == "vision" ? "visual.transformer.resblocks." : "transformer.resblocks.") +
                                 m[2].str() + ".";
      const std::string rest = m[3];
      bool done = false;
      for (const auto& [from, to] : hf_layer_renames()) {
        if (rest == from) {
          out[prefix + to] = t;
          done = true;
          break;
        }
      }
      if (done) continue;
      static const std::regex qkv_re(R"(^self_attn\.([qkv])_proj\.(weight|bias)$)");
      std::smatch q;
      if (std::regex_match(rest, q, qkv_re)) {
        qkv[prefix][q[1].str() + "." + q[2].str()] = t;
        continue;
      }
    }
    unknown.push_back(name);
  }
  check(unknown.empty(), source, ": Hugging Face CLIP weights with unexpected tensors: ", join(unknown),
        ". Is this a CLIPModel checkpoint?");
  std::vector<std::string> incomplete;
  for (const auto& [prefix, parts] : qkv) {
    for (const char* kind : {"weight", "bias"}) {
      std::vector<torch::Tensor> pieces;
      for (const char* p : {"q", "k", "v"}) {
        auto it = parts.find(std::string(p) + "." + kind);
        if (it == parts.end()) {
          incomplete.push_back(prefix + p + "_proj." + kind);
        } else {
          pieces.push_back(it->second);
        }
      }
      if (pieces.size() == 3) out[prefix + "attn.in_proj_" + kind] = torch::cat(pieces, 0);
    }
  }
  check(incomplete.empty(), source, ": Hugging Face CLIP weights lack the attention projections ",
        join(incomplete), " (q, k and v are needed for every layer)");
  return out;
}

CLIPConfig infer_config(const safetensors::TensorMap& w, const std::string& source, const ConfigOverrides& overrides) {
  std::vector<std::string> missing;
  auto need = [&](const std::string& key) -> torch::Tensor {
    auto it = w.find(key);
    if (it == w.end()) {
      missing.push_back(key);
      return torch::Tensor();
    }
    return it->second;
  };
  auto conv = need("visual.conv1.weight");
  auto vpos = need("visual.positional_embedding");
  auto tproj = need("text_projection");
  auto tpos = need("positional_embedding");
  auto tok = need("token_embedding.weight");
  auto lnf = need("ln_final.weight");
  check(missing.empty(), source, ": cannot infer the CLIP architecture, missing tensors: ", join(missing),
        ". Only ViT CLIP models in the OpenAI/open_clip or Hugging Face naming are supported.");
  check(conv.dim() == 4 && vpos.dim() == 2 && tproj.dim() == 2 && tpos.dim() == 2 && tok.dim() == 2,
        source, ": unexpected tensor ranks for a CLIP ViT (visual.conv1.weight ", conv.sizes(),
        ", visual.positional_embedding ", vpos.sizes(), ", text_projection ", tproj.sizes(), ")");
  auto count_layers = [&](const std::string& prefix) {
    int64_t n = 0;
    while (w.count(prefix + std::to_string(n) + ".attn.in_proj_weight")) ++n;
    return n;
  };
  CLIPConfig c;
  c.vision_width = conv.size(0);
  c.patch_size = conv.size(-1);
  const int64_t grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(vpos.size(0) - 1))));
  check(grid * grid + 1 == vpos.size(0), source, ": visual.positional_embedding has ", vpos.size(0),
        " rows, which is not 1 + a square number of patches");
  c.image_size = grid * c.patch_size;
  c.vision_layers = count_layers("visual.transformer.resblocks.");
  c.embed_dim = tproj.size(1);
  c.context_length = tpos.size(0);
  c.vocab_size = tok.size(0);
  c.text_width = lnf.size(0);
  c.text_layers = count_layers("transformer.resblocks.");
  check(c.vision_width % 64 == 0 || overrides.vision_heads, source, ": vision width ", c.vision_width,
        " is not a multiple of 64; give the number of heads explicitly");
  check(c.text_width % 64 == 0 || overrides.text_heads, source, ": text width ", c.text_width,
        " is not a multiple of 64; give the number of heads explicitly");
  c.vision_heads = overrides.vision_heads.value_or(c.vision_width / 64);
  c.text_heads = overrides.text_heads.value_or(c.text_width / 64);
  c.quick_gelu = overrides.quick_gelu.value_or(true);
  c.validate();
  return c;
}

void load_state_dict(CLIP& model, const safetensors::TensorMap& w, const std::string& source) {
  std::vector<std::string> missing, unexpected, misshaped;
  auto params = model->named_parameters();
  std::set<std::string> known;
  for (const auto& p : params) {
    known.insert(p.key());
    auto it = w.find(p.key());
    if (it == w.end()) {
      missing.push_back(p.key());
    } else if (it->second.sizes() != p.value().sizes()) {
      std::ostringstream os;
      os << p.key() << " (file " << it->second.sizes() << ", model " << p.value().sizes() << ")";
      misshaped.push_back(os.str());
    }
  }
  for (const auto& kv : w) {
    if (!known.count(kv.first)) unexpected.push_back(kv.first);
  }
  if (!missing.empty() || !unexpected.empty() || !misshaped.empty()) {
    std::ostringstream os;
    os << source << ": weights do not match the model.";
    if (!missing.empty()) os << " Missing: " << join(missing) << ".";
    if (!unexpected.empty()) os << " Unexpected: " << join(unexpected) << ".";
    if (!misshaped.empty()) os << " Wrong shape: " << join(misshaped) << ".";
    throw Error(os.str());
  }
  torch::NoGradGuard no_grad;
  for (auto& p : params) {
    const auto& src = w.at(p.key());
    check(src.is_floating_point(), source, ": tensor '", p.key(), "' has non-float dtype ", src.scalar_type());
    p.value().copy_(src.to(torch::kFloat));
  }
}

CLIP load_weights(const std::string& path, const LoadOptions& options) {
  auto contents = safetensors::load(path);
  auto w = to_openai_naming(contents.tensors, path);
  ConfigOverrides overrides = options.overrides;
  auto meta = contents.metadata.find("starft.config");
  if (meta != contents.metadata.end()) {
    try {
      auto stored = CLIPConfig::from_json(nlohmann::json::parse(meta->second));
      if (!overrides.vision_heads) overrides.vision_heads = stored.vision_heads;
      if (!overrides.text_heads) overrides.text_heads = stored.text_heads;
      if (!overrides.quick_gelu) overrides.quick_gelu = stored.quick_gelu;
    } catch (const nlohmann::json::exception& e) {
      fail(path, ": metadata 'starft.config' is not valid JSON (", e.what(), ")");
    }
  }
  CLIP model(infer_config(w, path, overrides));
  load_state_dict(model, w, path);
  model->to(options.device);
  model->set_precision(options.precision);
  return model;
}

safetensors::TensorMap state_dict(const CLIP& model) {
  safetensors::TensorMap out;
  for (const auto& p : model->named_parameters()) {
    out[p.key()] = p.value().detach().to(torch::kCPU, torch::kFloat).contiguous();
  }
  return out;
}

void save_weights(const CLIP& model, const std::string& path, safetensors::Metadata metadata) {
  metadata["format"] = "openai-clip";
  metadata["starft.config"] = model->config().to_json().dump();
  safetensors::save(path, state_dict(model), metadata);
}

}  // namespace starft::clip
