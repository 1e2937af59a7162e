// Step time of StarFT training, three ways, same model, batch and data, measured side by side in
// one run (rounds interleave the three so machine load affects all alike; medians reported):
//   (a) FLYP alone (contrastive loss; deduplication and causal truncation on, as starft runs it)
//   (b) StarFT as starft runs it: teacher from the cache, deduplication, causal truncation
//   (c) StarFT as the reference code computes it: frozen teacher run online on every batch, text
//       tower on all 77 positions, no deduplication
// Each step is a full optimizer step: forward, loss, backward, gradient sync (1 rank), AdamW.
// Targets: (b)/(a) <= 1.15 and (c)/(b) >= 1.4.
//
// The model has ViT-B/16's proportions scaled down to run on a small CPU: 112 px images with
// patch 8 (196 patches, as B/16 at 224), widths / 4 (vision 192, text 128, embed 128, heads of 64),
// layers / 4 (3 and 3), context 77, the full 49,408-token vocabulary. Data: 8 classes, random
// images; batch 32 (so captions repeat 4 times, as classes do in an ImageNet batch of 512).
//
// Time is reported twice: wall-clock, and the process's CPU time per step. On a shared machine
// (other jobs competing for the cores) wall-clock time swings with the load; with one thread
// (the default) CPU time is the work a step does, so the ratios are taken from it.
//
// usage: starft_step_bench [--batch N] [--rounds N] [--threads N] [--layers N] [--precision P]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "common/hardware.h"
#include "common/log.h"
#include "step_setup.h"
#include "bench_main.h"

using namespace starft;
using Clock = std::chrono::steady_clock;

STARFT_BENCH_MAIN(starft_step_bench) {
  const char* usage =
      "usage: starft_step_bench [--batch N] [--rounds N] [--threads N] [--layers N] [--precision fp32|amp_bf16|auto]";
  if (int status; bench::usage_requested(argc, argv, usage, &status)) return status;
  int64_t batch = 32, rounds = 7, layers = 3;
  int threads = 1;
  std::string precision = "fp32";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--batch"))
      batch = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--rounds"))
      rounds = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads"))
      threads = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--layers"))
      layers = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--precision"))
      precision = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n%s\n", argv[i], usage);
      return 2;
    }
  }
  init_logging(0);
  log_hardware();
  spdlog::set_level(spdlog::level::warn);
  torch::set_num_threads(threads);
  const std::string vocab = bench::fixture_vocab("starft_step_bench");
  if (vocab.empty()) return 1;

  const auto cfg = bench::vitb16_quarter(layers);

  bench::StepSetup setup(cfg, 2 * batch, vocab, "starft-step-bench");
  const auto base = setup.config("run", precision, batch);
  setup.build_cache(base, batch);
  auto& comm = setup.comm();

  auto a_cfg = base, b_cfg = base, c_cfg = base;
  a_cfg.regulariser = train::Regulariser::none;
  a_cfg.run_dir = (setup.dir() / "a").string();
  b_cfg.teacher = train::TeacherSource::cache;
  b_cfg.run_dir = (setup.dir() / "b").string();
  c_cfg.teacher = train::TeacherSource::online;
  c_cfg.dedup = false;
  c_cfg.truncate = false;
  c_cfg.run_dir = (setup.dir() / "c").string();
  train::Trainer a(a_cfg, comm), b(b_cfg, comm), c(c_cfg, comm);

  // The same batches for all three, loaded before timing.
  std::vector<data::Batch> batches;
  b.loader().start(0, 0);
  while (auto x = b.loader().next()) batches.push_back(*x);
  train::Trainer* trainers[3] = {&a, &b, &c};
  std::vector<double> times[3], cpu[3];
  for (auto* t : trainers) t->train_step(batches[0], 0, 0);  // warm-up
  for (int64_t r = 0; r < rounds; ++r) {
    for (int k = 0; k < 3; ++k) {
      const auto& x = batches[(r + 1) % batches.size()];
      const auto t0 = Clock::now();
      const double c0 = bench::cpu_seconds();
      trainers[k]->train_step(x, 0, x.step);
      cpu[k].push_back(bench::cpu_seconds() - c0);
      times[k].push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  const double wa = bench::median(times[0]), wb = bench::median(times[1]), wc = bench::median(times[2]);
  const double ca = bench::median(cpu[0]), cb = bench::median(cpu[1]), cc = bench::median(cpu[2]);
  std::printf(
      "starft_step_bench: ViT-B/16 proportions / 4 (112 px, patch 8, vision 192x%lld, text 128x%lld, "
      "embed 128, context 77), batch %lld, %d thread(s), %s, median of %lld steps\n",
      static_cast<long long>(layers), static_cast<long long>(layers), static_cast<long long>(batch), threads,
      precision.c_str(), static_cast<long long>(rounds));
  std::printf("                                               wall ms/step   CPU ms/step\n");
  std::printf("  (a) FLYP alone                              %10.1f  %12.1f\n", 1e3 * wa, 1e3 * ca);
  std::printf("  (b) StarFT: cache + dedup + truncation      %10.1f  %12.1f\n", 1e3 * wb, 1e3 * cb);
  std::printf("  (c) StarFT as the reference computes it     %10.1f  %12.1f\n", 1e3 * wc, 1e3 * cc);
  std::printf("  (b)/(a) = %.3f CPU, %.3f wall  (target <= 1.15)\n", cb / ca, wb / wa);
  std::printf("  (c)/(b) = %.3f CPU, %.3f wall  (target >= 1.4)\n", cc / cb, wc / wb);
  return 0;
}
