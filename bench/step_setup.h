#pragma once
// The training set-up shared by the step benchmarks (starft_step_bench, precision_bench): a
// random zero-shot model of the given shape saved as weights, a store of random images with
// ImageNet class names, and teacher caches, all in a temporary directory removed at the end.
#include <opencv2/core.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "clip/tokenizer.h"
#include "clip/weights.h"
#include "data/shard_writer.h"
#include "data/store.h"
#include "distributed/thread_communicator.h"
#include "starft/build_config.h"
#include "data/templates.h"
#include "train/teacher_cache.h"
#include "train/teacher_cache_build.h"
#include "train/trainer.h"

namespace starft::bench {

namespace fs = std::filesystem;

// The process's CPU time (all threads), seconds.
inline double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// ViT-B/16's proportions scaled down to run on a small CPU: 112 px images with patch 8 (196
// patches, as B/16 at 224), widths / 4 (vision 192, text 128, embed 128, heads of 64), `layers`
// layers per tower (B/16 / 4: 3), context 77, the full vocabulary.
inline clip::CLIPConfig vitb16_quarter(int64_t layers = 3) {
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
  return cfg;
}

// The BPE vocabulary of the fixtures ($STARFT_FIXTURES or the configured fixtures directory);
// "" (after a message) when it is missing.
inline std::string fixture_vocab(const char* bench) {
  const char* env = std::getenv("STARFT_FIXTURES");
  const std::string vocab = std::string(env ? env : STARFT_FIXTURES_DIR) + "/clip/bpe_simple_vocab_16e6.txt.gz";
  if (!fs::exists(vocab)) {
    std::fprintf(stderr, "%s: the BPE vocabulary %s is missing (set STARFT_FIXTURES)\n", bench, vocab.c_str());
    return "";
  }
  return vocab;
}

class StepSetup {
 public:
  // `samples` random images of the model's size, 8 classes; weights of `cfg` from seed 1.
  StepSetup(const clip::CLIPConfig& cfg, int64_t samples, const std::string& vocab, const char* name)
      : dir_(fs::temp_directory_path() / (std::string(name) + "-" + std::to_string(getpid()))) {
    fs::create_directories(dir_);
    zero_shot_ = clip::CLIP(cfg);
    clip::init_parameters(zero_shot_, 1);
    clip::save_weights(zero_shot_, (dir_ / "zero_shot.safetensors").string());
    data::Manifest m;
    m.dataset = "bench";
    m.split = "train";
    m.class_names = {"tench",    "goldfish", "great white shark", "tiger shark", "hammerhead shark", "electric ray",
                     "stingray", "rooster"};
    m.image_size = static_cast<int>(cfg.image_size);
    m.shard_size = 256;
    data::StoreWriter w((dir_ / "store").string(), m, false);
    cv::RNG rng(1);
    for (int64_t i = 0; i < samples; ++i) {
      cv::Mat img(m.image_size, m.image_size, CV_8UC3);
      rng.fill(img, cv::RNG::UNIFORM, 0, 256);
      data::SampleMeta meta;
      meta.label = i % static_cast<int64_t>(m.class_names.size());
      w.add(img, meta);
    }
    w.finish();
    base_.weights = (dir_ / "zero_shot.safetensors").string();
    base_.vocab = vocab;
    base_.store = (dir_ / "store").string();
    base_.epochs = 1;
    base_.lr = 1e-5;
    base_.warmup_steps = 0;
    base_.workers = 1;
    base_.spurious_pool = "backgrounds";
  }
  ~StepSetup() { fs::remove_all(dir_); }
  StepSetup(const StepSetup&) = delete;
  StepSetup& operator=(const StepSetup&) = delete;

  // A configuration of this set-up: its weights, store and vocabulary, run directory `run`,
  // teacher cache <dir>/teacher-cache-<precision>.h5.
  train::TrainConfig config(const std::string& run, const std::string& precision, int64_t batch) const {
    auto c = base_;
    c.run_dir = (dir_ / run).string();
    c.precision = precision;
    c.batch_size = batch;
    c.teacher_cache = (dir_ / ("teacher-cache-" + precision + ".h5")).string();
    return c;
  }

  // Builds the teacher cache of `config` (once per precision) with one rank; returns the seconds
  // it took.
  double build_cache(const train::TrainConfig& config, int64_t batch) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!fs::exists(config.teacher_cache_path())) {
      auto tokenizer = clip::Tokenizer::load(base_.vocab);
      data::Store store(base_.store);
      clip::LoadOptions lo;
      lo.precision = parse_precision(config.precision, false);
      auto teacher = clip::load_weights(base_.weights, lo);
      teacher->eval();
      train::CacheBuildOptions o;
      o.batch_size = batch;
      train::build_teacher_cache(config.teacher_cache_path(), teacher, store, tokenizer,
                                 data::load_templates(config.spurious_pool), o, group_.comm(0));
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  distributed::Communicator& comm() { return group_.comm(0); }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
  clip::CLIP zero_shot_{nullptr};
  train::TrainConfig base_;
  distributed::ThreadGroup group_{1};
};

}  // namespace starft::bench
