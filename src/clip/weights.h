#pragma once
// CLIP weights on disk (.safetensors): the OpenAI/open_clip naming and the Hugging Face
// `CLIPModel` naming, detected from the keys; architecture inferred from the shapes as the
// reference loader does; export in the OpenAI naming so Python tools load what starft trains.
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

// Overrides for models whose architecture is not fully implied by the shapes.
struct ConfigOverrides {
  std::optional<int64_t> vision_heads, text_heads;
  std::optional<bool> quick_gelu;
};

// Infers the architecture from OpenAI-named shapes (heads = width / 64 unless overridden).
CLIPConfig infer_config(const safetensors::TensorMap& openai, const std::string& source,
                        const ConfigOverrides& overrides = {});

struct LoadOptions {
  torch::Device device = torch::kCPU;
  Precision precision = Precision::fp32;  // of the model's forward passes (CLIPImpl::set_precision)
  ConfigOverrides overrides;
};

// Loads a model from .safetensors in either naming. A config stored by `save_weights` in the
// file's metadata (key `starft.config`) is used for what shapes cannot tell (heads, activation).
// Missing, unexpected or mis-shaped tensors: one starft::Error listing them all.
CLIP load_weights(const std::string& path, const LoadOptions& options = {});

// Copies an OpenAI-named state dict into `model` (float32 cast), strictly as above.
void load_state_dict(CLIP& model, const safetensors::TensorMap& openai, const std::string& source);

// The model's parameters by OpenAI name, detached, on CPU (float32).
safetensors::TensorMap state_dict(const CLIP& model);

// Writes the model's weights in the OpenAI naming (float32), with its config in the metadata.
void save_weights(const CLIP& model, const std::string& path, safetensors::Metadata metadata = {});

}  // namespace starft::clip
