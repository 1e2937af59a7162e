// One CLIP training step (forward, symmetric contrastive loss, backward) at ViT-B/16 shapes on the
// CPU, reported as achieved GFLOP/s over this machine's float32 GEMM peak measured in the same run
// (a large square torch::mm). FLOPs are counted analytically for the matrix products the step
// executes (linear layers, attention products, patch convolution; forward 2MNK, backward 4MNK, the
// patch convolution's input gradient is not needed). Element-wise work is not counted, so the
// ratio is the share of peak the step achieves on its useful GEMM work.
//
// usage: clip_step_bench [--batch N] [--steps N] [--layers N] [--threads N (default: all cores)]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "clip/model.h"
#include "common/log.h"

using namespace starft;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// FLOPs of one tower's transformer, forward + backward, for `rows` sequences of length L.
double transformer_flops(int64_t rows, int64_t L, int64_t W, int64_t layers) {
  const double tokens = static_cast<double>(rows) * L;
  const double linear = 2.0 * tokens * W * (3 * W + W + 4 * W + 4 * W);  // qkv, out, fc, proj
  const double attention = 2.0 * 2.0 * rows * static_cast<double>(L) * L * W;  // QK^T and AV
  return 3.0 * layers * (linear + attention);  // forward + 2x for backward
}

double gemm_peak(int64_t n, int reps) {
  auto a = torch::randn({n, n});
  auto b = torch::randn({n, n});
  auto c = torch::mm(a, b);  // warm-up
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    c = torch::mm(a, b);
    best = std::max(best, 2.0 * n * n * n / seconds_since(t0) / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t batch = 4, steps = 3, layers = 12;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--batch")) batch = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--steps")) steps = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--layers")) layers = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::stoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  init_logging(0);
  const std::string blas = check_blas();
  if (threads > 0) torch::set_num_threads(threads);
  torch::manual_seed(0);

  auto cfg = clip::config_by_name("ViT-B-16");
  cfg.vision_layers = layers;
  cfg.text_layers = layers;
  clip::CLIP model(cfg);
  clip::init_parameters(model, 0);
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.0));

  // Captions of typical prompt length: 20 positions up to the end token.
  const int64_t text_len = 20;
  auto images = torch::randn({batch, 3, cfg.image_size, cfg.image_size});
  auto tokens = torch::randint(1, 49000, {batch, cfg.context_length}, torch::kLong);
  tokens.narrow(1, text_len, cfg.context_length - text_len).zero_();
  tokens.select(1, text_len - 1).fill_(49407);
  tokens.select(1, 0).fill_(49406);

  auto step = [&] {
    opt.zero_grad();
    auto i = model->encode_image(images);
    auto t = model->encode_text(tokens);
    auto logits = model->logits_per_image(i, t);
    auto labels = torch::arange(batch);
    auto loss = (torch::nn::functional::cross_entropy(logits, labels) +
                 torch::nn::functional::cross_entropy(logits.t(), labels)) / 2;
    loss.backward();
  };

  const int64_t vis_L = cfg.grid() * cfg.grid() + 1;
  const int64_t P = cfg.patch_size;
  double flops = transformer_flops(batch, vis_L, cfg.vision_width, cfg.vision_layers) +
                 transformer_flops(batch, text_len, cfg.text_width, cfg.text_layers);
  flops += 2.0 * 2.0 * batch * cfg.grid() * cfg.grid() * (3.0 * P * P) * cfg.vision_width;  // conv fwd + weight grad
  flops += 3.0 * 2.0 * batch * (cfg.vision_width + cfg.text_width) * cfg.embed_dim;          // projections

  // Peak first and last, best of both, so a noisy neighbour does not inflate the ratio.
  const double peak_before = gemm_peak(2048, 5);
  step();  // warm-up
  double best = 1e30, total = 0;
  for (int64_t s = 0; s < steps; ++s) {
    auto t0 = Clock::now();
    step();
    double dt = seconds_since(t0);
    best = std::min(best, dt);
    total += dt;
  }
  const double peak_after = gemm_peak(2048, 5);
  const double peak = std::max(peak_before, peak_after);
  const double achieved = flops / best / 1e9;
  std::printf("clip_step_bench: CLIP ViT-B/16 shapes (image 224, patch 16, vision width 768, text width 512, "
              "%lld+%lld layers, embed 512), batch %lld images + %lld captions (%lld positions after "
              "truncation), threads %d, BLAS %s\n",
              (long long)cfg.vision_layers, (long long)cfg.text_layers, (long long)batch, (long long)batch,
              (long long)text_len, torch::get_num_threads(), blas.empty() ? "(static)" : blas.c_str());
  std::printf("step time: best %.3f s, mean %.3f s over %lld steps; GEMM work %.1f GFLOP per step\n", best,
              total / steps, (long long)steps, flops / 1e9);
  std::printf("float32 GEMM peak (2048^3 mm): %.1f GFLOP/s (before %.1f, after %.1f)\n", peak, peak_before,
              peak_after);
  std::printf("achieved: %.1f GFLOP/s  ratio to peak: %.3f (target >= 0.5)\n", achieved, achieved / peak);
  return 0;
}
