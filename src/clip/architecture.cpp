#include "clip/architecture.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <typeinfo>

#include "common/error.h"
#include "common/lfs_pointer.h"
#include "common/text.h"

namespace starft::clip {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// open_clip's published model configs (src/open_clip/model_configs/NAME.json), settings only.
// No `quick_gelu` key means the exact GELU; vision heads = width / head_width (default 64).
const std::vector<std::pair<std::string, const char*>>& open_clip_table() {
  static const std::vector<std::pair<std::string, const char*>> table = {
      {"ViT-B-32",
       R"({"embed_dim": 512, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
          "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}})"},
      {"ViT-B-32-quickgelu", R"({"embed_dim": 512, "quick_gelu": true,
          "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
          "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}})"},
      {"ViT-B-16",
       R"({"embed_dim": 512, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 16},
          "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}})"},
      {"ViT-B-16-quickgelu", R"({"embed_dim": 512, "quick_gelu": true,
          "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 16},
          "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}})"},
      {"ViT-L-14",
       R"({"embed_dim": 768, "vision_cfg": {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14},
          "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12}})"},
      {"ViT-L-14-quickgelu", R"({"embed_dim": 768, "quick_gelu": true,
          "vision_cfg": {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14},
          "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12}})"},
      {"ViT-L-14-336",
       R"({"embed_dim": 768, "vision_cfg": {"image_size": 336, "layers": 24, "width": 1024, "patch_size": 14},
          "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12}})"},
      {"ViT-L-14-336-quickgelu", R"({"embed_dim": 768, "quick_gelu": true,
          "vision_cfg": {"image_size": 336, "layers": 24, "width": 1024, "patch_size": 14},
          "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12}})"},
      {"ViT-H-14", R"({"embed_dim": 1024,
          "vision_cfg": {"image_size": 224, "layers": 32, "width": 1280, "head_width": 80, "patch_size": 14},
          "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 12}})"},
      {"ViT-H-14-quickgelu", R"({"embed_dim": 1024, "quick_gelu": true,
          "vision_cfg": {"image_size": 224, "layers": 32, "width": 1280, "head_width": 80, "patch_size": 14},
          "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 12}})"},
      {"ViT-g-14", R"({"embed_dim": 1024,
          "vision_cfg": {"image_size": 224, "layers": 40, "width": 1408, "head_width": 88, "mlp_ratio": 4.3637, "patch_size": 14},
          "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 12}})"},
      {"ViT-bigG-14", R"({"embed_dim": 1280,
          "vision_cfg": {"image_size": 224, "layers": 48, "width": 1664, "head_width": 104, "mlp_ratio": 4.9231, "patch_size": 14},
          "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1280, "heads": 20, "layers": 32}})"},
  };
  return table;
}

// OpenAI's released ViTs (QuickGELU, 64-wide heads) by OpenAI's name and open_clip's.
const std::vector<std::pair<std::string, std::string>>& openai_models() {
  static const std::vector<std::pair<std::string, std::string>> models = {
      {"ViT-B/32", "ViT-B-32-quickgelu"},
      {"ViT-B/16", "ViT-B-16-quickgelu"},
      {"ViT-L/14", "ViT-L-14-quickgelu"},
      {"ViT-L/14@336px", "ViT-L-14-336-quickgelu"},
  };
  return models;
}

// The sizes that the tensors fix, as JSON for comparison and messages.
json sizes_of(const CLIPConfig& c) {
  return {
      {"embed_dim", c.embed_dim},           {"image_size", c.image_size},       {"patch_size", c.patch_size},
      {"vision_width", c.vision_width},     {"vision_layers", c.vision_layers}, {"vision_mlp_width", c.vision_mlp()},
      {"context_length", c.context_length}, {"vocab_size", c.vocab_size},       {"text_width", c.text_width},
      {"text_layers", c.text_layers},       {"text_mlp_width", c.text_mlp()}};
}

// Every setting that changes outputs (not how a fresh model is initialised).
json settings_of(const CLIPConfig& c) {
  json j = c.to_json();
  j.erase("init_logit_scale");
  return j;
}

// "key a vs b" for every key where the two objects differ.
std::vector<std::string> differences(const json& a, const json& b) {
  std::vector<std::string> out;
  for (const auto& [key, value] : a.items()) {
    if (!b.contains(key) || b.at(key) != value)
      out.push_back(key + " " + value.dump() + " vs " + (b.contains(key) ? b.at(key).dump() : "(none)"));
  }
  return out;
}

// A value of `obj[key]` as T, `def` when absent or null; a wrong type names the key.
template <typename T>
T get_or(const json& obj, const std::string& key, T def, const std::string& where) {
  if (!obj.is_object() || !obj.contains(key) || obj.at(key).is_null()) return def;
  try {
    return obj.at(key).get<T>();
  } catch (const json::exception&) {
    fail(where, ": key '", key, "' holds ", obj.at(key).dump(), ", which is not a ",
         typeid(T) == typeid(bool) ? "boolean" : "number of the expected kind");
  }
}

bool present(const json& obj, const std::string& key) {
  return obj.is_object() && obj.contains(key) && !obj.at(key).is_null();
}

// A JSON value that means "off": null, false, 0, "", {} or [].
bool is_off(const json& v) {
  return v.is_null() || (v.is_boolean() && !v.get<bool>()) || (v.is_number() && v.get<double>() == 0) ||
         (v.is_string() && v.get<std::string>().empty()) || ((v.is_object() || v.is_array()) && v.empty());
}

// An RGB triple (image_mean / image_std).
std::array<double, 3> triple(const json& v, const std::string& where, const char* key) {
  check(v.is_array() && v.size() == 3, where, ": '", key, "' holds ", v.dump(), ", expected three numbers (R, G, B)");
  std::array<double, 3> out{};
  for (size_t i = 0; i < 3; ++i) {
    check(v[i].is_number(), where, ": '", key, "' holds ", v.dump(), ", expected three numbers (R, G, B)");
    out[i] = v[i].get<double>();
  }
  return out;
}

// A square size given as N or [N, N] (or {"height", "width"}).
int64_t square_size(const json& v, const std::string& where, const char* key) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[0] == v[1]) return v[0].get<int64_t>();
  if (v.is_object() && v.contains("height") && v.contains("width") && v["height"] == v["width"] &&
      v["height"].is_number_integer())
    return v["height"].get<int64_t>();
  if (v.is_object() && v.contains("shortest_edge") && v["shortest_edge"].is_number_integer())
    return v["shortest_edge"].get<int64_t>();
  fail(where, ": '", key, "' holds ", v.dump(),
       "; starft runs square images only (one number, or equal height and width)");
}

