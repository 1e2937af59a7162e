#pragma once
// Tiny stores and configurations for the trainer tests: images whose colour depends on the class
// (learnable in a few steps) plus noise, 32 px like the tiny fixture model.
#include <opencv2/core.hpp>

#include <string>
#include <vector>

#include "data/shard_writer.h"
#include "test_util.h"
#include "train/config.h"

namespace starft::testing {

inline void make_train_store(const std::string& dir, int64_t count = 24, bool captions = false, int size = 32,
                             uint64_t seed = 1) {
  data::Manifest m;
  m.dataset = "trainer-test";
  m.split = "train";
  m.class_names = {"tench", "goldfish", "great white shark", "tiger shark"};
  m.image_size = size;
  m.shard_size = 10;
  m.has_captions = captions;
  data::StoreWriter w(dir, m, false);
  cv::RNG rng(seed);
  const cv::Scalar colours[] = {{220, 40, 40}, {40, 220, 40}, {40, 40, 220}, {220, 220, 40}};
  const std::vector<std::string> places = {"in the snow", "on the beach", "in a forest"};
  for (int64_t i = 0; i < count; ++i) {
    const int label = static_cast<int>(i % 4);
    cv::Mat noise(size, size, CV_8UC3);
    rng.fill(noise, cv::RNG::NORMAL, 0, 30);
    cv::Mat img(size, size, CV_8UC3, colours[label]);
    img += noise;
    data::SampleMeta meta;
    meta.label = label;
    meta.source = "sample" + std::to_string(i);
    if (captions) meta.caption = "a photo of a " + m.class_names[label] + " " + places[i % 3] + ".";
    w.add(img, meta);
  }
  w.finish();
}

// A StarFT configuration on the tiny fixture model that trains in seconds.
inline train::TrainConfig tiny_config(const std::string& store, const std::string& run_dir) {
  train::TrainConfig c;
  c.weights = fixture("clip/tiny_clip_openai.safetensors");
  c.model = "tiny";  // the fixture's architecture (tests/tiny_clip.h)
  c.vocab = fixture("clip/bpe_simple_vocab_16e6.txt.gz");
  c.store = store;
  c.run_dir = run_dir;
  c.epochs = 2;
  c.batch_size = 8;
  c.lr = 1e-4;
  c.warmup_steps = 2;
  c.weight_decay = 0.1;
  c.lambda = 0.5;
  c.workers = 1;
  c.log_every = 1;
  c.seed = 3;
  return c;
}

}  // namespace starft::testing
