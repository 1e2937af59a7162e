#include "common/hardware.h"

#include <dlfcn.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace starft {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// The OpenBLAS kernel sets with AVX2 or AVX-512 kernels (0.3.21's names); every other one is a
// generic fallback on a processor that has AVX2.
const std::set<std::string>& fast_openblas_cores() {
  static const std::set<std::string> cores{"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids"};
  return cores;
}

}  // namespace

std::string CpuFeatures::bf16_matrix_summary() const {
  if (amx_bf16) return "AMX-BF16 tiles: amp_bf16 runs several times faster than fp32 here";
  if (amp_bf16_faster())
    return "AVX512-BF16 on an AMD processor: amp_bf16 measured 1.2-2.7x fp32's speed on Zen 4 and Zen 5 "
           "(bench/precision_bench measures it here)";
  if (native_bf16_matmul())
    return "AVX512-BF16 without AMX-BF16 on an Intel processor: amp_bf16 measured 0.7-0.9x fp32's speed there "
           "(bench/precision_bench measures it here)";
  return "no bfloat16 matrix instructions (AMX-BF16 / AVX512-BF16): amp_bf16 runs in a slow fallback, "
         "13-25x slower than fp32 on an AMD EPYC in bench/precision_bench";
}

std::string CpuFeatures::flags_text() const {
  std::string out;
  auto add = [&](bool on, const char* name) {
    if (on) out += (out.empty() ? "" : " ") + std::string(name);
  };
  add(avx2, "avx2");
  add(fma, "fma");
  add(avx512f, "avx512f");
  add(avx512bw, "avx512bw");
  add(avx512vl, "avx512vl");
  add(avx512dq, "avx512dq");
  add(avx512_bf16, "avx512_bf16");
  add(amx_bf16, "amx_bf16");
  return out.empty() ? "none of avx2/avx512/amx" : out;
}

CpuFeatures parse_cpuinfo(const std::string& cpuinfo) {
  CpuFeatures f;
  std::istringstream in(cpuinfo);
  std::string line;
  while (std::getline(in, line)) {
    if (trim(line).empty()) {
      if (!f.vendor.empty() || !f.model_name.empty()) break;  // end of the first processor block
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
    if (key == "model name")
      f.model_name = value;
    else if (key == "vendor_id")
      f.vendor = value;
    else if (key == "cpu family")
      f.family = std::atoi(value.c_str());
    else if (key == "model")
      f.model = std::atoi(value.c_str());
    else if (key == "flags") {
      std::istringstream flags(value);
      std::set<std::string> set;
      for (std::string w; flags >> w;) set.insert(w);
      auto has = [&](const char* name) { return set.count(name) > 0; };
      f.avx2 = has("avx2");
      f.fma = has("fma");
      f.avx512f = has("avx512f");
      f.avx512bw = has("avx512bw");
      f.avx512vl = has("avx512vl");
      f.avx512dq = has("avx512dq");
      f.avx512_bf16 = has("avx512_bf16");
      f.amx_bf16 = has("amx_bf16");
    }
  }
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    std::ifstream in("/proc/cpuinfo");
    std::stringstream text;
    text << in.rdbuf();
    return parse_cpuinfo(text.str());
  }();
  return features;
}

BlasInfo blas_info() {
  BlasInfo info;
  // Make sure BLAS is loaded, then look at which shared object provides it.
  auto a = torch::ones({8, 8});
  (void)torch::mm(a, a);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const auto pos = line.find('/');
    if (pos == std::string::npos) continue;
    const std::string path = line.substr(pos);
    if (path.find("libblas.so") == std::string::npos && path.find("libopenblas") == std::string::npos &&
        path.find("libmkl") == std::string::npos)
      continue;
    char resolved[PATH_MAX];
    info.library = realpath(path.c_str(), resolved) ? std::string(resolved) : path;
    if (info.library.find("openblas") != std::string::npos || info.library.find("mkl") != std::string::npos) break;
  }
  info.reference = !info.library.empty() && info.library.find("openblas") == std::string::npos &&
                   info.library.find("mkl") == std::string::npos;
  // OpenBLAS says which kernels it chose; the symbols are there whenever it is loaded.
  using NameFn = char* (*)();
  if (auto corename = reinterpret_cast<NameFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"))) {
    if (const char* name = corename()) info.openblas_core = name;
  }
  if (auto config = reinterpret_cast<NameFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
    if (const char* text = config()) info.openblas_config = text;
  }
  return info;
}

bool is_generic_openblas_core(const std::string& core) {
  return !core.empty() && fast_openblas_cores().count(core) == 0;
}

std::string recommended_openblas_coretype(const CpuFeatures& cpu, const std::string& current_core) {
  if (!is_generic_openblas_core(current_core)) return "";
  if (cpu.avx512_core()) return "SkylakeX";
  if (cpu.avx2 && cpu.fma) return cpu.vendor == "AuthenticAMD" ? "Zen" : "Haswell";
  return "";
}

void log_hardware(bool describe) {
  const auto& cpu = cpu_features();
  const auto blas = blas_info();
  const auto level = describe ? spdlog::level::info : spdlog::level::debug;
  spdlog::log(level, "processor: {} (family {} model {}); matrix features: {}; bfloat16 matrices: {}",
              cpu.model_name.empty() ? "unknown" : cpu.model_name, cpu.family, cpu.model, cpu.flags_text(),
              cpu.bf16_matrix_summary());
  const char* forced = std::getenv("OPENBLAS_CORETYPE");
  spdlog::log(level, "BLAS: {}{}{}", blas.library.empty() ? "linked statically" : blas.library,
              blas.openblas_core.empty() ? "" : ", OpenBLAS kernel " + blas.openblas_core,
              forced ? std::string(" (OPENBLAS_CORETYPE=") + forced + ")" : std::string());
  if (blas.reference) {
    spdlog::warn(
        "LibTorch is using the reference BLAS ({}), about 10x slower than OpenBLAS. Install "
        "libopenblas0-openmp (launch/install-deps.sh does) or select it with "
        "`update-alternatives --config libblas.so.3-x86_64-linux-gnu`.",
        blas.library);
  }
  const std::string better = recommended_openblas_coretype(cpu, blas.openblas_core);
  if (!better.empty()) {
    spdlog::warn(
        "OpenBLAS runs its generic '{}' kernels: it does not know this processor (family {} model {}), which has "
        "{}. float32 matrices run about 3x slower than they can. Set OPENBLAS_CORETYPE={} before starting starft "
        "(launch/mpirun.sh and the slurm/ templates do when it is unset).",
        blas.openblas_core, cpu.family, cpu.model, cpu.flags_text(), better);
  }
}

}  // namespace starft
