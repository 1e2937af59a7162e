#pragma once
// Reader and writer for the safetensors format: 8-byte little-endian header length, a JSON
// header {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the raw little-endian tensor bytes. Every offset, size and dtype is checked; a bad file
// gives a starft::Error naming the file and the tensor, never a crash or silent zeros. The checks
// of the bytes, without LibTorch, are in safetensors_format.h.
#include <torch/torch.h>

#include <map>
#include <string>

#include "clip/safetensors_format.h"  // Metadata, conversion_hint, the header checks

namespace starft::safetensors {

using TensorMap = std::map<std::string, torch::Tensor>;

struct Contents {
  TensorMap tensors;  // CPU, contiguous, in the stored dtype (F16 stays kHalf)
  Metadata metadata;  // the "__metadata__" object (string values), empty if absent
};

// Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL. A Git LFS pointer (a clone without
// git-lfs) and a PyTorch pickle or zip archive saved under the name are recognised and named, with
// what to do (`git lfs pull`; the conversion command).
Contents load(const std::string& path);

// Writes atomically: to `path`.tmp-<pid>, flushed, then renamed over `path`. Tensors may live
// on any device and be non-contiguous; they are written in name order.
void save(const std::string& path, const TensorMap& tensors, const Metadata& metadata = {});

// Parses an in-memory image of a file; `name` is used in error messages.
Contents parse(const std::string& bytes, const std::string& name);

}  // namespace starft::safetensors