// Refuses every key of `obj` that is not listed in `known`: a setting starft does not know may
// change the outputs, so it is never skipped silently.
void refuse_unknown_keys(const json& obj, const std::vector<std::string>& known, const std::string& where) {
  for (const auto& [key, value] : obj.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end())
      fail(where, ": unknown key '", key, "' (", value.dump(),
           "); starft cannot tell whether it changes the "
           "model's outputs, so it does not load this configuration. Remove the key if it does not (known keys: ",
           join(known), ")");
  }
}

// Requires `obj[key]` to be absent or hold `expected` (or be off, when `expected` is null).
void require_value(const json& obj, const std::string& key, const json& expected, const std::string& where,
                   const std::string& why) {
  if (!obj.is_object() || !obj.contains(key)) return;
  const json& v = obj.at(key);
  const bool ok = expected.is_null() ? is_off(v) : (v == expected || v.is_null());
  if (!ok) fail(where, ": ", key, " = ", v.dump(), " is not supported: ", why);
}

double norm_eps(const json& tower, const std::string& where, double def) {
  if (!present(tower, "norm_kwargs")) return def;
  const json& nk = tower.at("norm_kwargs");
  check(nk.is_object(), where, ": norm_kwargs holds ", nk.dump(), ", expected an object");
  for (const auto& [key, value] : nk.items()) {
    check(key == "eps" && value.is_number(), where, ": norm_kwargs.", key, " = ", value.dump(),
          " is not supported (starft's LayerNorm takes eps only)");
  }
  return nk.contains("eps") ? nk.at("eps").get<double>() : def;
}

json read_json_file(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  check(in.good(), what, " ", path, ": cannot open the file");
  try {
    json j;
    in >> j;
    return j;
  } catch (const json::exception& e) {
    refuse_lfs_pointer_file(path, what + " " + path, "the JSON config");
    fail(what, " ", path, ": not valid JSON (", e.what(), ")");
  }
}

}  // namespace

