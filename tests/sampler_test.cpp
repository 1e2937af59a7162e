// Distributed sampler: permutations, rank slices, saved positions.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "common/error.h"
#include "data/rng.h"
#include "data/sampler.h"

using namespace starft;
using namespace starft::data;

TEST(SamplerTest, PermutationDependsOnlyOnSeedAndEpoch) {
  auto p = DistributedSampler::permutation(1000, 7, 3);
  auto sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(p, DistributedSampler::permutation(1000, 7, 3));
  EXPECT_NE(p, DistributedSampler::permutation(1000, 7, 4));
  EXPECT_NE(p, DistributedSampler::permutation(1000, 8, 3));
}

TEST(SamplerTest, PermutationIsPortable) {
  // Fixed values: the generator is our own SplitMix64 + Fisher-Yates, so these must never
  // change between platforms or compilers (a change would alter every resumed run).
  EXPECT_EQ(mix64(0), 0u);
  EXPECT_EQ(mix64(1), 0x5692161d100b05e5ULL);
  Rng rng({1, 2, 3});
  Rng same({1, 2, 3});
  EXPECT_EQ(rng.next(), same.next());
  auto p = DistributedSampler::permutation(10, 42, 0);
  // Computed by an independent Python implementation of the same generator.
  std::vector<int64_t> expected{1, 9, 0, 7, 6, 3, 4, 2, 5, 8};
  EXPECT_EQ(p, expected);
}

TEST(SamplerTest, RngBelowIsUniform) {
  Rng rng({5});
  std::vector<int> counts(6, 0);
  for (int i = 0; i < 60000; ++i) counts[rng.below(6)]++;
  for (int c : counts) EXPECT_NEAR(c, 10000, 400);
  for (int i = 0; i < 1000; ++i) {
    double u = rng.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
}

// Slices of every rank for one epoch.
static std::vector<std::vector<int64_t>> slices(int64_t n, int world, Tail tail, int64_t epoch, bool shuffle = true) {
  std::vector<std::vector<int64_t>> out;
  for (int r = 0; r < world; ++r) {
    SamplerOptions o;
    o.num_samples = n;
    o.world_size = world;
    o.rank = r;
    o.batch_size = 2;
    o.seed = 11;
    o.tail = tail;
    o.shuffle = shuffle;
    DistributedSampler s(o);
    out.push_back(s.indices(epoch));
    EXPECT_EQ(static_cast<int64_t>(out.back().size()), s.num_local());
  }
  return out;
}

TEST(SamplerTest, SlicesAreDisjointAndCoverForOneTwoThreeRanks) {
  for (int64_t n : {1, 10, 11, 12, 97}) {
    for (int world : {1, 2, 3}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " world=" + std::to_string(world));
      // pad: equal sizes, every sample at least once, at most (W - 1) extra copies in all.
      auto pad = slices(n, world, Tail::pad, 2);
      std::map<int64_t, int> seen;
      for (const auto& s : pad) {
        EXPECT_EQ(s.size(), pad[0].size());
        for (auto i : s) seen[i]++;
      }
      EXPECT_EQ(static_cast<int64_t>(seen.size()), n);
      int64_t total = static_cast<int64_t>(pad[0].size()) * world;
      EXPECT_EQ(total, (n + world - 1) / world * world);
      EXPECT_LT(total - n, world);
      if (n >= world) {
        for (auto& [i, c] : seen) EXPECT_LE(c, 2);
      }
      // uneven: an exact partition.
      auto uneven = slices(n, world, Tail::uneven, 2);
      std::set<int64_t> all;
      size_t count = 0;
      for (const auto& s : uneven) {
        all.insert(s.begin(), s.end());
        count += s.size();
        EXPECT_LE(s.size(), uneven[0].size());
        EXPECT_GE(s.size() + 1, uneven[0].size());
      }
      EXPECT_EQ(count, static_cast<size_t>(n));
      EXPECT_EQ(static_cast<int64_t>(all.size()), n);
      // drop: disjoint, equal sizes, fewer than W samples left out.
      if (n >= world) {
        auto drop = slices(n, world, Tail::drop, 2);
        std::set<int64_t> kept;
        size_t kept_count = 0;
        for (const auto& s : drop) {
          EXPECT_EQ(s.size(), drop[0].size());
          kept.insert(s.begin(), s.end());
          kept_count += s.size();
        }
        EXPECT_EQ(kept.size(), kept_count);
        EXPECT_LT(n - static_cast<int64_t>(kept_count), world);
      }
    }
  }
}

TEST(SamplerTest, RanksTakeInterleavedPositionsOfOneGlobalOrder) {
  // As PyTorch's DistributedSampler: rank r takes positions r, r + W, ... of the permutation.
  auto perm = DistributedSampler::permutation(12, 11, 5);
  auto s = slices(12, 3, Tail::pad, 5);
  for (int r = 0; r < 3; ++r)
    for (size_t i = 0; i < s[r].size(); ++i) EXPECT_EQ(s[r][i], perm[r + 3 * i]);
  auto ordered = slices(7, 2, Tail::uneven, 0, false);
  EXPECT_EQ(ordered[0], (std::vector<int64_t>{0, 2, 4, 6}));
  EXPECT_EQ(ordered[1], (std::vector<int64_t>{1, 3, 5}));
}

TEST(SamplerTest, StepsPerEpoch) {
  SamplerOptions o;
  o.num_samples = 10;
  o.world_size = 3;
  o.batch_size = 3;
  DistributedSampler pad(o);  // 4 per rank -> 2 steps (3 + 1)
  EXPECT_EQ(pad.num_local(), 4);
  EXPECT_EQ(pad.steps_per_epoch(), 2);
  o.drop_last_batch = true;
  EXPECT_EQ(DistributedSampler(o).steps_per_epoch(), 1);
}

TEST(SamplerTest, StateSavesAndRestores) {
  SamplerOptions o;
  o.num_samples = 100;
  o.world_size = 2;
  o.batch_size = 8;
  o.seed = 99;
  DistributedSampler s(o);
  SamplerState st = s.state(3, 5);
  SamplerState back = SamplerState::from_json(nlohmann::json::parse(st.to_json().dump()));
  EXPECT_TRUE(back == st);
  EXPECT_EQ(back.epoch, 3);
  EXPECT_EQ(back.step, 5);
  EXPECT_NO_THROW(s.check_resumable(back));

  SamplerOptions other = o;
  other.world_size = 4;
  try {
    DistributedSampler(other).check_resumable(back);
    FAIL() << "a different world size was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("world size is 2 but this run has 4"), std::string::npos) << e.what();
  }
  other = o;
  other.seed = 1;
  EXPECT_THROW(DistributedSampler(other).check_resumable(back), Error);
  EXPECT_THROW(SamplerState::from_json(nlohmann::json{{"epoch", 1}}), Error);
}

TEST(SamplerTest, BadOptionsAreRefused) {
  SamplerOptions o;
  o.num_samples = 0;
  EXPECT_THROW(DistributedSampler{o}, Error);
  o.num_samples = 5;
  o.rank = 2;
  o.world_size = 2;
  EXPECT_THROW(DistributedSampler{o}, Error);
  o.rank = 0;
  o.batch_size = 0;
  EXPECT_THROW(DistributedSampler{o}, Error);
  EXPECT_THROW(parse_tail("wrap"), Error);
  EXPECT_EQ(parse_tail("drop"), Tail::drop);
}
