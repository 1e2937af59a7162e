#include "clip/weights.h"

#include <regex>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "clip/architecture.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "common/lfs_pointer.h"
#include "common/text.h"

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
      const std::string prefix =
          (m[1] == "vision" ? "visual.transformer.resblocks." : "transformer.resblocks.") + m[2].str() + ".";
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
  check(unknown.empty(), source, ": Hugging Face CLIP weights with unexpected tensors: ", join(unknown, 20),
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
  check(incomplete.empty(), source, ": Hugging Face CLIP weights lack the attention projections ", join(incomplete, 20),
        " (q, k and v are needed for every layer)");
  return out;
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
    if (!missing.empty()) os << " Missing: " << join(missing, 20) << ".";
    if (!unexpected.empty()) os << " Unexpected: " << join(unexpected, 20) << ".";
    if (!misshaped.empty()) os << " Wrong shape: " << join(misshaped, 20) << ".";
    throw Error(os.str());
  }
  torch::NoGradGuard no_grad;
  for (auto& p : params) {
    const auto& src = w.at(p.key());
    check(src.is_floating_point(), source, ": tensor '", p.key(), "' has non-float dtype ", src.scalar_type());
    p.value().copy_(src.to(torch::kFloat));
  }
}

namespace {

namespace fs = std::filesystem;

std::optional<nlohmann::json> read_json(const fs::path& path) {
  if (!fs::is_regular_file(path)) return std::nullopt;
  std::ifstream in(path);
  try {
    nlohmann::json j;
    in >> j;
    return j;
  } catch (const nlohmann::json::exception& e) {
    refuse_lfs_pointer_file(path.string(), path.string(), "the JSON config");
    fail(path.string(), ": not valid JSON (", e.what(), ")");
  }
}

bool is_pickle_name(const std::string& name) {
  for (const char* ext : {".bin", ".pt", ".pth", ".ckpt", ".pkl"})
    if (ends_with(name, ext)) return true;
  return false;
}

[[noreturn]] void refuse_pickle(const std::string& path) {
  fail(path, ": a PyTorch pickle, which starft does not read (unpickling runs code from the file). ",
       safetensors::conversion_hint(path));
}

// The weights files of a layout and the configuration found beside them.
struct Layout {
  std::vector<std::string> files;       // one file, or the shards of an index
  std::string source;                   // the file or index, for messages
  std::vector<ConfigCandidate> beside;  // config.json / open_clip_config.json
};

void add_hf_config(Layout& layout, const fs::path& dir) {
  const auto cfg = read_json(dir / "config.json");
  if (!cfg) return;
  const bool clip_like = cfg->is_object() && (cfg->contains("model_type") || cfg->contains("vision_config") ||
                                              cfg->contains("text_config"));
  if (!clip_like) {
    spdlog::info("{}: not a Hugging Face model config (no model_type / vision_config); not used",
                 (dir / "config.json").string());
    return;
  }
  const auto pre = read_json(dir / "preprocessor_config.json");
  const std::string origin = (dir / "config.json").string();
  layout.beside.push_back({origin, parse_hf_config(*cfg, origin, pre ? *pre : nlohmann::json())});
}

void add_open_clip_config(Layout& layout, const fs::path& dir) {
  const auto cfg = read_json(dir / "open_clip_config.json");
  if (!cfg) return;
  const std::string origin = (dir / "open_clip_config.json").string();
  check(cfg->is_object() && cfg->contains("model_cfg"), origin,
        ": no model_cfg (an open_clip_config.json holds "
        "{\"model_cfg\": ..., \"preprocess_cfg\": ...})");
  layout.beside.push_back(
      {origin, parse_open_clip_config(cfg->at("model_cfg"), origin, cfg->value("preprocess_cfg", nlohmann::json()))});
}

void add_index(Layout& layout, const fs::path& index) {
  const auto j = read_json(index);
  check(j && j->is_object() && j->contains("weight_map") && j->at("weight_map").is_object(), index.string(),
        ": not a sharded checkpoint index (no weight_map object)");
  std::vector<std::string> files;
  for (const auto& [tensor, file] : j->at("weight_map").items()) {
    check(file.is_string(), index.string(), ": weight_map[", tensor, "] is not a file name");
    const std::string f = (index.parent_path() / file.get<std::string>()).string();
    if (std::find(files.begin(), files.end(), f) == files.end()) files.push_back(f);
  }
  check(!files.empty(), index.string(), ": the weight_map is empty");
  layout.files = files;
  layout.source = index.string();
}

Layout locate(const std::string& path) {
  check(fs::exists(path), path,
        ": no such file or directory (give CLIP weights: a .safetensors file, a model folder "
        "or a model.safetensors.index.json)");
  Layout layout;
  const fs::path p(path);
  if (fs::is_directory(p)) {
    if (fs::is_regular_file(p / "open_clip_model.safetensors")) {
      layout.files = {(p / "open_clip_model.safetensors").string()};
      add_open_clip_config(layout, p);
    } else if (fs::is_regular_file(p / "model.safetensors")) {
      layout.files = {(p / "model.safetensors").string()};
      add_hf_config(layout, p);
    } else if (fs::is_regular_file(p / "model.safetensors.index.json")) {
      add_index(layout, p / "model.safetensors.index.json");
      add_hf_config(layout, p);
    } else if (fs::is_regular_file(p / "weights.safetensors")) {
      layout.files = {(p / "weights.safetensors").string()};  // a starft checkpoint
    } else {
      for (const char* name : {"open_clip_pytorch_model.bin", "pytorch_model.bin", "pytorch_model.bin.index.json"}) {
        if (fs::exists(p / name)) refuse_pickle((p / name).string());
      }
      fail(path,
           ": a folder without CLIP weights: expected open_clip_model.safetensors (open_clip), model.safetensors "
           "or model.safetensors.index.json (Hugging Face), or weights.safetensors (a starft checkpoint)");
    }
    if (layout.source.empty()) layout.source = layout.files.front();
    return layout;
  }
  if (is_pickle_name(path)) refuse_pickle(path);
  if (ends_with(path, ".index.json")) {
    add_index(layout, p);
    add_hf_config(layout, p.parent_path());
    return layout;
  }
  layout.files = {path};
  layout.source = path;
  if (p.filename() == "open_clip_model.safetensors")
    add_open_clip_config(layout, p.parent_path());
  else
    add_hf_config(layout, p.parent_path());
  return layout;
}

}  // namespace

