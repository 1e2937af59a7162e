// starft's FusedAdamW against LibTorch 1.13's torch::optim::AdamW, side by side in one run: the
// optimizer step over the trainable parameters of a model (default configs/demo_model.json, whose
// 49408 x 128 token embedding dominates), rounds interleaved, median wall milliseconds per step.
// Both optimizers get the same random gradients; the final parameters' largest difference is
// printed as a check (float32 rounding, tests/train_config_test.cpp bounds it).
//
// usage: adamw_bench [--rounds N] [--threads N] [--model FILE.json]
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "clip/model.h"
#include "common/allocator.h"
#include "common/hardware.h"
#include "step_setup.h"
#include "train/optimizer.h"
#include "bench_main.h"

using namespace starft;

STARFT_BENCH_MAIN(adamw_bench) {
  const char* usage = "usage: adamw_bench [--rounds N] [--threads N] [--model FILE.json]";
  if (int status; bench::usage_requested(argc, argv, usage, &status)) return status;
  keep_freed_memory_for_reuse();
  int64_t rounds = 20;
  int threads = 1;
  std::string model_file = std::string(STARFT_SOURCE_DIR) + "/configs/demo_model.json";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--rounds"))
      rounds = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads"))
      threads = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--model"))
      model_file = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n%s\n", argv[i], usage);
      return 2;
    }
  }
  torch::set_num_threads(threads);
  std::ifstream in(model_file);
  nlohmann::json j;
  in >> j;
  const auto cfg = clip::CLIPConfig::from_json(j);
  const auto& cpu = cpu_features();
  std::printf("adamw_bench: %s (family %d model %d), %s; %d thread(s); model %s\n", cpu.model_name.c_str(), cpu.family,
              cpu.model, cpu.flags_text().c_str(), threads, model_file.c_str());
  train::NamedParams pa, pb;
  clip::CLIP a(cfg), b(cfg);
  int64_t numel = 0;
  for (auto& p : a->named_parameters()) pa.emplace_back(p.key(), p.value()), numel += p.value().numel();
  for (auto& p : b->named_parameters()) pb.emplace_back(p.key(), p.value());
  {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < pa.size(); ++i) pb[i].second.copy_(pa[i].second);
  }
  train::AdamWSettings s;
  s.lr = 1e-3;
  s.exclude_gains_biases = true;
  auto fused = train::make_adamw(pa, s);  // FusedAdamW
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& [n, p] : pb) (train::is_gain_or_bias(n, p) ? no_decay : decay).push_back(p);
  auto options = torch::optim::AdamWOptions(s.lr).weight_decay(s.weight_decay);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(options));
  auto none = options;
  none.weight_decay(0.0);
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(none));
  torch::optim::AdamW reference(std::move(groups), options);
  std::vector<double> ms[2];
  for (int64_t r = 0; r < rounds + 1; ++r) {
    for (size_t i = 0; i < pa.size(); ++i) {
      auto g = torch::randn(pa[i].second.sizes());
      pa[i].second.mutable_grad() = g;
      pb[i].second.mutable_grad() = g.clone();
    }
    torch::optim::Optimizer* opts[2] = {&reference, fused.get()};
    for (int k = 0; k < 2; ++k) {
      const auto t0 = std::chrono::steady_clock::now();
      opts[k]->step();
      if (r > 0) ms[k].push_back(1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  float diff = 0;
  for (size_t i = 0; i < pa.size(); ++i) diff = std::max(diff, (pa[i].second - pb[i].second).abs().max().item<float>());
  const double r = bench::median(ms[0]), f = bench::median(ms[1]);
  std::printf("  %lld parameters, median ms per step of %lld: LibTorch AdamW %.2f, FusedAdamW %.2f, ratio %.2fx\n",
              static_cast<long long>(numel), static_cast<long long>(rounds), r, f, r / f);
  std::printf("  largest parameter difference after %lld steps: %.3g\n", static_cast<long long>(rounds + 1), diff);
  return 0;
}
