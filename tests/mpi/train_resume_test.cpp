// Exact resume over MPI ranks: a run stopped mid-epoch (as on a stop signal) and resumed with
// --resume latest ends with weights bitwise equal to an uninterrupted run. Also: every rank
// agrees on the stop signal, and the ranks' parameters never diverge.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>

#include "clip/weights.h"
#include "distributed/runtime.h"
#include "distributed/stop_signal.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "train_test_store.h"

using namespace starft;
using namespace starft::train;
namespace fs = std::filesystem;

namespace {

// A directory shared by all ranks (rank 0 creates it and removes it at the end).
class SharedDir {
 public:
  SharedDir() {
    auto& comm = distributed::Runtime::get().mpi();
    auto id = torch::tensor({static_cast<int64_t>(comm.rank() == 0 ? ::getpid() : 0)});
    comm.broadcast(id, 0, "test_dir");
    path_ = fs::temp_directory_path() / ("starft-mpi-train-" + std::to_string(id.item<int64_t>()));
    if (comm.rank() == 0) fs::create_directories(path_);
    comm.barrier("test_dir_created");
  }
  ~SharedDir() {
    distributed::Runtime::get().mpi().barrier("test_dir_done");
    if (distributed::Runtime::get().rank() == 0) fs::remove_all(path_);
  }
  std::string operator/(const std::string& rel) const { return (path_ / rel).string(); }

 private:
  fs::path path_;
};

TrainConfig config_for(const SharedDir& dir, int world) {
  auto c = starft::testing::tiny_config(dir / "store", dir / "run");
  c.batch_size = 2 * world;  // 2 samples per rank
  c.epochs = 2;
  c.teacher = TeacherSource::online;  // no cache to build: the online teacher is exact too
  c.checkpoint_every = 0;
  c.lr = 2e-4;
  return c;
}

void make_store(const SharedDir& dir) {
  auto& comm = distributed::Runtime::get().mpi();
  if (comm.rank() == 0) starft::testing::make_train_store(dir / "store", 18);
  comm.barrier("store_written");
}

}  // namespace

TEST(TrainResume, StoppedMidEpochAndResumedEqualsUninterruptedBitwise) {
  auto& rt = distributed::Runtime::get();
  SharedDir dir;
  make_store(dir);
  auto c = config_for(dir, rt.size());

  auto full = c;
  full.run_dir = dir / "full";
  std::vector<torch::Tensor> expected;
  int64_t per_epoch = 0, stopped_at = 0;
  {
    Trainer t(full, rt.mpi());
    per_epoch = t.steps_per_epoch();
    EXPECT_EQ(t.run(), Trainer::Outcome::finished);
    for (const auto& [name, p] : t.parameters()) expected.push_back(p.detach().clone());
  }
  auto part = c;
  part.run_dir = dir / "part";
  part.stop_after = per_epoch + per_epoch / 2;  // mid-way through the second epoch
  ASSERT_GT(part.stop_after % per_epoch, 0);
  {
    Trainer t(part, rt.mpi());
    EXPECT_EQ(t.run(), Trainer::Outcome::stopped);
    stopped_at = t.state().step;
  }
  EXPECT_EQ(stopped_at, part.stop_after);
  auto resumed = part;
  resumed.stop_after = 0;
  resumed.resume = "latest";
  {
    Trainer t(resumed, rt.mpi());
    EXPECT_EQ(t.state().step, stopped_at);
    EXPECT_EQ(t.run(), Trainer::Outcome::finished);
    EXPECT_EQ(t.state().step, 2 * per_epoch);
    const auto& params = t.parameters();
    ASSERT_EQ(params.size(), expected.size());
    for (size_t i = 0; i < params.size(); ++i) {
      EXPECT_TRUE(torch::equal(params[i].second, expected[i])) << params[i].first << " differs after resume";
    }
  }
  // The exported final checkpoints agree too.
  if (rt.rank() == 0) {
    auto a = safetensors::load(weights_path(*latest_checkpoint(dir / "full"))).tensors;
    auto b = safetensors::load(weights_path(*latest_checkpoint(dir / "part"))).tensors;
    for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  }
}

TEST(TrainResume, AStopSignalOnOneRankStopsEveryRankAfterACheckpoint) {
  auto& rt = distributed::Runtime::get();
  SharedDir dir;
  make_store(dir);
  auto c = config_for(dir, rt.size());
  c.run_dir = dir / "signal";
  Trainer t(c, rt.mpi());
  // The last rank gets SIGUSR1 (as Slurm sends before preemption) before the first step.
  if (rt.rank() == rt.size() - 1) std::raise(SIGUSR1);
  EXPECT_EQ(t.run(), Trainer::Outcome::stopped);
  EXPECT_EQ(t.state().step, 1);
  if (rt.rank() == 0) {
    auto latest = latest_checkpoint(c.run_dir);
    ASSERT_TRUE(latest.has_value());
    EXPECT_EQ(read_train_state(*latest).step, 1);
  }
}
