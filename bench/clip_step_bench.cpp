// One CLIP training step (forward, symmetric contrastive loss, backward) at ViT-B/16 shapes on the
// CPU, in fp32 and in amp_bf16 (interleaved), reported as achieved GFLOP/s over this machine's best
// GEMM measured in the same run: the faster of a large square float32 torch::mm (OpenBLAS) and a
// bfloat16 one (oneDNN; AMX / AVX512-BF16 where the processor has them), so a step that runs on
// a slow kernel cannot look efficient by being measured against that same kernel. FLOPs are counted analytically for
// the matrix products the step executes (linear layers, attention products, patch convolution; forward 2MNK, backward
// 4MNK, the patch convolution's input gradient is not needed). Element-wise work is not counted, so the ratio is the
// share of peak the step achieves on its useful GEMM work.
//
// usage: clip_step_bench [--batch N] [--steps N] [--layers N] [--threads N (default: all cores)]
//                        [--precision fp32|amp_bf16|both (default both)] [--device cpu|cuda]
//                        [--peak-tflops X (the device's spec bfloat16 dense peak, for MFU)]
//                        [--activation gelu (open_clip's ViT-B-16, default) | quick_gelu (OpenAI's)]
// On CUDA the step is timed between device synchronisations and MFU = achieved / --peak-tflops
// (default 989: H100 / H200 SXM dense bfloat16) is printed beside the ratio to the measured GEMM.
#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "clip/model.h"
#include "common/hardware.h"
#include "common/log.h"
#include "distributed/device.h"
#include "bench_main.h"

using namespace starft;
using Clock = std::chrono::steady_clock;
using starft::bench::seconds_since;

namespace {

// FLOPs of one tower's transformer, forward + backward, for `rows` sequences of length L.
double transformer_flops(int64_t rows, int64_t L, int64_t W, int64_t layers) {
  const double tokens = static_cast<double>(rows) * L;
  const double linear = 2.0 * tokens * W * (3 * W + W + 4 * W + 4 * W);        // qkv, out, fc, proj
  const double attention = 2.0 * 2.0 * rows * static_cast<double>(L) * L * W;  // QK^T and AV
  return 3.0 * layers * (linear + attention);                                  // forward + 2x for backward
}

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

double gemm_peak(int64_t n, int reps, torch::ScalarType dtype, const torch::Device& device) {
  if (device.is_cuda()) n *= 4;  // a GPU needs larger products to reach its peak
  auto a = torch::randn({n, n}).to(device, dtype);
  auto b = torch::randn({n, n}).to(device, dtype);
  auto c = torch::mm(a, b);  // warm-up
  sync(device);
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    c = torch::mm(a, b);
    sync(device);
    best = std::max(best, 2.0 * n * n * n / seconds_since(t0) / 1e9);
  }
  return best;
}

}  // namespace

