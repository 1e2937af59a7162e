// Multi-rank store tests (run under mpiexec -np 2 and -np 3): a conversion by all ranks equals
// the single-process one, and the ranks' sampler slices partition the data.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "common/error.h"
#include "data/loader.h"
#include "data/sampler.h"
#include "data/store.h"
#include "distributed/runtime.h"
#include "sharding/convert.h"
#include "sharding/shard_comm.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace starft;
using namespace starft::data;
using nlohmann::json;

namespace {

// Items that need no files: each decodes to a generated image; every 7th one is "corrupt".
std::vector<sharding::SourceItem> generated_items(int n) {
  std::vector<sharding::SourceItem> items;
  for (int i = 0; i < n; ++i) {
    sharding::SourceItem item;
    item.meta.label = i % 3;
    item.meta.group = i % 2;
    item.meta.caption = "item " + std::to_string(i);
    item.meta.source = "gen/" + std::to_string(i);
    item.decode = [i] {
      if (i % 7 == 3) throw Error("generated item " + std::to_string(i) + " is corrupt");
      cv::Mat m(20 + i % 5, 30 - i % 4, CV_8UC3);
      cv::RNG rng(1000 + i);  // decode must be a pure function of the item
      rng.fill(m, cv::RNG::UNIFORM, 0, 256);
      m.at<cv::Vec3b>(0, 0) = cv::Vec3b(i, i, i);
      return m;
    };
    items.push_back(std::move(item));
  }
  return items;
}

sharding::ConvertOptions options(const std::string& out) {
  sharding::ConvertOptions o;
  o.layout.dataset = "generated";
  o.layout.split = "train";
  o.layout.class_names = {"a", "b", "c"};
  o.layout.image_size = 16;
  o.layout.shard_size = 4;
  o.layout.has_groups = true;
  o.layout.has_captions = true;
  o.out = out;
  o.workers = 2;
  return o;
}

// The conversion's collectives on the runtime that tests/mpi/main.cpp started, as `starft shard` runs them.
std::unique_ptr<sharding::ShardComm> runtime_comm() {
  auto& runtime = distributed::Runtime::get();
  return sharding::communicator_comm(runtime.mpi(), runtime.local_size());
}

// A scratch directory made by rank 0 and shared with the others (one node).
class ConverterScratchDir {
 public:
  explicit ConverterScratchDir(sharding::ShardComm& comm) : comm_(comm) {
    if (comm.rank() == 0) own_ = std::make_unique<starft::testing::TempDir>();
    path_ = comm.broadcast(own_ ? own_->path().string() : "");
  }
  ~ConverterScratchDir() { comm_.gather("done"); }  // rank 0 removes it only after everybody is done
  const std::string& path() const { return path_; }

 private:
  sharding::ShardComm& comm_;
  std::unique_ptr<starft::testing::TempDir> own_;
  std::string path_;
};

}  // namespace

TEST(ShardMpiTest, ConversionByAllRanksEqualsOneProcess) {
  auto comm = runtime_comm();
  ASSERT_GE(comm->size(), 2);
  ConverterScratchDir dir(*comm);
  auto items = generated_items(29);  // 8 shards of 4 (the last holds 1), 4 corrupt items
  auto multi = sharding::convert(items, options(dir.path() + "/multi"), *comm);
  EXPECT_EQ(multi.skipped, 4);
  EXPECT_EQ(multi.written, 25);
  if (comm->rank() == 0) {
    auto single_comm = sharding::single_process_comm();
    auto single = sharding::convert(items, options(dir.path() + "/single"), *single_comm);
    EXPECT_EQ(single.manifest.to_json(), multi.manifest.to_json());
    Store a(dir.path() + "/multi"), b(dir.path() + "/single");
    ASSERT_EQ(a.size(), b.size());
    for (int64_t i = 0; i < a.size(); ++i) {
      Sample x = a.get(i), y = b.get(i);
      EXPECT_EQ(cv::norm(x.image, y.image, cv::NORM_INF), 0) << i;
      EXPECT_EQ(x.source, y.source);
      EXPECT_EQ(x.caption, y.caption);
      EXPECT_EQ(x.group, y.group);
    }
    EXPECT_NO_THROW(a.verify());
    EXPECT_EQ(a.manifest().skipped.front().source, "gen/3");
  }
}

TEST(ShardMpiTest, SamplerSlicesPartitionTheDataAcrossRanks) {
  auto comm = runtime_comm();
  for (int64_t n : {10, 11, 97}) {
    for (Tail tail : {Tail::pad, Tail::uneven, Tail::drop}) {
      SamplerOptions o;
      o.num_samples = n;
      o.world_size = comm->size();
      o.rank = comm->rank();
      o.batch_size = 3;
      o.seed = 5;
      o.tail = tail;
      DistributedSampler sampler(o);
      auto gathered = comm->gather(json(sampler.indices(4)).dump());
      if (comm->rank() != 0) continue;
      std::map<int64_t, int> seen;
      std::set<size_t> sizes;
      for (const auto& text : gathered) {
        auto slice = json::parse(text).get<std::vector<int64_t>>();
        sizes.insert(slice.size());
        for (auto i : slice) seen[i]++;
      }
      int64_t total = 0;
      for (auto& [i, c] : seen) total += c;
      const int w = comm->size();
      SCOPED_TRACE("n=" + std::to_string(n) + " tail=" + tail_name(tail));
      if (tail == Tail::uneven) {
        EXPECT_EQ(static_cast<int64_t>(seen.size()), n);
        EXPECT_EQ(total, n);
      } else if (tail == Tail::pad) {
        EXPECT_EQ(sizes.size(), 1u);
        EXPECT_EQ(static_cast<int64_t>(seen.size()), n);
        EXPECT_EQ(total, (n + w - 1) / w * w);
      } else {
        EXPECT_EQ(sizes.size(), 1u);
        EXPECT_EQ(total, n / w * w);
        EXPECT_EQ(static_cast<int64_t>(seen.size()), total);  // disjoint
      }
    }
  }
}
