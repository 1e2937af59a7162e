#pragma once
// What the processor offers for matrix work and which kernels LibTorch's libraries run on it.
//
// Why this exists: Debian's OpenBLAS 0.3.21 picks its kernels by CPU model at load time and falls
// back to generic ones (`Prescott`, about 3x slower in float32) on models it does not know, such
// as Sapphire Rapids (family 6 model 143) and Emerald Rapids (model 207); bfloat16 matrices run
// 10-20x faster than float32 on processors with AMX-BF16, 0.7-2.7x as fast with AVX512-BF16 alone,
// and 10-20x slower on processors without either (LibTorch 1.13 then uses a scalar reference loop). So starft reads the
// processor's features instead of assuming them, and says what it found.
#include <string>
#include <vector>

namespace starft {

struct CpuFeatures {
  std::string model_name;  // /proc/cpuinfo "model name" ("" when unknown)
  std::string vendor;      // "GenuineIntel", "AuthenticAMD", ...
  int family = 0, model = 0;
  bool avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_bf16 = false;  // AVX512-BF16 (vdpbf16ps)
  bool amx_bf16 = false;     // AMX-BF16 tiles
  // Native bfloat16 matrix instructions (AMX-BF16 or AVX512-BF16): oneDNN runs bf16 GEMMs on them
  // (several times faster than float32 with AMX; whether amp_bf16 as a whole is faster is
  // amp_bf16_faster()). Without them, bf16 is emulated or a reference loop.
  bool native_bf16_matmul() const { return amx_bf16 || avx512_bf16; }
  // Whether amp_bf16 is the faster precision on this CPU, which `--precision auto` follows. It is
  // a rule drawn from bench/precision_bench's StarFT step (fp32 time / amp_bf16 time; demo model,
  // ViT-B/16 / 4), not a guess from the flags alone:
  //   AMX-BF16 tiles (Xeon family 6 model 207 with AMX): bf16 GEMMs 550-700 GFLOP/s per core
  //     against 20-83 for float32                                             -> amp_bf16
  //   AVX512-BF16 on AMD: Zen 4 EPYC (family 25 model 17) 1.17x (2026-12-02);
  //     Zen 5 EPYC (family 26 model 2) 1.28x and 2.73x, cache-teacher 1.34x, eval 1.16x
  //     (2026-12-06)                                                           -> amp_bf16
  //   AVX512-BF16 on Intel without AMX (Xeon family 6 model 207 with AMX hidden): 0.85x and
  //     0.90x, eval 0.69x (2026-12-03)                                         -> fp32
  //   neither: a reference loop, 13-25x slower                                 -> fp32
  bool amp_bf16_faster() const { return amx_bf16 || (avx512_bf16 && vendor == "AuthenticAMD"); }
  // AVX-512 foundation + BW/VL/DQ: what OpenBLAS's SkylakeX kernels and oneDNN's avx512_core need.
  bool avx512_core() const { return avx512f && avx512bw && avx512vl && avx512dq; }
  // The matrix-relevant flags present, e.g. "avx2 fma avx512f avx512bw avx512vl avx512dq avx512_bf16 amx_bf16".
  std::string flags_text() const;
  // One sentence on this CPU's bfloat16 matrix support and what it means for amp_bf16 (AMX-BF16;
  // AVX512-BF16 on AMD; AVX512-BF16 on Intel without AMX; neither), for the start-up log, the
  // `auto` log line, `starft hardware` and bench/precision_bench: the same text everywhere.
  std::string bf16_matrix_summary() const;
};

// Parses /proc/cpuinfo text (its first processor block). Missing fields stay at their defaults.
CpuFeatures parse_cpuinfo(const std::string& cpuinfo);

// This machine's features (read once from /proc/cpuinfo).
const CpuFeatures& cpu_features();

struct BlasInfo {
  std::string library;          // realpath of the BLAS shared object in use ("" when linked statically)
  bool reference = false;       // Debian's reference BLAS (netlib): about 10x slower than OpenBLAS
  std::string openblas_core;    // OpenBLAS's kernel set (openblas_get_corename()), "" when not OpenBLAS
  std::string openblas_config;  // openblas_get_config()
};

// The BLAS LibTorch uses in this process (loads it first with a small matmul).
BlasInfo blas_info();

// OpenBLAS kernel sets that are generic fallbacks on x86-64 (no AVX2 / AVX-512 kernels).
bool is_generic_openblas_core(const std::string& core);

// The OPENBLAS_CORETYPE to set for `cpu` when OpenBLAS chose `current_core`: "" when the current
// core already fits, else the best kernel set the processor supports: "SkylakeX" (AVX-512
// foundation, BW, VL, DQ), "Zen" (AMD with AVX2 and FMA), "Haswell" (AVX2 and FMA); "" when the
// processor has none of them.
std::string recommended_openblas_coretype(const CpuFeatures& cpu, const std::string& current_core);

// Logs (info) the processor, its matrix features, the BLAS library and kernel, and what bf16
// matrices will run on; warns, naming the fix, for the reference BLAS and for an OpenBLAS generic
// kernel on a processor that has a better one. `describe` false logs the description at debug level
// (the warnings stay), for commands whose output is text to read. Call once per process at start-up.
void log_hardware(bool describe = true);

}  // namespace starft
