// Prefetch loader: batch content, independence from the thread count, exact resume, errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "common/error.h"
#include "data/loader.h"
#include "data/shard_writer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace starft;
using namespace starft::data;
using starft::testing::TempDir;

namespace {

// 23 samples of 40 px in shards of 5, with groups and captions.
void make_store(const std::string& dir) {
  Manifest m;
  m.dataset = "loader";
  m.split = "train";
  m.class_names = {"a", "b", "c", "d"};
  m.image_size = 40;
  m.shard_size = 5;
  m.has_groups = true;
  m.has_captions = true;
  StoreWriter w(dir, m, false);
  cv::RNG rng(1);
  for (int i = 0; i < 23; ++i) {
    cv::Mat img(40, 40, CV_8UC3);
    rng.fill(img, cv::RNG::UNIFORM, 0, 256);
    SampleMeta meta;
    meta.label = i % 4;
    meta.group = i % 3;
    meta.caption = "caption " + std::to_string(i);
    meta.source = "s" + std::to_string(i);
    w.add(img, meta);
  }
  w.finish();
}

SamplerOptions sampler_options(const Store& store, int world, int rank) {
  SamplerOptions o;
  o.num_samples = store.size();
  o.world_size = world;
  o.rank = rank;
  o.batch_size = 4;
  o.seed = 12;
  return o;
}

std::vector<Batch> all_batches(Loader& loader) {
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

void expect_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].step, b[i].step);
    EXPECT_TRUE(torch::equal(a[i].images, b[i].images)) << "batch " << i;
    EXPECT_TRUE(torch::equal(a[i].labels, b[i].labels));
    EXPECT_TRUE(torch::equal(a[i].groups, b[i].groups));
    EXPECT_TRUE(torch::equal(a[i].indices, b[i].indices));
    EXPECT_EQ(a[i].captions, b[i].captions);
  }
}

}  // namespace

TEST(LoaderTest, BatchesFollowTheSamplerAndCarryTheFields) {
  TempDir dir;
  make_store(dir.path().string());
  Store store(dir.path().string());
  DistributedSampler sampler(sampler_options(store, 2, 1));
  LoaderOptions o;
  o.augment.output_size = 32;
  Loader loader(store, sampler, o);
  loader.start(3);
  auto batches = all_batches(loader);
  auto order = sampler.indices(3);  // 12 samples -> 3 batches of 4
  ASSERT_EQ(batches.size(), 3u);
  for (size_t k = 0; k < batches.size(); ++k) {
    const Batch& b = batches[k];
    EXPECT_EQ(b.epoch, 3);
    EXPECT_EQ(b.step, static_cast<int64_t>(k));
    ASSERT_EQ(b.images.sizes(), (std::vector<int64_t>{4, 3, 32, 32}));
    EXPECT_EQ(b.images.dtype(), torch::kFloat32);
    for (int r = 0; r < 4; ++r) {
      int64_t index = order[k * 4 + r];
      EXPECT_EQ(b.indices[r].item<int64_t>(), index);
      EXPECT_EQ(b.labels[r].item<int64_t>(), store.labels()[index]);
      EXPECT_EQ(b.groups[r].item<int64_t>(), store.groups()[index]);
      EXPECT_EQ(b.captions[r], "caption " + std::to_string(index));
      // The row is the augmented view of that sample.
      std::vector<float> want(3 * 32 * 32);
      augment(store.get(index).image, o.augment, 3, index, want.data());
      EXPECT_TRUE(torch::equal(b.images[r], torch::from_blob(want.data(), {3, 32, 32})));
    }
  }
  EXPECT_EQ(loader.state().step, 3);
  EXPECT_FALSE(loader.next().has_value());
}

TEST(LoaderTest, SameBatchesWithOneAndFourWorkers) {
  TempDir dir;
  make_store(dir.path().string());
  Store store(dir.path().string());
  DistributedSampler sampler(sampler_options(store, 1, 0));
  std::vector<Batch> reference;
  for (int workers : {1, 4}) {
    LoaderOptions o;
    o.workers = workers;
    o.prefetch_batches = workers == 1 ? 1 : 5;
    o.augment.output_size = 24;
    Loader loader(store, sampler, o);
    loader.start(1);
    auto batches = all_batches(loader);
    EXPECT_EQ(batches.size(), 6u);  // 23 samples, batch 4: 5 full and one of 3
    EXPECT_EQ(batches.back().images.size(0), 3);
    if (reference.empty()) {
      reference = std::move(batches);
    } else {
      expect_same(reference, batches);
    }
  }
}