std::vector<std::string> known_model_names() {
  std::vector<std::string> names;
  for (const auto& [name, text] : open_clip_table()) names.push_back(name);
  for (const auto& [openai, open_clip] : openai_models()) names.push_back(openai);
  names.push_back("tiny");
  return names;
}

CLIPConfig config_by_name(const std::string& name) {
  for (const auto& [openai, open_clip] : openai_models()) {
    if (name == openai) {
      auto c = config_by_name(open_clip);
      for (auto& [key, source] : c.sources) source = "OpenAI's " + openai + " (open_clip's " + open_clip + ")";
      return c;
    }
  }
  for (const auto& [known, text] : open_clip_table()) {
    if (name == known)
      return parse_open_clip_config(json::parse(text), "open_clip model " + name + " (built-in table)");
  }
  if (name == "tiny") {
    CLIPConfig c;
    c.embed_dim = 64;
    c.image_size = 32;
    c.patch_size = 8;
    c.vision_width = 128;
    c.vision_layers = 2;
    c.vision_heads = 2;
    c.text_width = 128;
    c.text_layers = 2;
    c.text_heads = 2;
    c.set_all_sources("starft's model tiny (QuickGELU, 64-wide heads)");
    return c;
  }
  fail("unknown model name '", name, "' (known: ", join(known_model_names()),
       "; or give a model-config JSON file: open_clip's, Hugging Face's config.json, or starft's)");
}

