#include "common/precision.h"

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/hardware.h"

namespace starft {

const char* precision_name(Precision p) { return p == Precision::amp_bf16 ? "amp_bf16" : "fp32"; }

void check_precision_text(const std::string& text, const std::string& option) {
  if (text == "fp32" || text == "amp_bf16" || text == "amp_bfloat16" || text == "auto") return;
  if (text == "amp" || text == "fp16" || text == "pure_fp16" || text == "bf16" || text == "pure_bf16") {
    fail(option, " ", text,
         ": not supported by starft (float16 autocast and pure low-precision weights are "
         "not implemented); use fp32, amp_bf16 or auto");
  }
  fail(option, " '", text,
       "': unknown precision; use fp32, amp_bf16 (bfloat16 autocast) or auto (amp_bf16 "
       "on CUDA and on CPUs with AMX-BF16, else fp32)");
}

Precision auto_precision(bool cuda, const CpuFeatures& cpu) {
  return cuda || cpu.amp_bf16_faster() ? Precision::amp_bf16 : Precision::fp32;
}

Precision parse_precision(const std::string& text, bool cuda, const std::string& option) {
  check_precision_text(text, option);
  const auto& cpu = cpu_features();
  const bool native = cuda || cpu.native_bf16_matmul();
  if (text == "fp32") return Precision::fp32;
  if (text == "auto") {
    const Precision p = auto_precision(cuda, cpu);
    spdlog::info("{} auto: {} ({})", option, precision_name(p),
                 cuda                    ? "CUDA device"
                 : cpu.amp_bf16_faster() ? "the processor has AMX-BF16: " + cpu.flags_text()
                 : native ? "the processor has AVX512-BF16 but no AMX-BF16, where amp_bf16 measured slower than "
                            "fp32 or barely faster; --precision amp_bf16 forces it"
                          : "the processor has no AMX-BF16 / AVX512-BF16, so bfloat16 matrices would run slower");
    return p;
  }
  if (!native) {
    spdlog::warn(
        "{} {}: this processor ({}) has no bfloat16 matrix instructions (AMX-BF16 / AVX512-BF16), so "
        "bfloat16 matrix products run in a slow fallback, 13-25x slower than fp32 on an AMD EPYC in bench/precision_bench; use --precision "
        "fp32 or auto here",
        option, text, cpu_features().model_name);
  }
  return Precision::amp_bf16;
}

}  // namespace starft
