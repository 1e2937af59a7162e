// amp_bf16 against fp32, side by side in one run, on this machine:
//   1. the StarFT training step as starft runs it (teacher cache, deduplication, causal
//      truncation; forward, losses, backward, AdamW), at two shapes: ViT-B/16's proportions / 4
//      (starft_step_bench's model) and the built-in benchmark's model (configs/demo_model.json);
//      rounds interleave the precisions and the medians of the process CPU time are compared;
//   2. `cache-teacher` (train::build_teacher_cache) and `eval` (eval::Evaluator, zero-shot head
//      and scoring) images/s on one store of random images at the ViT-B/16 / 4 shape.
// The processor and its matrix features head the output: the ratio depends on them (bfloat16
// matrices are several times faster than float32 with AMX-BF16, about as fast with AVX512-BF16
// alone, and far slower without either; common/hardware.h). The last line says which precision
// `--precision auto` picks here, to compare with the ratios.
// --eval-images 0 leaves part 2 out.
//
// usage: precision_bench [--batch N] [--rounds N] [--threads N] [--eval-images N] [--shapes vitb16,demo]
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "common/hardware.h"
#include "common/log.h"
#include "eval/evaluate.h"
#include "step_setup.h"
#include "bench_main.h"

using namespace starft;

namespace {

clip::CLIPConfig demo_model() {
  std::ifstream in(std::string(STARFT_SOURCE_DIR) + "/configs/demo_model.json");
  nlohmann::json j;
  in >> j;
  return clip::CLIPConfig::from_json(j);
}

// Median CPU seconds per StarFT step, fp32 and amp_bf16, interleaved.
std::pair<double, double> step_times(const clip::CLIPConfig& cfg, int64_t batch, int64_t rounds,
                                     const std::string& vocab) {
  bench::StepSetup setup(cfg, 2 * batch, vocab, "precision-bench");
  auto fp32 = setup.config("fp32", "fp32", batch), bf16 = setup.config("bf16", "amp_bf16", batch);
  setup.build_cache(fp32, batch);
  setup.build_cache(bf16, batch);
  train::Trainer a(fp32, setup.comm()), b(bf16, setup.comm());
  std::vector<data::Batch> batches;
  a.loader().start(0, 0);
  while (auto x = a.loader().next()) batches.push_back(*x);
  train::Trainer* trainers[2] = {&a, &b};
  std::vector<double> cpu[2];
  for (auto* t : trainers) t->train_step(batches[0], 0, 0);  // warm-up
  for (int64_t r = 0; r < rounds; ++r) {
    for (int k = 0; k < 2; ++k) {
      const auto& x = batches[(r + 1) % batches.size()];
      const double c0 = bench::cpu_seconds();
      trainers[k]->train_step(x, 0, x.step);
      cpu[k].push_back(bench::cpu_seconds() - c0);
    }
  }
  return {bench::median(cpu[0]), bench::median(cpu[1])};
}

}  // namespace

STARFT_BENCH_MAIN(precision_bench) {
  const char* usage =
      "usage: precision_bench [--batch N] [--rounds N] [--threads N] [--eval-images N] [--shapes vitb16,demo]";
  if (int status; bench::usage_requested(argc, argv, usage, &status)) return status;
  int64_t batch = 32, rounds = 5, eval_images = 256;
  int threads = 1;
  std::string shapes = "vitb16,demo";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--batch"))
      batch = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--rounds"))
      rounds = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads"))
      threads = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--eval-images"))
      eval_images = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--shapes"))
      shapes = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n%s\n", argv[i], usage);
      return 2;
    }
  }
  init_logging(0);
  spdlog::set_level(spdlog::level::warn);
  torch::set_num_threads(threads);
  const std::string vocab = bench::fixture_vocab("precision_bench");
  if (vocab.empty()) return 1;
  const auto& cpu = cpu_features();
  const auto blas = blas_info();
  std::printf("precision_bench: %s (family %d model %d), %s; OpenBLAS kernels %s; %d thread(s)\n",
              cpu.model_name.c_str(), cpu.family, cpu.model, cpu.flags_text().c_str(),
              blas.openblas_core.empty() ? "-" : blas.openblas_core.c_str(), threads);
  std::printf("  bfloat16 matrices: %s\n", cpu.bf16_matrix_summary().c_str());
  auto footer = [&] {
    std::printf("\n--precision auto picks %s on this CPU\n", precision_name(auto_precision(false, cpu)));
    return 0;
  };

  std::printf("\n1. StarFT step (cache + dedup + truncation), batch %lld, median CPU ms of %lld steps\n",
              static_cast<long long>(batch), static_cast<long long>(rounds));
  std::printf("   %-34s %10s %10s %14s\n", "shape", "fp32", "amp_bf16", "fp32/amp_bf16");
  auto row = [&](const char* name, const clip::CLIPConfig& cfg) {
    const auto [f, b] = step_times(cfg, batch, rounds, vocab);
    std::printf("   %-34s %10.1f %10.1f %13.2fx  (target >= 4x where the processor has AMX-BF16)\n", name, 1e3 * f,
                1e3 * b, f / b);
    std::fflush(stdout);
  };
  if (shapes.find("vitb16") != std::string::npos) row("ViT-B/16 proportions / 4", bench::vitb16_quarter());
  if (shapes.find("demo") != std::string::npos) row("demo model (configs/demo_model.json)", demo_model());

  if (eval_images <= 0) return footer();
  std::printf("\n2. cache-teacher and eval at ViT-B/16 / 4, %lld images, images/s (wall)\n",
              static_cast<long long>(eval_images));
  bench::StepSetup setup(bench::vitb16_quarter(), eval_images, vocab, "precision-bench-eval");
  auto tokenizer = clip::Tokenizer::load(setup.config("x", "fp32", batch).vocab);
  eval::EvalSpec spec;
  spec.store = setup.config("x", "fp32", batch).store;
  spec.name = "bench";
  eval::EvalOptions eo;
  eo.templates = "simple";
  std::printf("   %-14s %12s %12s %14s\n", "command", "fp32", "amp_bf16", "amp_bf16/fp32");
  double cache_ips[2], eval_ips[2];
  const char* names[2] = {"fp32", "amp_bf16"};
  for (int k = 0; k < 2; ++k) {
    const auto c = setup.config(names[k], names[k], batch);
    cache_ips[k] = eval_images / setup.build_cache(c, 64);
  }
  eval::Evaluator evaluator({spec}, eo);
  for (int k = 0; k < 2; ++k) {
    clip::LoadOptions lo;
    lo.precision = parse_precision(names[k], false);
    auto model = clip::load_weights(setup.config("x", "fp32", batch).weights, lo);
    const auto t0 = std::chrono::steady_clock::now();
    evaluator.evaluate(model, tokenizer, setup.comm());
    eval_ips[k] = eval_images / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  std::printf("   %-14s %12.1f %12.1f %13.2fx\n", "cache-teacher", cache_ips[0], cache_ips[1],
              cache_ips[1] / cache_ips[0]);
  std::printf("   %-14s %12.1f %12.1f %13.2fx\n", "eval", eval_ips[0], eval_ips[1], eval_ips[1] / eval_ips[0]);
  return footer();
}