CLIPConfig parse_open_clip_config(const json& cfg, const std::string& source, const json& preprocess) {
  check(cfg.is_object(), source, ": an open_clip model config must be a JSON object, got ", cfg.type_name());
  refuse_unknown_keys(cfg,
                      {"embed_dim", "quick_gelu", "vision_cfg", "text_cfg", "cast_dtype", "output_dict",
                       "init_logit_scale", "init_logit_bias", "custom_text", "multimodal_cfg"},
                      source);
  check(present(cfg, "embed_dim"), source, ": no 'embed_dim' (every open_clip model config has one)");
  require_value(cfg, "init_logit_bias", nullptr, source, "a logit bias is SigLIP's sigmoid loss, not CLIP's");
  require_value(cfg, "multimodal_cfg", nullptr, source, "a multimodal decoder (CoCa) is not a CLIP model");
  require_value(cfg, "custom_text", nullptr, source,
                "custom text towers (`text.` tensor names) are not supported; only CLIP's own text transformer");
  const json vision = cfg.value("vision_cfg", json::object());
  const json text = cfg.value("text_cfg", json::object());
  const std::string vw = source + ": vision_cfg", tw = source + ": text_cfg";
  check(vision.is_object() && text.is_object(), source, ": vision_cfg and text_cfg must be JSON objects");
  refuse_unknown_keys(
      vision,
      {"image_size",        "patch_size",          "width",          "layers",           "head_width",
       "mlp_ratio",         "ls_init_value",       "patch_dropout",  "attentional_pool", "attn_pooler_queries",
       "attn_pooler_heads", "no_ln_pre",           "ln_pre",         "pos_embed_type",   "final_ln_after_pool",
       "pool_type",         "global_average_pool", "output_tokens",  "timm_model_name",  "timm_model_pretrained",
       "timm_pool",         "timm_proj",           "timm_proj_bias", "timm_drop",        "timm_drop_path",
       "act_kwargs",        "norm_kwargs",         "image_mean",     "image_std",        "interpolation",
       "resize_mode",       "input_patchnorm"},
      vw);
  refuse_unknown_keys(text,
                      {"context_length",
                       "vocab_size",
                       "width",
                       "heads",
                       "layers",
                       "mlp_ratio",
                       "ls_init_value",
                       "hf_model_name",
                       "hf_tokenizer_name",
                       "hf_model_pretrained",
                       "hf_proj_type",
                       "hf_pooler_type",
                       "proj",
                       "proj_type",
                       "proj_bias",
                       "pad_id",
                       "embed_cls",
                       "no_causal_mask",
                       "pool_type",
                       "final_ln_after_pool",
                       "output_tokens",
                       "norm_kwargs",
                       "act_kwargs",
                       "tokenizer_kwargs",
                       "attn_pooler_heads"},
                      tw);
  // What starft's towers do not implement changes the outputs: refused, with the reason.
  check(!vision.contains("layers") || vision["layers"].is_number_integer(), vw,
        ": layers = ", vision.value("layers", json()).dump(), " is a ResNet tower; starft runs ViT towers only");
  require_value(vision, "timm_model_name", nullptr, vw, "timm image towers are not supported; only CLIP's ViT");
  require_value(vision, "ls_init_value", nullptr, vw, "layer scale is not implemented");
  require_value(vision, "attentional_pool", nullptr, vw, "attentional pooling is not implemented");
  require_value(vision, "no_ln_pre", nullptr, vw, "starft's ViT has ln_pre");
  require_value(vision, "ln_pre", true, vw, "starft's ViT has ln_pre");
  require_value(vision, "input_patchnorm", nullptr, vw, "patch normalisation is not implemented");
  require_value(vision, "pos_embed_type", "learnable", vw, "only learned position embeddings are implemented");
  require_value(vision, "final_ln_after_pool", nullptr, vw, "starft pools the class token, then applies ln_post");
  require_value(vision, "pool_type", "tok", vw, "starft pools the class token (pool_type tok)");
  require_value(vision, "global_average_pool", nullptr, vw, "starft pools the class token");
  require_value(vision, "act_kwargs", nullptr, vw, "only the exact GELU or QuickGELU are implemented");
  require_value(vision, "interpolation", "bicubic", vw, "starft resizes images bicubically");
  require_value(vision, "resize_mode", "shortest", vw, "starft resizes the shorter side and centre-crops");
  require_value(text, "hf_model_name", nullptr, tw, "Hugging Face text towers are not supported; only CLIP's");
  require_value(text, "hf_tokenizer_name", nullptr, tw, "starft's tokenizer is CLIP's BPE");
  require_value(text, "tokenizer_kwargs", nullptr, tw, "starft's tokenizer is CLIP's BPE with its default cleaning");
  require_value(text, "ls_init_value", nullptr, tw, "layer scale is not implemented");
  require_value(text, "embed_cls", nullptr, tw, "a class token in the text tower is not implemented");
  require_value(text, "no_causal_mask", nullptr, tw, "starft's text tower is causal");
  require_value(text, "pool_type", "argmax", tw, "starft pools the text at the end token (pool_type argmax)");
  require_value(text, "final_ln_after_pool", nullptr, tw, "starft applies ln_final before pooling");
  require_value(text, "proj_bias", nullptr, tw, "the text projection has no bias in starft");
  require_value(text, "proj_type", "linear", tw, "starft's text projection is a linear map (text_projection)");
  require_value(text, "act_kwargs", nullptr, tw, "only the exact GELU or QuickGELU are implemented");
  if (present(vision, "patch_dropout") && !is_off(vision["patch_dropout"]))
    spdlog::info("{}: patch_dropout {} is a training-time regulariser that starft does not apply", vw,
                 vision["patch_dropout"].dump());

  CLIPConfig c;
  c.embed_dim = get_or<int64_t>(cfg, "embed_dim", 0, source);
  c.quick_gelu = get_or<bool>(cfg, "quick_gelu", false, source);
  c.init_logit_scale = get_or<double>(cfg, "init_logit_scale", c.init_logit_scale, source);
  c.image_size = present(vision, "image_size") ? square_size(vision["image_size"], vw, "image_size") : 224;
  c.patch_size = present(vision, "patch_size") ? square_size(vision["patch_size"], vw, "patch_size") : 16;
  c.vision_width = get_or<int64_t>(vision, "width", 768, vw);
  c.vision_layers = get_or<int64_t>(vision, "layers", 12, vw);
  const int64_t head_width = get_or<int64_t>(vision, "head_width", 64, vw);
  check(head_width > 0 && c.vision_width % head_width == 0, vw, ": width ", c.vision_width,
        " is not a multiple of head_width ", head_width);
  c.vision_heads = c.vision_width / head_width;
  c.vision_mlp_width = static_cast<int64_t>(c.vision_width * get_or<double>(vision, "mlp_ratio", 4.0, vw));
  c.context_length = get_or<int64_t>(text, "context_length", 77, tw);
  c.vocab_size = get_or<int64_t>(text, "vocab_size", 49408, tw);
  c.text_width = get_or<int64_t>(text, "width", 512, tw);
  c.text_heads = get_or<int64_t>(text, "heads", 8, tw);
  c.text_layers = get_or<int64_t>(text, "layers", 12, tw);
  c.text_mlp_width = static_cast<int64_t>(c.text_width * get_or<double>(text, "mlp_ratio", 4.0, tw));
  const double veps = norm_eps(vision, vw, 1e-5), teps = norm_eps(text, tw, 1e-5);
  check(veps == teps, source, ": the towers' LayerNorm eps differ (vision ", veps, ", text ", teps,
        "); starft uses one eps for both");
  c.layer_norm_eps = veps;

  c.sources["sizes"] = source;
  c.sources["vision_heads"] = source + (present(vision, "head_width") ? ": vision_cfg.head_width " : ": head_width ") +
                              std::to_string(head_width) +
                              (present(vision, "head_width") ? "" : " (open_clip's default)");
  c.sources["text_heads"] = source + (present(text, "heads") ? ": text_cfg.heads" : ": heads 8 (open_clip's default)");
  c.sources["activation"] =
      source + (present(cfg, "quick_gelu") ? ": quick_gelu " + cfg["quick_gelu"].dump()
                                           : ": no quick_gelu key, so the exact GELU (open_clip's default)");
  c.sources["layer_norm_eps"] =
      source + (present(vision, "norm_kwargs") ? ": norm_kwargs.eps" : ": LayerNorm's default eps");
  c.sources["text_pooling"] = source + ": the end token (pool_type argmax)";
  c.sources["image_mean_std"] = source + ": OpenAI's mean/std (open_clip's default)";
  if (present(vision, "image_mean") || present(vision, "image_std")) {
    if (present(vision, "image_mean")) c.image_mean = triple(vision["image_mean"], vw, "image_mean");
    if (present(vision, "image_std")) c.image_std = triple(vision["image_std"], vw, "image_std");
    c.sources["image_mean_std"] = source + ": vision_cfg.image_mean / image_std";
  }
  if (preprocess.is_object()) {
    const std::string pw = source + ": preprocess_cfg";
    if (present(preprocess, "mean")) c.image_mean = triple(preprocess["mean"], pw, "mean");
    if (present(preprocess, "std")) c.image_std = triple(preprocess["std"], pw, "std");
    if (present(preprocess, "mean") || present(preprocess, "std")) c.sources["image_mean_std"] = pw + ".mean / std";
    if (present(preprocess, "size"))
      check(square_size(preprocess["size"], pw, "size") == c.image_size, pw, ": size ", preprocess["size"].dump(),
            " differs from the model's image_size ", c.image_size, "; starft feeds images of image_size");
    require_value(preprocess, "interpolation", "bicubic", pw, "starft resizes images bicubically");
    require_value(preprocess, "resize_mode", "shortest", pw, "starft resizes the shorter side and centre-crops");
  }
  c.validate();
  return c;
}