STARFT_BENCH_MAIN(clip_step_bench) {
  const char* usage =
      "usage: clip_step_bench [--batch N] [--steps N] [--layers N] [--threads N] [--precision fp32|amp_bf16|both] [--device cpu|cuda] [--peak-tflops X] [--activation gelu|quick_gelu]";
  if (int status; bench::usage_requested(argc, argv, usage, &status)) return status;
  int64_t batch = 4, steps = 3, layers = 12;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  std::string which = "both", device_name = "cpu", activation = "gelu";
  double peak_tflops = 989;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--batch"))
      batch = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--steps"))
      steps = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--layers"))
      layers = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads"))
      threads = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--precision"))
      which = argv[i + 1];
    else if (!std::strcmp(argv[i], "--device"))
      device_name = argv[i + 1];
    else if (!std::strcmp(argv[i], "--peak-tflops"))
      peak_tflops = std::stod(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--activation"))
      activation = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n%s\n", argv[i], usage);
      return 2;
    }
  }
  init_logging(0);
  const auto blas = blas_info();
  std::vector<Precision> precisions;
  if (which == "both" || which == "fp32") precisions.push_back(Precision::fp32);
  if (which == "both" || which == "amp_bf16") precisions.push_back(Precision::amp_bf16);
  if (precisions.empty()) {
    std::fprintf(stderr, "--precision must be fp32, amp_bf16 or both, got %s\n", which.c_str());
    return 2;
  }
  if (threads > 0) torch::set_num_threads(threads);
  torch::manual_seed(0);
  torch::Device device(torch::kCPU);
  try {
    device = distributed::run_device(device_name, nullptr);  // starft's --device: cpu, cuda, cuda:N
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }

  if (activation != "gelu" && activation != "quick_gelu") {
    std::fprintf(stderr, "--activation must be gelu (open_clip's ViT-B-16) or quick_gelu (OpenAI's), got %s\n",
                 activation.c_str());
    return 2;
  }
  auto cfg = clip::config_by_name(activation == "gelu" ? "ViT-B-16" : "ViT-B-16-quickgelu");
  cfg.vision_layers = layers;
  cfg.text_layers = layers;
  clip::CLIP model(cfg);
  clip::init_parameters(model, 0);
  model->to(device);
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.0));

  // Captions of typical prompt length: 20 positions up to the end token.
  const int64_t text_len = 20;
  auto images = torch::randn({batch, 3, cfg.image_size, cfg.image_size});
  auto tokens = torch::randint(1, 49000, {batch, cfg.context_length}, torch::kLong);
  tokens.narrow(1, text_len, cfg.context_length - text_len).zero_();
  tokens.select(1, text_len - 1).fill_(49407);
  tokens.select(1, 0).fill_(49406);
  images = images.to(device);
  tokens = tokens.to(device);

  auto step = [&] {
    opt.zero_grad();
    auto i = model->encode_image(images);
    auto t = model->encode_text(tokens);
    auto logits = model->logits_per_image(i, t);
    auto labels = torch::arange(batch, torch::TensorOptions().dtype(torch::kLong).device(device));
    auto loss = (torch::nn::functional::cross_entropy(logits, labels) +
                 torch::nn::functional::cross_entropy(logits.t(), labels)) /
                2;
    loss.backward();
    sync(device);
  };

  const int64_t vis_L = cfg.grid() * cfg.grid() + 1;
  const int64_t P = cfg.patch_size;
  double flops = transformer_flops(batch, vis_L, cfg.vision_width, cfg.vision_layers) +
                 transformer_flops(batch, text_len, cfg.text_width, cfg.text_layers);
  flops += 2.0 * 2.0 * batch * cfg.grid() * cfg.grid() * (3.0 * P * P) * cfg.vision_width;  // conv fwd + weight grad
  flops += 3.0 * 2.0 * batch * (cfg.vision_width + cfg.text_width) * cfg.embed_dim;         // projections

  // Peaks first and last, best of both, so a noisy neighbour does not inflate the ratio.
  double peak32 = gemm_peak(2048, 3, torch::kFloat, device), peak16 = gemm_peak(2048, 3, torch::kBFloat16, device);
  std::vector<double> best(precisions.size(), 1e30), total(precisions.size(), 0);
  for (auto p : precisions) {  // warm-up
    model->set_precision(p);
    step();
  }
  for (int64_t s = 0; s < steps; ++s) {
    for (size_t k = 0; k < precisions.size(); ++k) {
      model->set_precision(precisions[k]);
      auto t0 = Clock::now();
      step();
      const double dt = seconds_since(t0);
      best[k] = std::min(best[k], dt);
      total[k] += dt;
    }
  }
  peak32 = std::max(peak32, gemm_peak(2048, 3, torch::kFloat, device));
  peak16 = std::max(peak16, gemm_peak(2048, 3, torch::kBFloat16, device));
  const double peak = std::max(peak32, peak16);
  const auto& cpu = cpu_features();
  std::printf(
      "clip_step_bench: CLIP ViT-B/16 shapes (image 224, patch 16, vision width 768, text width 512, "
      "%lld+%lld layers, embed 512, %s), batch %lld images + %lld captions (%lld positions after "
      "truncation), threads %d\n",
      (long long)cfg.vision_layers, (long long)cfg.text_layers,
      cfg.quick_gelu ? "QuickGELU (OpenAI)" : "exact GELU (open_clip)", (long long)batch, (long long)batch,
      (long long)text_len, torch::get_num_threads());
  std::printf("processor: %s (family %d model %d), %s; BLAS %s, OpenBLAS kernels %s\n", cpu.model_name.c_str(),
              cpu.family, cpu.model, cpu.flags_text().c_str(), blas.library.empty() ? "(static)" : blas.library.c_str(),
              blas.openblas_core.empty() ? "-" : blas.openblas_core.c_str());
  std::printf("device: %s\n", device.str().c_str());
  std::printf("GEMM %s: float32 %.1f GFLOP/s, bfloat16 %.1f GFLOP/s; best GEMM %.1f GFLOP/s\n",
              device.is_cuda() ? "8192^3" : "2048^3", peak32, peak16, peak);
  std::printf("GEMM work %.1f GFLOP per step\n", flops / 1e9);
  for (size_t k = 0; k < precisions.size(); ++k) {
    const double achieved = flops / best[k] / 1e9;
    std::printf("%-9s step best %.3f s, mean %.3f s over %lld steps: %.1f GFLOP/s, ratio to best GEMM %.3f%s\n",
                precision_name(precisions[k]), best[k], total[k] / steps, (long long)steps, achieved, achieved / peak,
                precisions[k] == Precision::amp_bf16 ? " (target >= 0.35)" : "");
    std::printf("          %.1f samples/s\n", batch / best[k]);
    if (device.is_cuda()) {
      std::printf("          MFU %.3f of %.0f TFLOP/s (target >= 0.30 on H100/H200 in amp_bf16)\n",
                  achieved / (peak_tflops * 1e3), peak_tflops);
    }
  }
  if (precisions.size() == 2) std::printf("fp32 / amp_bf16 step time: %.2fx\n", best[0] / best[1]);
  return 0;
}
