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
  fail(option, " '", text, "': unknown precision; use fp32, amp_bf16 (bfloat16 autocast) or auto (",
       auto_precision_rule(), ")");
}

const char* auto_precision_rule() {
  return "amp_bf16 on CUDA, on CPUs with AMX-BF16 and on AMD CPUs with AVX512-BF16, else fp32";
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
                 cuda ? std::string("CUDA device") : cpu.flags_text() + "; " + cpu.bf16_matrix_summary());
    return p;
  }
  if (!native) {
    spdlog::warn("{} {}: this processor ({}) has {}; use --precision fp32 or auto here", option, text, cpu.model_name,
                 cpu.bf16_matrix_summary());
  }
  return Precision::amp_bf16;
}

}  // namespace starft
