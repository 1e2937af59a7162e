#pragma once
// Numeric precision of the model's forward passes, with open_clip's names (`--precision`).
//
//   fp32      everything in float32.
//   amp_bf16  automatic mixed precision to bfloat16 (torch.autocast(device, dtype=torch.bfloat16)):
//             matrix products and convolutions run in bfloat16 (oneDNN with AMX / AVX512-BF16 on
//             CPUs that have them; tensor cores on CUDA); the residual stream, layer norms,
//             master weights, optimizer state, gradient all-reduce, the logit scale and every loss
//             stay float32 (the model's encoders return float32 features).
//   auto      amp_bf16 where it measured the faster precision (CUDA; a CPU with AMX-BF16 tiles; an
//             AMD CPU with AVX512-BF16), else fp32, Intel's AVX512-BF16 without AMX included
//             (CpuFeatures::amp_bf16_faster gives the measurements): resolved once at start-up
//             and logged. (Not an open_clip name; starft's addition for mixed fleets.)
// open_clip's spelling `amp_bfloat16` is read as amp_bf16.
#include <string>

namespace starft {

struct CpuFeatures;  // common/hardware.h

enum class Precision { fp32, amp_bf16 };

// "fp32" | "amp_bf16".
const char* precision_name(Precision p);

// Parses fp32 | amp_bf16 | amp_bfloat16 | auto; `auto` is resolved for a device of which
// `cuda` says whether it is a CUDA device. `option` names the option or key in the error, which
// lists the accepted values (open_clip's amp, fp16 and pure_bf16 are named as not supported).
Precision parse_precision(const std::string& text, bool cuda, const std::string& option = "--precision");

// What `auto` resolves to on a device: amp_bf16 on CUDA or where cpu.amp_bf16_faster(), else fp32.
Precision auto_precision(bool cuda, const CpuFeatures& cpu);

// auto_precision's rule in words ("amp_bf16 on CUDA, ..., else fp32"), for help texts and errors.
const char* auto_precision_rule();

// Throws starft::Error naming `option` unless `text` is one of the accepted values (for checking a
// configuration before the device is known).
void check_precision_text(const std::string& text, const std::string& option = "--precision");

}  // namespace starft