CLIPConfig parse_hf_config(const json& cfg, const std::string& source, const json& preprocessor) {
  check(cfg.is_object(), source, ": a Hugging Face config must be a JSON object, got ", cfg.type_name());
  const std::string model_type = cfg.value("model_type", std::string("clip"));
  check(model_type == "clip", source, ": model_type '", model_type,
        "' is not CLIP; starft loads CLIPModel checkpoints (model_type clip) only");
  // transformers: text_config_dict / vision_config_dict (older files) override text_config / vision_config.
  auto tower = [&](const char* name) {
    json t = cfg.contains(name) && cfg.at(name).is_object() ? cfg.at(name) : json::object();
    const std::string dict = std::string(name) + "_dict";
    if (cfg.contains(dict) && cfg.at(dict).is_object()) t.update(cfg.at(dict));
    return t;
  };
  const json text = tower("text_config"), vision = tower("vision_config");
  const std::string tw = source + ": text_config", vw = source + ": vision_config";
  CLIPConfig c;
  c.embed_dim = get_or<int64_t>(cfg, "projection_dim", 512, source);
  c.init_logit_scale = get_or<double>(cfg, "logit_scale_init_value", c.init_logit_scale, source);
  c.text_width = get_or<int64_t>(text, "hidden_size", 512, tw);
  c.text_mlp_width = get_or<int64_t>(text, "intermediate_size", 2048, tw);
  c.text_layers = get_or<int64_t>(text, "num_hidden_layers", 12, tw);
  c.text_heads = get_or<int64_t>(text, "num_attention_heads", 8, tw);
  c.context_length = get_or<int64_t>(text, "max_position_embeddings", 77, tw);
  c.vocab_size = get_or<int64_t>(text, "vocab_size", 49408, tw);
  c.vision_width = get_or<int64_t>(vision, "hidden_size", 768, vw);
  c.vision_mlp_width = get_or<int64_t>(vision, "intermediate_size", 3072, vw);
  c.vision_layers = get_or<int64_t>(vision, "num_hidden_layers", 12, vw);
  c.vision_heads = get_or<int64_t>(vision, "num_attention_heads", 12, vw);
  c.image_size = get_or<int64_t>(vision, "image_size", 224, vw);
  c.patch_size = get_or<int64_t>(vision, "patch_size", 32, vw);
  check(get_or<int64_t>(vision, "num_channels", 3, vw) == 3, vw, ": num_channels ",
        vision.value("num_channels", json()).dump(), "; starft runs RGB images (3 channels)");
  const std::string tact = get_or<std::string>(text, "hidden_act", "quick_gelu", tw);
  const std::string vact = get_or<std::string>(vision, "hidden_act", "quick_gelu", vw);
  for (const auto& [act, where] : {std::make_pair(tact, tw), std::make_pair(vact, vw)}) {
    check(act == "quick_gelu" || act == "gelu", where, ": hidden_act '", act,
          "' is not implemented (starft runs quick_gelu or the exact gelu)");
  }
  check(tact == vact, source, ": the towers' hidden_act differ (text ", tact, ", vision ", vact,
        "); starft uses one activation for both");
  c.quick_gelu = tact == "quick_gelu";
  const double teps = get_or<double>(text, "layer_norm_eps", 1e-5, tw),
               veps = get_or<double>(vision, "layer_norm_eps", 1e-5, vw);
  check(teps == veps, source, ": the towers' layer_norm_eps differ (text ", teps, ", vision ", veps,
        "); starft uses one eps for both");
  c.layer_norm_eps = teps;
  // Pooling: transformers takes the argmax token when eos_token_id is 2 (older configs), else the
  // first eos_token_id; for CLIP's vocabulary the end token 49407 is the largest id, the same place.
  if (present(text, "eos_token_id")) {
    const int64_t eos = get_or<int64_t>(text, "eos_token_id", 2, tw);
    check(eos == 2 || eos == c.vocab_size - 1, tw, ": eos_token_id ", eos,
          " pools the text at a token other than "
          "CLIP's end token (the largest id, ",
          c.vocab_size - 1, "), which starft does not implement");
  }
  auto said = [&](const json& t, const char* key, const std::string& where, const std::string& def) {
    return present(t, key) ? where + "." + key + " " + t.at(key).dump()
                           : where + ": no " + key + ", so transformers' default " + def;
  };
  c.sources["sizes"] = source;
  c.sources["vision_heads"] = said(vision, "num_attention_heads", vw, "12");
  c.sources["text_heads"] = said(text, "num_attention_heads", tw, "8");
  c.sources["activation"] =
      said(text, "hidden_act", tw, "quick_gelu") + "; " + said(vision, "hidden_act", vw, "quick_gelu");
  c.sources["layer_norm_eps"] = said(text, "layer_norm_eps", tw, "1e-5");
  c.sources["text_pooling"] = tw + ": the end token (eos_token_id " +
                              (present(text, "eos_token_id") ? text["eos_token_id"].dump() : std::string("absent")) +
                              ")";
  c.sources["image_mean_std"] =
      source + ": no preprocessor_config.json, so CLIPImageProcessor's defaults (OpenAI's mean/std)";
  if (preprocessor.is_object()) {
    const std::string pw = source + ": preprocessor_config.json";
    if (present(preprocessor, "image_mean")) c.image_mean = triple(preprocessor["image_mean"], pw, "image_mean");
    if (present(preprocessor, "image_std")) c.image_std = triple(preprocessor["image_std"], pw, "image_std");
    c.sources["image_mean_std"] = pw + ": image_mean / image_std";
    require_value(preprocessor, "do_normalize", true, pw, "starft always normalises with the mean/std");
    if (present(preprocessor, "crop_size"))
      check(square_size(preprocessor["crop_size"], pw, "crop_size") == c.image_size, pw, ": crop_size ",
            preprocessor["crop_size"].dump(), " differs from the model's image_size ", c.image_size,
            "; starft resizes the shorter side to image_size and centre-crops image_size");
    if (present(preprocessor, "size"))
      check(square_size(preprocessor["size"], pw, "size") == c.image_size, pw, ": size ", preprocessor["size"].dump(),
            " differs from the model's image_size ", c.image_size,
            "; starft resizes the shorter side to image_size and centre-crops image_size");
  }
  c.validate();
  return c;
}

