#pragma once
// CLIP weights on disk (.safetensors): the OpenAI/open_clip naming and the Hugging Face
// `CLIPModel` naming, detected from the keys; the published layouts (model folders, sharded
// checkpoints); the architecture from configuration (clip/architecture.h); export in the OpenAI
// naming (starft's format), or as Hugging Face / open_clip model folders.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "clip/model.h"
#include "clip/safetensors.h"

namespace starft::clip {

enum class Naming { OpenAI, HuggingFace };

// Which naming a state dict uses (HF when any key starts with `vision_model.` or `text_model.`).
Naming detect_naming(const safetensors::TensorMap& tensors);

// Renames (and for HF: fuses q/k/v, transposes the projections) into the OpenAI naming. Ignores
// the HF `position_ids` buffers and a leading `module.` (DDP) prefix. `source` names the file in errors.
safetensors::TensorMap to_openai_naming(const safetensors::TensorMap& tensors, const std::string& source);

struct LoadOptions {
  torch::Device device = torch::kCPU;
  Precision precision = Precision::fp32;  // of the model's forward passes (CLIPImpl::set_precision)
  // --model: the architecture of the weights, as clip::model_config reads it (an open_clip
  // model name, or a model-config JSON file). Empty: from the weights' own configuration
  // (clip/architecture.h). Given, it must agree with any configuration that came with them.
  std::string model;
};

// CLIP weights read from disk, in the OpenAI naming, with their architecture.
struct Weights {
  safetensors::TensorMap tensors;  // OpenAI naming, stored dtypes (F16 / BF16 / F32), CPU
  CLIPConfig config;               // resolved as clip/architecture.h says; config.sources says from where
  std::string source;              // the safetensors file (or index) read, for messages
};

// Reads weights and their architecture. `path`: a .safetensors file (OpenAI/open_clip or Hugging
// Face naming; a config.json, or for open_clip_model.safetensors an open_clip_config.json, beside
// it is read), a Hugging Face sharded checkpoint's model.safetensors.index.json, or a model folder
// holding open_clip_model.safetensors (with open_clip_config.json), model.safetensors or
// model.safetensors.index.json (with config.json), or weights.safetensors (a starft checkpoint),
// chosen in that order as open_clip does. PyTorch pickles (.bin, .pt, .pth, a zip archive) and Git
// LFS pointers (weights or JSON configs) are refused naming the file and what to do (convert it;
// `git lfs pull`). Throws
// starft::Error when the architecture is not configured (clip::resolve_architecture).
Weights read_weights(const std::string& path, const std::string& model = "");

// Loads a model: read_weights, then the tensors copied in (load_state_dict) and the architecture
// and where each setting came from logged. Missing, unexpected or mis-shaped tensors: one
// starft::Error listing them all.
CLIP load_weights(const std::string& path, const LoadOptions& options = {});

// Copies an OpenAI-named state dict into `model` (float32 cast), strictly as above.
void load_state_dict(CLIP& model, const safetensors::TensorMap& openai, const std::string& source);

// The model's parameters by OpenAI name, detached, on CPU (float32).
safetensors::TensorMap state_dict(const CLIP& model);

// Writes the model's weights in the OpenAI naming (float32), with its config in the metadata
// (`starft.config`, and `starft.config_sources`: where each setting originally came from).
void save_weights(const CLIP& model, const std::string& path, safetensors::Metadata metadata = {});

// The OpenAI-named state dict in the Hugging Face CLIPModel naming (q/k/v split, projections
// transposed): the inverse of to_openai_naming.
safetensors::TensorMap to_hf_naming(const safetensors::TensorMap& openai);

// The Hugging Face config.json (CLIPConfig) and preprocessor_config.json of `config`.
nlohmann::json hf_config_json(const CLIPConfig& config);
nlohmann::json hf_preprocessor_json(const CLIPConfig& config);
// open_clip's open_clip_config.json of `config`: {"model_cfg": <model config>, "preprocess_cfg": {...}}.
nlohmann::json open_clip_config_json(const CLIPConfig& config);

// Writes a Hugging Face model folder `dir` that transformers' CLIPModel.from_pretrained loads:
// model.safetensors (float32, metadata format pt plus starft's), config.json and
// preprocessor_config.json. Creates `dir`; replaces those files in it.
void save_hf_folder(const CLIP& model, const std::string& dir, safetensors::Metadata metadata = {});

// Writes an open_clip model folder `dir`: open_clip_model.safetensors (OpenAI naming, float32) and
// open_clip_config.json (model_cfg + preprocess_cfg), as open_clip's hub folders hold them.
void save_open_clip_folder(const CLIP& model, const std::string& dir, safetensors::Metadata metadata = {});

}  // namespace starft::clip