Weights read_weights(const std::string& path, const std::string& model) {
  const Layout layout = locate(path);
  safetensors::TensorMap tensors;
  safetensors::Metadata metadata;
  for (const auto& file : layout.files) {
    auto contents = safetensors::load(file);
    for (auto& [name, t] : contents.tensors) {
      check(!tensors.count(name), layout.source, ": tensor '", name, "' is in more than one shard (", file, ")");
      tensors.emplace(name, std::move(t));
    }
    if (metadata.empty()) metadata = std::move(contents.metadata);
  }
  Weights w;
  w.source = layout.source;
  w.tensors = to_openai_naming(tensors, layout.source);
  std::vector<ConfigCandidate> candidates;
  auto meta = metadata.find("starft.config");
  if (meta != metadata.end()) {
    ConfigCandidate stored{"starft's metadata (starft.config) of " + layout.source, {}};
    try {
      stored.config = CLIPConfig::from_json(nlohmann::json::parse(meta->second));
      auto recorded = metadata.find("starft.config_sources");
      if (recorded != metadata.end()) {
        const auto sources = nlohmann::json::parse(recorded->second);
        for (const auto& [key, value] : sources.items())
          stored.config.sources[key] = "recorded in " + layout.source + ": " + value.get<std::string>();
      } else {
        stored.config.set_all_sources(stored.origin);
      }
    } catch (const nlohmann::json::exception& e) {
      fail(layout.source, ": metadata 'starft.config' is not valid (", e.what(), ")");
    }
    candidates.push_back(std::move(stored));
  }
  const CLIPConfig shapes = shape_config(w.tensors, layout.source);
  // A file whose metadata says `format: openai-clip` (OpenAI's converted checkpoints, the project's
  // fixtures, starft's exports before starft.config) declares OpenAI's conventions: QuickGELU and
  // 64-wide heads, at the sizes of its shapes. Weights without metadata get no such reading.
  auto format = metadata.find("format");
  if (candidates.empty() && format != metadata.end() && format->second == "openai-clip" &&
      shapes.vision_width % 64 == 0 && shapes.text_width % 64 == 0) {
    ConfigCandidate declared{
        "OpenAI's conventions (QuickGELU, 64-wide heads), declared by the metadata "
        "format=openai-clip of " +
            layout.source,
        shapes};
    declared.config.vision_heads = shapes.vision_width / 64;
    declared.config.text_heads = shapes.text_width / 64;
    declared.config.quick_gelu = true;
    declared.config.set_all_sources(declared.origin);
    spdlog::info("{}: {}", layout.source, declared.origin);
    candidates.push_back(std::move(declared));
  }
  for (const auto& c : layout.beside) candidates.push_back(c);
  if (!model.empty()) candidates.push_back({"--model " + model, model_config(model)});
  w.config = resolve_architecture(shapes, candidates, layout.source);
  return w;
}

