#pragma once
// The tiny_clip fixtures (../shared/fixtures/clip/tiny_clip_*.safetensors) carry no starft metadata
// and no config.json, and their shapes are no OpenAI model's. tiny_clip_openai's metadata says
// format=openai-clip, which declares OpenAI's conventions (clip/weights.cpp); tiny_clip_hf's says
// nothing, so starft asks for its architecture. The tests name it for both: starft's model "tiny"
// (QuickGELU, 64-wide heads), --model tiny.
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