CLIPConfig model_config(const std::string& spec) {
  check(!spec.empty(), "--model is empty: give an open_clip model name (", join(known_model_names()),
        ") or a model-config JSON file");
  if (!fs::exists(spec)) return config_by_name(spec);
  check(fs::is_regular_file(spec), "--model ", spec, ": not a file (give a model-config JSON file or a model name)");
  const json j = read_json_file(spec, "--model");
  check(j.is_object(), "--model ", spec, ": the JSON is a ", j.type_name(), ", expected an object");
  const std::string source = "--model " + spec;
  if (j.contains("vision_cfg") || j.contains("text_cfg"))
    return parse_open_clip_config(j, source + " (open_clip model config)");
  if (j.contains("model_cfg"))
    return parse_open_clip_config(j.at("model_cfg"), source + " (open_clip_config.json)",
                                  j.value("preprocess_cfg", json()));
  if (j.contains("vision_config") || j.contains("text_config") || j.contains("model_type"))
    return parse_hf_config(j, source + " (Hugging Face config)");
  if (j.contains("vision_width") || j.contains("text_width") || j.contains("vision_heads")) {
    CLIPConfig c;
    try {
      c = CLIPConfig::from_json(j);
    } catch (const json::exception& e) {
      fail(source, ": a value of the wrong type (", e.what(), ")");
    }
    c.validate();
    c.set_all_sources(source + " (starft model config)");
    return c;
  }
  fail("--model ", spec,
       ": not a model config this starft reads: no vision_cfg / text_cfg (open_clip), model_cfg "
       "(open_clip_config.json), vision_config / text_config (Hugging Face) or vision_width (starft)");
}

