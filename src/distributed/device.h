#pragma once
// `--device`, the one parser for every command that takes it (encode, eval, train,
// cache-teacher). Accepted values:
//   cpu      the CPU;
//   cuda     a CUDA device: a rank's own local GPU under the distributed runtime (Runtime::device),
//            LibTorch's current GPU in a process without it;
//   cuda:N   CUDA device N (0..99), as given.
// Anything else is refused with the same text everywhere: "--device must be cpu, cuda or
// cuda:N, got 'X'".
#include <torch/torch.h>

#include <string>

namespace starft::distributed {

class Runtime;

// Parses `text` alone, without looking at the devices: kCPU, kCUDA without an index for `cuda`,
// or kCUDA with index N. Throws starft::Error (the text above) for any other value.
torch::Device parse_device(const std::string& text);

// The device to run on for --device `text`: parse_device, then for CUDA the rank's local GPU for
// `cuda` (`runtime` given) or LibTorch's current one (`runtime` null), `cuda:N` as given. Throws
// starft::Error for a bad value, and naming --device and `--device cpu` when CUDA is asked for
// where there is none (the runtime chose the CPU for this rank, or LibTorch sees no GPU).
torch::Device run_device(const std::string& text, const Runtime* runtime);

}  // namespace starft::distributed
