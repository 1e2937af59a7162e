// `starft hardware`: what the processor offers for matrix work, which BLAS kernels LibTorch runs,
// and the OPENBLAS_CORETYPE the launchers should set (common/hardware.h). With --check-gemm it
// also checks the float32 products of the BLAS kernels in use against a float64 reference.
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli/command.h"
#include "common/error.h"
#include "common/hardware.h"
#include "common/precision.h"

namespace starft::cli {
namespace {

// Largest |C - C_ref| / (|A| |B|)_ij over float32 products of several shapes (square, tall, the
// transposed operands a linear layer's backward uses), C_ref in float64. The bound is the
// textbook one for a K-term dot product in float32: K * 2^-24 (Higham, Accuracy and Stability of
// Numerical Algorithms, 3.1), so a kernel within it rounds like a correct one.
double gemm_error(int64_t& worst_k) {
  torch::manual_seed(0);
  double worst = 0;
  struct Shape {
    int64_t m, k, n;
    bool ta, tb;
  };
  for (const Shape& s : {Shape{256, 256, 256, false, false}, Shape{513, 129, 67, false, true},
                         Shape{64, 1031, 200, true, false}, Shape{1, 768, 3072, false, true}}) {
    auto a = s.ta ? torch::randn({s.k, s.m}).t() : torch::randn({s.m, s.k});
    auto b = s.tb ? torch::randn({s.n, s.k}).t() : torch::randn({s.k, s.n});
    auto c = torch::mm(a, b).to(torch::kDouble);
    auto ref = torch::mm(a.to(torch::kDouble), b.to(torch::kDouble));
    auto scale = torch::mm(a.abs().to(torch::kDouble), b.abs().to(torch::kDouble)).clamp_min(1e-30);
    const double err =
        ((c - ref).abs() / scale).max().item<double>() / (static_cast<double>(s.k) * std::ldexp(1.0, -24));
    if (err > worst) {
      worst = err;
      worst_k = s.k;
    }
  }
  return worst;  // in units of the bound
}

int run_hardware(int argc, char** argv) {
  po::options_description opts("options");
  opts.add_options()("openblas-coretype", po::bool_switch(),
                     "print only the OPENBLAS_CORETYPE to set (empty when OpenBLAS already runs fitting kernels)")(
      "check-gemm", po::bool_switch(),
      "check float32 matrix products of the BLAS in use against float64; exit 1 when one is off");
  auto vm = parse(argc, argv, opts,
                  "usage: starft hardware [--openblas-coretype] [--check-gemm]\n"
                  "The processor's matrix features, the BLAS library and kernels LibTorch uses, and what to set.");
  if (!vm) return 0;
  const auto& cpu = cpu_features();
  const auto blas = blas_info();
  const std::string coretype = recommended_openblas_coretype(cpu, blas.openblas_core);
  if ((*vm)["openblas-coretype"].as<bool>()) {
    std::cout << coretype << std::endl;
    return 0;
  }
  const char* forced = std::getenv("OPENBLAS_CORETYPE");
  std::cout << "processor:          " << (cpu.model_name.empty() ? "unknown" : cpu.model_name) << " (" << cpu.vendor
            << ", family " << cpu.family << " model " << cpu.model << ")\n"
            << "matrix features:    " << cpu.flags_text() << "\n"
            << "bfloat16 matrices:  " << cpu.bf16_matrix_summary() << "\n"
            << "precision auto:     " << precision_name(auto_precision(false, cpu)) << " on the CPU, amp_bf16 on CUDA\n"
            << "BLAS library:       " << (blas.library.empty() ? "linked statically" : blas.library)
            << (blas.reference ? " (the reference BLAS: install libopenblas0-openmp)" : "") << "\n";
  if (!blas.openblas_core.empty()) {
    std::cout << "OpenBLAS kernels:   " << blas.openblas_core
              << (forced ? std::string(" (OPENBLAS_CORETYPE=") + forced + ")" : std::string()) << "\n"
              << "OpenBLAS build:     " << blas.openblas_config << "\n"
              << "OPENBLAS_CORETYPE:  "
              << (coretype.empty() ? std::string("nothing to set")
                                   : "set " + coretype + " (the kernels run now are generic)")
              << "\n";
  }
  if ((*vm)["check-gemm"].as<bool>()) {
    int64_t k = 0;
    const double err = gemm_error(k);
    const bool ok = err <= 1.0;
    std::printf("float32 GEMM check: largest error %.3g of the float32 rounding bound (K=%lld): %s\n", err,
                static_cast<long long>(k), ok ? "ok" : "WRONG PRODUCTS");
    std::fflush(stdout);
    return ok ? 0 : 1;
  }
  return 0;
}

Registration hardware_command("hardware", "the processor's matrix features, the BLAS kernels in use, what to set",
                              run_hardware);

}  // namespace
}  // namespace starft::cli
