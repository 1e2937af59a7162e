// Checkpoint selection for `--resume latest` and `export --checkpoint latest`: the newest
// complete checkpoint, with damaged newer ones skipped and named; the checksums that find data
// changed after it was written.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "clip/safetensors.h"
#include "clip/weights.h"
#include "train/checkpoint.h"
#include "test_util.h"
#include "tiny_clip.h"

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

// A checkpoint written by write_checkpoint (with checksums): the tiny model, and optimizer state of
// 40,000 random floats (160 KB).
fs::path write_real_checkpoint(const TempDir& run, int64_t step, bool head = false) {
  static auto model = clip::load_weights(starft::testing::fixture("clip/tiny_clip_openai.safetensors"),
                                         starft::testing::tiny_options());
  train::CheckpointContents c;
  c.model = &model;
  c.optimizer["m"] = torch::rand({40000});
  if (head) c.head["head.weight"] = torch::rand({2, 3});
  c.state.step = step;
  c.state.torch_rng = train::capture_torch_rng();
  return train::write_checkpoint(run.path().string(), c, 10);
}

// Overwrites `n` bytes in the middle of `path` with zeros, keeping its size: data that never
// reached the file server.
void zero_middle(const fs::path& path, size_t n) {
  const auto size = fs::file_size(path);
  ASSERT_GT(size, 2 * n);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(size / 2));
  const std::vector<char> zeros(n, 0);
  f.write(zeros.data(), static_cast<std::streamsize>(n));
  ASSERT_TRUE(static_cast<bool>(f));
  f.close();
  ASSERT_EQ(fs::file_size(path), size);
}

// What the default logger writes while it lives.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(text_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  std::string text() const { return text_.str(); }

 private:
  std::ostringstream text_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

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
    // Given by name, the damaged one is refused, saying why.
    const std::string err = error_of([&] { train::resolve_checkpoint(newer.string(), run.path().string()); });
    EXPECT_NE(err.find(damage.why), std::string::npos) << damage.name << ": " << err;
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

TEST(CheckpointTest, WrittenCheckpointsRecordTheCrc32OfEveryFile) {
  TempDir run;
  const fs::path dir = write_real_checkpoint(run, 4, true);
  nlohmann::json state;
  std::ifstream(dir / "state.json") >> state;
  ASSERT_TRUE(state.contains("checksums")) << state.dump();
  for (const char* name : {"weights.safetensors", "optimizer.safetensors", "head.safetensors"}) {
    const std::string crc = state["checksums"].value(name, "");
    EXPECT_EQ(crc.size(), 14u) << name << ": " << crc;
    EXPECT_EQ(crc.rfind("crc32:", 0), 0u) << name << ": " << crc;
  }
  EXPECT_EQ(train::checkpoint_problem(dir.string()), "");
  EXPECT_EQ(*train::resolve_checkpoint(dir.string(), run.path().string()), dir.string());
  EXPECT_EQ(train::read_train_state(dir.string()).step, 4);
}

// 4 KiB zeroed in the weights or 64 KiB in the optimizer state, the size and header unchanged:
// `latest` skips the checkpoint with the reason, naming it explicitly is an error naming the file.
TEST(CheckpointTest, ZeroedDataAtTheSameSizeIsSkippedByLatestAndRefusedByName) {
  for (const auto& [file, bytes] :
       std::vector<std::pair<std::string, size_t>>{{"weights.safetensors", 4096}, {"optimizer.safetensors", 65536}}) {
    TempDir run;
    const fs::path older = write_real_checkpoint(run, 3), newer = write_real_checkpoint(run, 6);
    zero_middle(newer / file, bytes);
    const std::string why = file + ": checksum mismatch, the data changed after it was written";
    EXPECT_EQ(train::checkpoint_problem(newer.string()), why);
    LogCapture log;
    EXPECT_EQ(*train::resolve_checkpoint("latest", run.path().string()), older.string()) << file;
    EXPECT_NE(log.text().find("checkpoint " + newer.string() + " is damaged (" + why + "); skipping it"),
              std::string::npos)
        << log.text();
    const std::string err = error_of([&] { train::resolve_checkpoint(newer.string(), run.path().string()); });
    EXPECT_NE(err.find(newer.string()), std::string::npos) << err;
    EXPECT_NE(err.find(why), std::string::npos) << err;
  }
}

TEST(CheckpointTest, CheckpointsWithoutChecksumsStillLoadSayingTheyAreUnverified) {
  // One laid out by hand as before checksums, one written now with its checksums taken out.
  for (const bool written : {false, true}) {
    TempDir run;
    fs::path dir;
    if (written) {
      dir = write_real_checkpoint(run, 5);
      nlohmann::json state;
      std::ifstream(dir / "state.json") >> state;
      state.erase("checksums");
      std::ofstream(dir / "state.json") << state.dump(2);
    } else {
      dir = make_checkpoint(run, 5);
    }
    EXPECT_EQ(train::checkpoint_problem(dir.string()), "");
    LogCapture log;
    EXPECT_EQ(*train::resolve_checkpoint("latest", run.path().string()), dir.string());
    EXPECT_EQ(*train::resolve_checkpoint(dir.string(), run.path().string()), dir.string());
    EXPECT_NE(log.text().find("checkpoint " + dir.string() + " was written before checkpoints recorded checksums"),
              std::string::npos)
        << log.text();
    EXPECT_NE(log.text().find("could not be verified"), std::string::npos) << log.text();
  }
}