TEST(LoaderTest, ResumeReproducesTheRemainingBatches) {
  TempDir dir;
  make_store(dir.path().string());
  Store store(dir.path().string());
  DistributedSampler sampler(sampler_options(store, 1, 0));
  LoaderOptions o;
  o.workers = 2;
  o.augment.output_size = 16;
  Loader full(store, sampler, o);
  full.start(2);
  auto uninterrupted = all_batches(full);

  // Stop after 2 batches, save the position as JSON, resume in a new loader.
  Loader first(store, sampler, o);
  first.start(2);
  first.next();
  first.next();
  std::string saved = first.state().to_json().dump();
  Loader resumed(store, sampler, o);
  resumed.start(SamplerState::from_json(nlohmann::json::parse(saved)));
  auto rest = all_batches(resumed);
  std::vector<Batch> expected(uninterrupted.begin() + 2, uninterrupted.end());
  expect_same(expected, rest);

  // A position at the end of an epoch resumes at the start of the next one.
  Loader next_epoch(store, sampler, o);
  next_epoch.start(full.state());
  auto b = next_epoch.next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->epoch, 3);
  EXPECT_EQ(b->step, 0);
}

TEST(LoaderTest, StartingAgainMidEpochRestartsCleanly) {
  TempDir dir;
  make_store(dir.path().string());
  Store store(dir.path().string());
  DistributedSampler sampler(sampler_options(store, 1, 0));
  LoaderOptions o;
  o.augment.output_size = 16;
  Loader loader(store, sampler, o);
  loader.start(0);
  auto first = loader.next();
  loader.start(0);  // abandon the epoch in progress
  auto again = loader.next();
  ASSERT_TRUE(first && again);
  EXPECT_TRUE(torch::equal(first->images, again->images));
}

TEST(LoaderTest, ReadErrorReachesTheConsumer) {
  TempDir dir;
  make_store(dir.path().string());
  Store store(dir.path().string());
  fs::remove(dir / "shard-00003.h5");  // after the store was opened and checked
  DistributedSampler sampler(sampler_options(store, 1, 0));
  LoaderOptions o;
  o.augment.output_size = 16;
  Loader loader(store, sampler, o);
  loader.start(0);
  try {
    while (loader.next()) {
    }
    FAIL() << "no error for a missing shard";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shard-00003.h5"), std::string::npos) << e.what();
  }
}

TEST(LoaderTest, RecycledBuffersNeverOverwriteWhatTheConsumerHolds) {
  TempDir dir;
  make_store(dir.path().string());
  Store store(dir.path().string());
  DistributedSampler sampler(sampler_options(store, 1, 0));
  LoaderOptions o;
  o.workers = 2;
  o.prefetch_batches = 1;
  o.augment.output_size = 16;
  Loader loader(store, sampler, o);
  // Keep only a view of one row of each batch (the batch itself is dropped), over three
  // epochs: the loader must not reuse a buffer that a view still points into.
  struct Kept {
    torch::Tensor row;
    int64_t epoch, index;
  };
  std::vector<Kept> kept;
  for (int64_t epoch = 0; epoch < 4; ++epoch) {
    loader.start(epoch);
    while (auto b = loader.next()) {
      // A detached tensor shares only the storage (first epochs); a view keeps the batch
      // tensor itself alive (later epochs).
      torch::Tensor row = epoch < 2 ? b->images.detach().select(0, 1) : b->images[1];
      kept.push_back({row, epoch, b->indices[1].item<int64_t>()});
    }
  }
  for (const auto& k : kept) {
    std::vector<float> want(3 * 16 * 16);
    augment(store.get(k.index).image, o.augment, k.epoch, k.index, want.data());
    EXPECT_TRUE(torch::equal(k.row, torch::from_blob(want.data(), {3, 16, 16}))) << "epoch " << k.epoch;
  }
}

TEST(LoaderTest, BatchTensorsAreReusedOnceDropped) {
  TempDir dir;
  make_store(dir.path().string());
  Store store(dir.path().string());
  DistributedSampler sampler(sampler_options(store, 1, 0));
  LoaderOptions o;
  o.prefetch_batches = 2;
  o.augment.output_size = 16;
  Loader loader(store, sampler, o);
  std::set<void*> buffers;
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    loader.start(epoch);
    while (auto b = loader.next())
      if (b->images.size(0) == 4) buffers.insert(b->images.data_ptr());
  }
  // 15 full batches drawn from at most prefetch + 2 recycled tensors.
  EXPECT_LE(buffers.size(), 4u);
}