CLIP load_weights(const std::string& path, const LoadOptions& options) {
  auto w = read_weights(path, options.model);
  spdlog::info("{}: {}", w.source, describe(w.config));
  CLIP model(w.config);
  load_state_dict(model, w.tensors, w.source);
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
  metadata["starft.config_sources"] = nlohmann::json(model->config().sources).dump();
  safetensors::save(path, state_dict(model), metadata);
}

safetensors::TensorMap to_hf_naming(const safetensors::TensorMap& openai) {
  safetensors::TensorMap out;
  std::map<std::string, std::string> plain;
  for (const auto& [hf, oa] : hf_plain_renames()) plain[oa] = hf;
  static const std::regex layer_re(R"(^(visual\.transformer|transformer)\.resblocks\.(\d+)\.(.+)$)");
  for (const auto& [name, t] : openai) {
    auto it = plain.find(name);
    if (it != plain.end()) {
      out[it->second] = t;
      continue;
    }
    if (name == "visual.proj") {
      out["visual_projection.weight"] = t.t().contiguous();
      continue;
    }
    if (name == "text_projection") {
      out["text_projection.weight"] = t.t().contiguous();
      continue;
    }
    std::smatch m;
    check(std::regex_match(name, m, layer_re), "to_hf_naming: tensor '", name, "' has no Hugging Face name");
    const std::string prefix = std::string(m[1] == "visual.transformer" ? "vision_model" : "text_model") +
                               ".encoder.layers." + m[2].str() + ".";
    const std::string rest = m[3];
    if (rest == "attn.in_proj_weight" || rest == "attn.in_proj_bias") {
      const std::string kind = rest == "attn.in_proj_weight" ? "weight" : "bias";
      auto parts = t.chunk(3, 0);
      const char* qkv[] = {"q", "k", "v"};
      for (int i = 0; i < 3; ++i) out[prefix + "self_attn." + qkv[i] + "_proj." + kind] = parts[i].contiguous();
      continue;
    }
    bool done = false;
    for (const auto& [from, to] : hf_layer_renames()) {
      if (rest == to) {
        out[prefix + from] = t;
        done = true;
        break;
      }
    }
    check(done, "to_hf_naming: tensor '", name, "' has no Hugging Face name");
  }
  return out;
}

nlohmann::json hf_config_json(const CLIPConfig& c) {
  const std::string act = c.quick_gelu ? "quick_gelu" : "gelu";
  return {{"architectures", {"CLIPModel"}},
          {"model_type", "clip"},
          {"projection_dim", c.embed_dim},
          {"logit_scale_init_value", c.init_logit_scale},
          {"initializer_factor", 1.0},
          {"torch_dtype", "float32"},
          {"text_config",
           {{"model_type", "clip_text_model"},
            {"hidden_size", c.text_width},
            {"intermediate_size", c.text_mlp()},
            {"num_attention_heads", c.text_heads},
            {"num_hidden_layers", c.text_layers},
            {"max_position_embeddings", c.context_length},
            {"vocab_size", c.vocab_size},
            {"hidden_act", act},
            {"layer_norm_eps", c.layer_norm_eps},
            {"projection_dim", c.embed_dim},
            // eos_token_id 2: transformers pools at the argmax token, as starft does
            {"bos_token_id", 0},
            {"eos_token_id", 2},
            {"pad_token_id", 1}}},
          {"vision_config",
           {{"model_type", "clip_vision_model"},
            {"hidden_size", c.vision_width},
            {"intermediate_size", c.vision_mlp()},
            {"num_attention_heads", c.vision_heads},
            {"num_hidden_layers", c.vision_layers},
            {"image_size", c.image_size},
            {"patch_size", c.patch_size},
            {"num_channels", 3},
            {"hidden_act", act},
            {"layer_norm_eps", c.layer_norm_eps},
            {"projection_dim", c.embed_dim}}}};
}