CLIPConfig shape_config(const safetensors::TensorMap& w, const std::string& source) {
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
  check(missing.empty(), source, ": cannot read the CLIP architecture, missing tensors: ", join(missing),
        ". Only ViT CLIP models in the OpenAI/open_clip or Hugging Face naming are supported.");
  check(conv.dim() == 4 && vpos.dim() == 2 && tproj.dim() == 2 && tpos.dim() == 2 && tok.dim() == 2, source,
        ": unexpected tensor ranks for a CLIP ViT (visual.conv1.weight ", conv.sizes(),
        ", visual.positional_embedding ", vpos.sizes(), ", text_projection ", tproj.sizes(), ")");
  auto count_layers = [&](const std::string& prefix) {
    int64_t n = 0;
    while (w.count(prefix + std::to_string(n) + ".attn.in_proj_weight")) ++n;
    return n;
  };
  auto mlp_width = [&](const std::string& prefix, int64_t width) {
    auto it = w.find(prefix + "0.mlp.c_fc.weight");
    return it != w.end() && it->second.dim() == 2 ? it->second.size(0) : 4 * width;
  };
  CLIPConfig c;
  c.vision_width = conv.size(0);
  c.patch_size = conv.size(-1);
  const int64_t grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(vpos.size(0) - 1))));
  check(grid * grid + 1 == vpos.size(0), source, ": visual.positional_embedding has ", vpos.size(0),
        " rows, which is not 1 + a square number of patches");
  c.image_size = grid * c.patch_size;
  c.vision_layers = count_layers("visual.transformer.resblocks.");
  c.vision_mlp_width = mlp_width("visual.transformer.resblocks.", c.vision_width);
  c.embed_dim = tproj.size(1);
  c.context_length = tpos.size(0);
  c.vocab_size = tok.size(0);
  c.text_width = lnf.size(0);
  c.text_layers = count_layers("transformer.resblocks.");
  c.text_mlp_width = mlp_width("transformer.resblocks.", c.text_width);
  c.vision_heads = c.text_heads = 0;  // not in the shapes
  return c;
}

