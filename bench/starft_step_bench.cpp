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
// usage: starft_step_bench [--batch N] [--rounds N] [--threads N] [--layers N]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <time.h>
#include <unistd.h>

#include "clip/tokenizer.h"
#include "clip/weights.h"
#include "common/log.h"
#include "data/shard_writer.h"
#include "data/store.h"
#include "dist/thread_communicator.h"
#include "starft/build_config.h"
#include "train/prompts.h"
#include "train/teacher_cache.h"
#include "train/trainer.h"

using namespace starft;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t batch = 32, rounds = 7, layers = 3;
  int threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--batch")) batch = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--rounds")) rounds = std::stoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--layers")) layers = std::stoll(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: starft_step_bench [--batch N] [--rounds N] [--threads N] [--layers N]\n");
      return 2;
    }
  }
  init_logging(0);
  spdlog::set_level(spdlog::level::warn);
  check_blas();
  torch::set_num_threads(threads);
  const char* fixtures_env = std::getenv("STARFT_FIXTURES");
  const std::string vocab = std::string(fixtures_env ? fixtures_env : STARFT_FIXTURES_DIR) + "/clip/bpe_simple_vocab_16e6.txt.gz";
  if (!fs::exists(vocab)) {
    std::fprintf(stderr, "starft_step_bench: the BPE vocabulary %s is missing (set STARFT_FIXTURES)\n", vocab.c_str());
    return 1;
  }

  clip::CLIPConfig cfg;
  cfg.image_size = 112;
  cfg.patch_size = 8;
  cfg.vision_width = 192;
  cfg.vision_heads = 3;
  cfg.vision_layers = layers;
  cfg.text_width = 128;
  cfg.text_heads = 2;
  cfg.text_layers = layers;
  cfg.embed_dim = 128;

  const fs::path dir = fs::temp_directory_path() / ("starft-step-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  struct Cleanup {
    fs::path d;
    ~Cleanup() { fs::remove_all(d); }
  } cleanup{dir};

  // The zero-shot model (random here; its values do not change the cost) and a store.
  clip::CLIP zero_shot(cfg);
  clip::init_parameters(zero_shot, 1);
  clip::save_weights(zero_shot, (dir / "zero_shot.safetensors").string());
  data::Manifest m;
  m.dataset = "bench";
  m.split = "train";
  m.class_names = {"tench", "goldfish", "great white shark", "tiger shark", "hammerhead shark",
                   "electric ray", "stingray", "rooster"};
  m.image_size = static_cast<int>(cfg.image_size);
  m.shard_size = 256;
  {
    data::StoreWriter w((dir / "store").string(), m, false);
    cv::RNG rng(1);
    for (int64_t i = 0; i < 2 * batch; ++i) {
      cv::Mat img(m.image_size, m.image_size, CV_8UC3);
      rng.fill(img, cv::RNG::UNIFORM, 0, 256);
      data::SampleMeta meta;
      meta.label = i % static_cast<int64_t>(m.class_names.size());
      w.add(img, meta);
    }
    w.finish();
  }

  train::TrainConfig base;
  base.weights = (dir / "zero_shot.safetensors").string();
  base.vocab = vocab;
  base.store = (dir / "store").string();
  base.batch_size = batch;
  base.epochs = 1;
  base.lr = 1e-5;
  base.warmup_steps = 0;
  base.workers = 1;
  base.spurious_pool = "backgrounds";

  dist::ThreadGroup group(1);
  {
    auto tokenizer = clip::Tokenizer::load(vocab);
    data::Store store(base.store);
    zero_shot->eval();
    train::CacheBuildOptions o;
    o.batch_size = batch;
    train::build_teacher_cache(base.teacher_cache_path(), zero_shot, store, tokenizer,
                               train::load_templates(base.spurious_pool), o, group.comm(0));
  }

  auto a_cfg = base, b_cfg = base, c_cfg = base;
  a_cfg.regulariser = "none";
  a_cfg.run_dir = (dir / "a").string();
  b_cfg.teacher = "cache";
  b_cfg.run_dir = (dir / "b").string();
  c_cfg.teacher = "online";
  c_cfg.dedup = false;
  c_cfg.truncate = false;
  c_cfg.run_dir = (dir / "c").string();
  train::Trainer a(a_cfg, group.comm(0)), b(b_cfg, group.comm(0)), c(c_cfg, group.comm(0));

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
      const double c0 = cpu_seconds();
      trainers[k]->train_step(x, 0, x.step);
      cpu[k].push_back(cpu_seconds() - c0);
      times[k].push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  const double wa = median(times[0]), wb = median(times[1]), wc = median(times[2]);
  const double ca = median(cpu[0]), cb = median(cpu[1]), cc = median(cpu[2]);
  std::printf("starft_step_bench: ViT-B/16 proportions / 4 (112 px, patch 8, vision 192x%lld, text 128x%lld, "
              "embed 128, context 77), batch %lld, %d thread(s), median of %lld steps\n",
              static_cast<long long>(layers), static_cast<long long>(layers), static_cast<long long>(batch), threads,
              static_cast<long long>(rounds));
  std::printf("                                               wall ms/step   CPU ms/step\n");
  std::printf("  (a) FLYP alone                              %10.1f  %12.1f\n", 1e3 * wa, 1e3 * ca);
  std::printf("  (b) StarFT: cache + dedup + truncation      %10.1f  %12.1f\n", 1e3 * wb, 1e3 * cb);
  std::printf("  (c) StarFT as the reference computes it     %10.1f  %12.1f\n", 1e3 * wc, 1e3 * cc);
  std::printf("  (b)/(a) = %.3f CPU, %.3f wall  (target <= 1.15)\n", cb / ca, wb / wa);
  std::printf("  (c)/(b) = %.3f CPU, %.3f wall  (target >= 1.4)\n", cc / cb, wc / wb);
  return 0;
}