nlohmann::json hf_preprocessor_json(const CLIPConfig& c) {
  return {{"image_processor_type", "CLIPImageProcessor"},
          {"do_resize", true},
          {"size", {{"shortest_edge", c.image_size}}},
          {"resample", 3},  // bicubic
          {"do_center_crop", true},
          {"crop_size", {{"height", c.image_size}, {"width", c.image_size}}},
          {"do_rescale", true},
          {"rescale_factor", 1.0 / 255},
          {"do_normalize", true},
          {"image_mean", c.image_mean},
          {"image_std", c.image_std},
          {"do_convert_rgb", true}};
}

namespace {
// open_clip's MLP width is int(width * mlp_ratio): the smallest double ratio that gives `mlp`.
double mlp_ratio(int64_t width, int64_t mlp) {
  double r = static_cast<double>(mlp) / static_cast<double>(width);
  while (static_cast<int64_t>(static_cast<double>(width) * r) < mlp) r = std::nextafter(r, 1e300);
  return r;
}
}  // namespace

nlohmann::json open_clip_config_json(const CLIPConfig& c) {
  nlohmann::json vision = {{"image_size", c.image_size},
                           {"layers", c.vision_layers},
                           {"width", c.vision_width},
                           {"head_width", c.vision_width / c.vision_heads},
                           {"patch_size", c.patch_size}};
  nlohmann::json text = {{"context_length", c.context_length},
                         {"vocab_size", c.vocab_size},
                         {"width", c.text_width},
                         {"heads", c.text_heads},
                         {"layers", c.text_layers}};
  if (c.vision_mlp() != 4 * c.vision_width) vision["mlp_ratio"] = mlp_ratio(c.vision_width, c.vision_mlp());
  if (c.text_mlp() != 4 * c.text_width) text["mlp_ratio"] = mlp_ratio(c.text_width, c.text_mlp());
  if (c.layer_norm_eps != 1e-5) {
    vision["norm_kwargs"] = {{"eps", c.layer_norm_eps}};
    text["norm_kwargs"] = {{"eps", c.layer_norm_eps}};
  }
  nlohmann::json model = {{"embed_dim", c.embed_dim}};
  if (c.quick_gelu) model["quick_gelu"] = true;
  model["vision_cfg"] = vision;
  model["text_cfg"] = text;
  return {{"model_cfg", model},
          {"preprocess_cfg",
           {{"size", c.image_size},
            {"mean", c.image_mean},
            {"std", c.image_std},
            {"interpolation", "bicubic"},
            {"resize_mode", "shortest"}}}};
}

void save_hf_folder(const CLIP& model, const std::string& dir, safetensors::Metadata metadata) {
  std::filesystem::create_directories(dir);
  metadata["format"] = "pt";  // transformers refuses safetensors files without it
  metadata["starft.config"] = model->config().to_json().dump();
  metadata["starft.config_sources"] = nlohmann::json(model->config().sources).dump();
  safetensors::save((std::filesystem::path(dir) / "model.safetensors").string(), to_hf_naming(state_dict(model)),
                    metadata);
  write_file_atomically((std::filesystem::path(dir) / "config.json").string(),
                        hf_config_json(model->config()).dump(2) + "\n");
  write_file_atomically((std::filesystem::path(dir) / "preprocessor_config.json").string(),
                        hf_preprocessor_json(model->config()).dump(2) + "\n");
}

void save_open_clip_folder(const CLIP& model, const std::string& dir, safetensors::Metadata metadata) {
  std::filesystem::create_directories(dir);
  metadata["starft.config"] = model->config().to_json().dump();
  metadata["starft.config_sources"] = nlohmann::json(model->config().sources).dump();
  safetensors::save((std::filesystem::path(dir) / "open_clip_model.safetensors").string(), state_dict(model), metadata);
  write_file_atomically((std::filesystem::path(dir) / "open_clip_config.json").string(),
                        open_clip_config_json(model->config()).dump(2) + "\n");
}

}  // namespace starft::clip