std::optional<std::string> openai_model_with_shapes(const CLIPConfig& shapes) {
  for (const auto& [openai, open_clip] : openai_models()) {
    if (sizes_of(config_by_name(open_clip)) == sizes_of(shapes)) return openai;
  }
  return std::nullopt;
}

CLIPConfig resolve_architecture(const CLIPConfig& shapes, const std::vector<ConfigCandidate>& candidates,
                                const std::string& source) {
  if (candidates.empty()) {
    const auto openai = openai_model_with_shapes(shapes);
    check(openai.has_value(), source,
          ": no configuration came with these weights (no starft metadata, no config.json "
          "or open_clip_config.json beside them), and their shapes (",
          sizes_of(shapes).dump(),
          ") are not an OpenAI model's, so the attention heads and the activation (QuickGELU or the exact GELU) "
          "would be guesses. Give --model: an open_clip model name (",
          join(known_model_names()),
          "), or a model-config JSON file (open_clip's model config, or the Hugging Face config.json)");
    CLIPConfig c = config_by_name(*openai);
    const std::string why =
        "assumed: the shapes are exactly those of OpenAI's " + *openai + " and no configuration came with the weights";
    for (auto& [key, s] : c.sources) s = why;
    std::string gelu_name;
    for (const auto& [name, open_clip] : openai_models())
      if (name == *openai) gelu_name = open_clip.substr(0, open_clip.size() - std::string("-quickgelu").size());
    spdlog::warn(
        "{}: no configuration came with the weights; their shapes are exactly OpenAI's {}, so OpenAI's "
        "settings are assumed (QuickGELU, 64-wide heads). Weights of these shapes from elsewhere (LAION's, "
        "DataComp's: the exact GELU) need --model {}",
        source, *openai, gelu_name);
    return c;
  }
  const ConfigCandidate& first = candidates.front();
  for (size_t i = 1; i < candidates.size(); ++i) {
    const auto diff = differences(settings_of(first.config), settings_of(candidates[i].config));
    check(diff.empty(), source, ": ", first.origin, " and ", candidates[i].origin, " disagree (", join(diff),
          "); the weights have one architecture: drop or correct the one that is wrong");
  }
  const auto diff = differences(sizes_of(first.config), sizes_of(shapes));
  check(diff.empty(), source, ": the weights do not fit ", first.origin, " (", first.origin,
        " vs the tensor shapes: ", join(diff), "); give the configuration of these weights");
  CLIPConfig c = first.config;
  for (size_t i = 1; i < candidates.size(); ++i) c.sources["agrees_with"] += (i > 1 ? ", " : "") + candidates[i].origin;
  c.sources["sizes"] = "the tensor shapes of " + source + " (as the configuration says)";
  c.validate();
  return c;
}

std::string describe(const CLIPConfig& c) {
  std::ostringstream os;
  os << "CLIP ViT: image " << c.image_size << " px, patch " << c.patch_size << "; vision " << c.vision_width
     << " wide, " << c.vision_layers << " layers, " << c.vision_heads << " heads of "
     << c.vision_width / std::max<int64_t>(c.vision_heads, 1) << ", MLP " << c.vision_mlp() << "; text " << c.text_width
     << " wide, " << c.text_layers << " layers, " << c.text_heads << " heads of "
     << c.text_width / std::max<int64_t>(c.text_heads, 1) << ", MLP " << c.text_mlp() << ", context "
     << c.context_length << ", vocab " << c.vocab_size << "; embed " << c.embed_dim << "; "
     << (c.quick_gelu ? "QuickGELU" : "exact GELU") << "; LayerNorm eps " << c.layer_norm_eps << "; mean ["
     << c.image_mean[0] << ", " << c.image_mean[1] << ", " << c.image_mean[2] << "] std [" << c.image_std[0] << ", "
     << c.image_std[1] << ", " << c.image_std[2] << "]; text pooled at the end token";
  if (!c.sources.empty()) {
    os << ". Settings from:";
    for (const auto& [key, s] : c.sources) os << " " << key << ": " << s << ";";
  }
  return os.str();
}

}  // namespace starft::clip
