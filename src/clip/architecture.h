#pragma once
// Where a CLIP model's architecture comes from. The tensor shapes give the sizes (widths, layers,
// patch, image size, embed dim, MLP widths); what they cannot tell (the attention heads, QuickGELU
// or the exact GELU, LayerNorm's epsilon, the image mean/std, how the text is pooled) comes from
// configuration, never from a guess:
//   - starft's own metadata (`starft.config` in weights starft wrote);
//   - a Hugging Face `config.json` (CLIPConfig: `hidden_act`, `num_attention_heads`, ...) or an
//     open_clip `open_clip_config.json` beside the weights (a model folder);
//   - `--model`: an open_clip model name of the built-in table (ViT-B-16, ViT-H-14, ...) or a
//     JSON file (open_clip's model config, open_clip_config.json, Hugging Face's config.json, or
//     starft's CLIPConfig keys);
//   - OpenAI's settings only when the shapes are exactly those of an OpenAI model (logged as an
//     assumption). Other shapes without configuration are refused with a message naming --model.
// A setting that changes outputs and that starft does not implement (another activation, average
// pooling, a non-causal text tower, layer scale, ...) is refused naming the key.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "clip/model.h"
#include "clip/safetensors.h"

namespace starft::clip {

// The open_clip model names of the built-in table (open_clip's published settings) and the
// other names config_by_name accepts.
std::vector<std::string> known_model_names();

// An open_clip model config: the JSON of open_clip's `model_configs/NAME.json`, or the
// `model_cfg` of a hub folder's `open_clip_config.json` with its `preprocess_cfg` (mean, std,
// size) as `preprocess` (null when absent). `source` names the file in messages and in
// CLIPConfig::sources. Throws starft::Error naming the key for settings starft cannot run
// (timm or Hugging Face towers, ResNets, average pooling, layer scale, other text pooling, ...).
CLIPConfig parse_open_clip_config(const nlohmann::json& cfg, const std::string& source,
                                  const nlohmann::json& preprocess = nullptr);

// A Hugging Face CLIPConfig (`config.json` of a CLIPModel folder; missing keys take
// transformers' CLIPConfig defaults, as from_pretrained does) and, when given, the folder's
// `preprocessor_config.json` (image_mean, image_std, crop_size). Throws starft::Error for
// another model_type, an activation other than quick_gelu / gelu, towers that differ in
// activation or LayerNorm epsilon, or a text pooling token other than the end token.
CLIPConfig parse_hf_config(const nlohmann::json& cfg, const std::string& source,
                           const nlohmann::json& preprocessor = nullptr);

// `--model`: a name of the table (config_by_name), or a JSON file in one of the formats above
// (told apart by its keys: vision_cfg / text_cfg: open_clip; model_cfg: open_clip_config.json;
// vision_config / text_config / model_type: Hugging Face; vision_width, ...: starft's CLIPConfig).
// Throws starft::Error for an unknown name or an unreadable file (a Git LFS pointer: named, with
// `git lfs pull`).
CLIPConfig model_config(const std::string& spec);

// The sizes the tensors imply (OpenAI-named state dict): embed_dim, image_size, patch_size, the
// towers' widths, layers and MLP widths, context_length, vocab_size. Heads are left 0 (unknown).
// Throws starft::Error naming `source` when a tensor the architecture needs is missing.
CLIPConfig shape_config(const safetensors::TensorMap& openai, const std::string& source);

// The OpenAI model ("ViT-B/16", ...) whose shapes `shapes` are exactly, if any.
std::optional<std::string> openai_model_with_shapes(const CLIPConfig& shapes);

// A configuration of the weights, with where it came from ("starft metadata of W", ...).
struct ConfigCandidate {
  std::string origin;
  CLIPConfig config;
};

// The architecture of weights with the sizes `shapes`: the first of `candidates` (in the order
// given: metadata, the folder's config, --model), which must all agree with each other and with
// the shapes; with none, OpenAI's settings when the shapes are exactly an OpenAI model's (a
// warning says it is assumed), else starft::Error asking for --model. `source` names the weights.
CLIPConfig resolve_architecture(const CLIPConfig& shapes, const std::vector<ConfigCandidate>& candidates,
                                const std::string& source);

// One line for the log: the architecture and where each setting came from.
std::string describe(const CLIPConfig& config);

}  // namespace starft::clip
