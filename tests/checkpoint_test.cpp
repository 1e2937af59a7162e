// Checkpoint selection for `--resume latest` and `export --checkpoint latest`: the newest
// complete checkpoint, with damaged newer ones skipped and named.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <fstream>

#include "clip/safetensors.h"
#include "train/checkpoint.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace starft;
using starft::testing::TempDir;
using starft::testing::error_of;

namespace {

// A checkpoint directory as write_checkpoint lays it out, with small tensors.
fs::path make_checkpoint(const TempDir& run, int64_t step, bool head = false) {
  const fs::path dir = fs::path(train::checkpoints_dir(run.path().string())) / train::checkpoint_name(step);
  fs::create_directories(dir);
  safetensors::save((dir / "weights.safetensors").string(), {{"w", torch::arange(1000, torch::kFloat)}});
  safetensors::save((dir / "optimizer.safetensors").string(), {{"m", torch::ones({64})}});
  if (head) safetensors::save((dir / "head.safetensors").string(), {{"head.weight", torch::ones({2, 3})}});
  train::TrainState state;
  state.step = step;
  std::ofstream(dir / "state.json") << state.to_json().dump();
  return dir;
}

}  // namespace

TEST(CheckpointTest, LatestIsTheNewestCompleteCheckpoint) {
  TempDir run;
  EXPECT_FALSE(train::resolve_checkpoint("latest", run.path().string()).has_value());
  const fs::path older = make_checkpoint(run, 3), newer = make_checkpoint(run, 6, true);
  EXPECT_EQ(train::checkpoint_problem(newer.string()), "");
  EXPECT_EQ(*train::resolve_checkpoint("latest", run.path().string()), newer.string());
}

TEST(CheckpointTest, DamagedNewerCheckpointsAreSkippedSayingWhy) {
  struct Damage {
    const char* name;
    std::function<void(const fs::path&)> apply;
    const char* why;
  };
  const std::vector<Damage> damages = {
      {"weights cut short", [](const fs::path& d) { fs::resize_file(d / "weights.safetensors", 1000); },
       "weights.safetensors is 1000 bytes"},
      {"weights cut inside the header", [](const fs::path& d) { fs::resize_file(d / "weights.safetensors", 20); },
       "weights.safetensors is cut short inside its header"},
      {"optimizer missing", [](const fs::path& d) { fs::remove(d / "optimizer.safetensors"); },
       "optimizer.safetensors is missing"},
      {"head cut short", [](const fs::path& d) { fs::resize_file(d / "head.safetensors", 30); }, "head.safetensors"},
      {"state.json cut", [](const fs::path& d) { fs::resize_file(d / "state.json", 10); }, "state.json"},
      {"weights grown", [](const fs::path& d) { std::ofstream(d / "weights.safetensors", std::ios::app) << "xx"; },
       "its header describes"},
  };
  for (const auto& damage : damages) {
    TempDir run;
    const fs::path older = make_checkpoint(run, 3), newer = make_checkpoint(run, 6, true);
    damage.apply(newer);
    const std::string problem = train::checkpoint_problem(newer.string());
    EXPECT_NE(problem.find(damage.why), std::string::npos) << damage.name << ": " << problem;
    EXPECT_EQ(*train::resolve_checkpoint("latest", run.path().string()), older.string()) << damage.name;
    // Given by name, the damaged one is still what is asked for (loading it then fails).
    EXPECT_EQ(*train::resolve_checkpoint(newer.string(), run.path().string()), newer.string());
  }
}

TEST(CheckpointTest, EveryCheckpointDamagedIsAnErrorNamingThem) {
  TempDir run;
  const fs::path a = make_checkpoint(run, 3), b = make_checkpoint(run, 6);
  fs::resize_file(a / "weights.safetensors", 100);
  fs::resize_file(b / "weights.safetensors", 100);
  const std::string err = error_of([&] { train::resolve_checkpoint("latest", run.path().string()); });
  EXPECT_NE(err.find("every checkpoint is damaged"), std::string::npos) << err;
  EXPECT_NE(err.find(a.string()), std::string::npos) << err;
  EXPECT_NE(err.find(b.string()), std::string::npos) << err;
}
