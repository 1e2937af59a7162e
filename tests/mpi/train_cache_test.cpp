// The teacher cache built by all ranks of the job (each on its own slice, merged by rank 0)
// equals the cache built by one process.
#include <gtest/gtest.h>

#include <filesystem>

#include "clip/tokenizer.h"
#include "clip/weights.h"
#include "data/store.h"
#include "distributed/runtime.h"
#include "distributed/thread_communicator.h"
#include "test_util.h"
#include "tiny_clip.h"
#include "data/templates.h"
#include "train/teacher_cache.h"
#include "train/teacher_cache_build.h"
#include "train_test_store.h"

using namespace starft;
using namespace starft::train;
namespace fs = std::filesystem;

TEST(TrainCache, AllRanksBuildTheSameCacheAsOneProcess) {
  auto& rt = distributed::Runtime::get();
  auto& comm = rt.mpi();
  auto id = torch::tensor({static_cast<int64_t>(comm.rank() == 0 ? ::getpid() : 0)});
  comm.broadcast(id, 0, "test_dir");
  const fs::path dir = fs::temp_directory_path() / ("starft-mpi-cache-" + std::to_string(id.item<int64_t>()));
  if (comm.rank() == 0) {
    fs::create_directories(dir);
    starft::testing::make_train_store((dir / "store").string(), 23);  // not a multiple of the ranks
  }
  comm.barrier("store_written");
  auto teacher = clip::load_weights(starft::testing::fixture("clip/tiny_clip_openai.safetensors"),
                                    starft::testing::tiny_options());
  teacher->eval();
  data::Store store((dir / "store").string());
  auto tokenizer = clip::Tokenizer::load(starft::testing::fixture("clip/bpe_simple_vocab_16e6.txt.gz"));
  const auto pool = data::load_templates("quality");
  CacheBuildOptions o;
  o.batch_size = 4;
  o.workers = 1;
  build_teacher_cache((dir / "all.h5").string(), teacher, store, tokenizer, pool, o, comm);
  if (comm.rank() == 0) {
    distributed::ThreadGroup one(1);
    build_teacher_cache((dir / "one.h5").string(), teacher, store, tokenizer, pool, o, one.comm(0));
    TeacherCache all((dir / "all.h5").string()), single((dir / "one.h5").string());
    EXPECT_EQ(all.fingerprint().to_json(), single.fingerprint().to_json());
    EXPECT_EQ(all.templates(), pool);
    EXPECT_DOUBLE_EQ(all.teacher_scale(), single.teacher_scale());
    auto idx = torch::arange(23, torch::kLong).flip(0);
    auto a = all.image_features(idx), b = single.image_features(idx);
    EXPECT_LT((a - b).abs().max().item<double>(), 1e-5);
    EXPECT_LT((a.norm(2, 1) - 1).abs().max().item<double>(), 1e-5);  // normalised rows
    auto labels = torch::arange(4, torch::kLong).repeat_interleave(static_cast<int64_t>(pool.size()));
    auto tpl = torch::arange(static_cast<int64_t>(pool.size()), torch::kLong).repeat(4);
    EXPECT_LT((all.prompt_features(labels, tpl) - single.prompt_features(labels, tpl)).abs().max().item<double>(),
              1e-5);
    // No part files are left behind.
    for (const auto& e : fs::directory_iterator(dir)) {
      EXPECT_EQ(e.path().filename().string().find(".part-"), std::string::npos) << e.path();
    }
  }
  comm.barrier("checked");
  if (comm.rank() == 0) fs::remove_all(dir);
}
