#pragma once
// The tiny_clip fixtures (../shared/fixtures/clip/tiny_clip_*.safetensors) carry no configuration
// of their own (no starft metadata, no config.json) and their shapes are no OpenAI model's, so
// starft asks for their architecture: starft's model "tiny" (QuickGELU, 64-wide heads), --model tiny.
#include <string>

#include "clip/weights.h"

namespace starft::testing {

inline constexpr const char* kTinyModel = "tiny";

// `options` with --model tiny.
inline clip::LoadOptions tiny_options(clip::LoadOptions options = {}) {
  options.model = kTinyModel;
  return options;
}

}  // namespace starft::testing
