// Several hosts on one machine (tests/multihost/README.md): each test runs inside
// `tests/multihost/cluster.sh run --hosts 2 -- starft_tests --gtest_filter=MultiHost...`, which made the
// hosts as network namespaces and passes $STARFT_MH_MPIRUN (ranks across the hosts, Open MPI over
// TCP) and $STARFT_MH_CLUSTER (cut / restore / kill a host). Ranks 0, 1 run on host 0 and 2, 3 on
// host 1, so the node split, the local ranks and the TCP transport between hosts are real.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "clip/safetensors.h"
#include "eval_test_store.h"
#include "starft/build_config.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train_test_store.h"

using namespace starft;
using starft::testing::fixture;
using starft::testing::run_command;
using starft::testing::starft_binary;
using starft::testing::TempDir;
using starft::testing::wait_until;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A command started in the background (its own process group), output to a file.
class Background {
 public:
  Background(const std::string& command, const std::string& log) : log_(log) {
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      execl("/bin/sh", "sh", "-c", ("exec " + command + " > " + log + " 2>&1").c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~Background() {
    if (running()) {
      kill(-pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool running() {
    if (exited_) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return !exited_;
  }
  int status() const { return status_; }
  std::string output() const { return read_text(log_); }
  void kill_all() {
    if (running()) kill(-pid_, SIGKILL);
    wait_until([&] { return !running(); }, 10);
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = -1;
  std::string log_;
};

struct Cluster {
  std::string mpirun = env("STARFT_MH_MPIRUN"), control = env("STARFT_MH_CLUSTER"), hosts = env("STARFT_MH_HOSTS");
  bool ready() const { return !mpirun.empty() && !control.empty(); }
  std::string host(int i) const {
    std::istringstream in(hosts);
    std::string h;
    for (int k = 0; k <= i; ++k) in >> h;
    return h;
  }
  // 2 hosts x 2 ranks.
  std::string across(const std::string& args) const {
    return mpirun + " -np 4 --npernode 2 " + starft_binary() + " " + args;
  }
  int ctl(const std::string& what) const { return run_command(control + " " + what); }
  // How many starft processes still run on host i.
  int ranks_alive(int i) const {
    std::string out;
    run_command(control + " pids " + std::to_string(i), &out);
    return static_cast<int>(std::count(out.begin(), out.end(), '\n'));
  }
};

#define REQUIRE_CLUSTER(c)                                                              \
  if (!(c).ready())                                                                     \
    GTEST_SKIP() << "not started by tests/multihost/cluster.sh (run it through CTest: " \
                    "ctest -R MultiHost)";

std::string train_args(const std::string& store, const std::string& run_dir, int64_t epochs, int64_t checkpoint_every) {
  return "train --config " + std::string(STARFT_SOURCE_DIR) + "/configs/tiny.ini --weights " +
         fixture("clip/tiny_clip_openai.safetensors") + " --vocab " + fixture("clip/bpe_simple_vocab_16e6.txt.gz") +
         " --store " + store + " --run-dir " + run_dir + " --teacher online --batch-size 8 --epochs " +
         std::to_string(epochs) + " --checkpoint-every " + std::to_string(checkpoint_every) +
         " --keep-checkpoints 2 --log-every 1000 --comm-timeout 30";
}

safetensors::TensorMap final_weights(const std::string& run_dir) {
  auto last = train::latest_checkpoint(run_dir);
  EXPECT_TRUE(last.has_value()) << "no checkpoint in " << run_dir;
  if (!last) return {};
  return safetensors::load(train::weights_path(*last)).tensors;
}

// The largest elementwise difference between two runs' final weights (infinity when the names differ).
double max_difference(const safetensors::TensorMap& a, const safetensors::TensorMap& b) {
  if (a.size() != b.size() || a.empty()) return INFINITY;
  double worst = 0;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end() || it->second.sizes() != t.sizes()) return INFINITY;
    worst = std::max(worst, (t.to(torch::kDouble) - it->second.to(torch::kDouble)).abs().max().item<double>());
  }
  return worst;
}

int64_t last_metrics_step(const std::string& run_dir) {
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::string line;
  int64_t step = 0;
  while (std::getline(in, line)) {
    try {
      step = nlohmann::json::parse(line).at("step").get<int64_t>();
    } catch (const nlohmann::json::exception&) {
    }
  }
  return step;
}

// One failure drill: a 2 x 2 run, `break_host` applied to host 1 mid-step after the first
// checkpoint; every rank must be gone within 60 s (--comm-timeout 30), the last checkpoint must
// load, and after `heal` `--resume latest` must end with the uninterrupted run's weights.
void failure_drill(const std::string& break_host, const std::string& heal,
                   const std::vector<std::string>& expect_in_output) {
  Cluster c;
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store", 48);  // 6 steps per epoch
  const int64_t epochs = 4, every = 6;                   // 24 steps: the drill starts at the 8th, long before the end
  std::string out;
  ASSERT_EQ(run_command("timeout -k 5 600 " + c.across(train_args(tmp / "store", tmp / "full", epochs, every)), &out),
            0)
      << out;

  Background run(c.across(train_args(tmp / "store", tmp / "cut", epochs, every)), tmp / "cut.log");
  // mid-step, after the first checkpoint: a metrics line past it has been written
  ASSERT_TRUE(wait_until([&] { return last_metrics_step(tmp / "cut") > every + 1 || !run.running(); }, 300))
      << run.output();
  ASSERT_TRUE(run.running()) << "the run ended before the drill could start\n" << run.output();
  ASSERT_EQ(c.ranks_alive(0), 2);
  ASSERT_EQ(c.ranks_alive(1), 2);
  const auto broken = Clock::now();
  ASSERT_EQ(c.ctl(break_host + " 1"), 0);
  std::vector<double> gone(2, -1);
  wait_until(
      [&] {
        for (int h = 0; h < 2; ++h) {
          if (gone[h] < 0 && c.ranks_alive(h) == 0) gone[h] = seconds_since(broken);
        }
        return gone[0] >= 0 && gone[1] >= 0;
      },
      90);
  const bool mpirun_ended = wait_until([&] { return !run.running(); }, 60);
  const double mpirun_s = seconds_since(broken);
  if (!mpirun_ended) run.kill_all();
  const std::string log = run.output();
  std::printf(
      "drill '%s': host 0's ranks gone after %.1f s, host 1's after %.1f s, mpirun ended after %.1f s "
      "(status %d)\n",
      break_host.c_str(), gone[0], gone[1], mpirun_s, run.status());
  for (std::istringstream lines(log); std::getline(lines, out);) {
    if (out.find("did not complete") != std::string::npos || out.find("ORTE") != std::string::npos ||
        out.find("noticed") != std::string::npos || out.find("error") != std::string::npos) {
      std::printf("  | %s\n", out.c_str());
    }
  }
  EXPECT_GE(gone[0], 0) << "host 0's ranks still run 90 s after the drill\n" << log;
  EXPECT_GE(gone[1], 0) << "host 1's ranks still run 90 s after the drill\n" << log;
  EXPECT_LE(gone[0], 60) << log;
  EXPECT_LE(gone[1], 60) << log;
  EXPECT_TRUE(mpirun_ended) << "mpirun still ran 60 s after its ranks\n" << log;
  EXPECT_NE(run.status(), 0) << log;
  for (const auto& e : expect_in_output)
    EXPECT_NE(log.find(e), std::string::npos) << "expected '" << e << "' in\n" << log;

  // The last checkpoint is whole.
  const auto last = train::latest_checkpoint(tmp / "cut");
  ASSERT_TRUE(last.has_value()) << log;
  const auto state = train::read_train_state(*last);
  EXPECT_GE(state.step, every);
  EXPECT_EQ(state.step % every, 0);
  EXPECT_NO_THROW(safetensors::load(train::weights_path(*last)));

  ASSERT_EQ(c.ctl(heal + " 1"), 0);
  ASSERT_EQ(run_command("timeout -k 5 600 " +
                            c.across(train_args(tmp / "store", tmp / "cut", epochs, every) + " --resume latest"),
                        &out),
            0)
      << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  EXPECT_EQ(max_difference(final_weights(tmp / "cut"), final_weights(tmp / "full")), 0.0)
      << "the resumed run's weights differ from the uninterrupted run's";
}

}  // namespace

TEST(MultiHost, TwoHostsTimesTwoRanksTrainLikeOneRank) {
  Cluster c;
  REQUIRE_CLUSTER(c);
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store", 24);  // 3 steps per epoch at batch 8
  std::string out;
  ASSERT_EQ(run_command("timeout -k 5 600 " + c.across(train_args(tmp / "store", tmp / "four", 1, 0)), &out), 0) << out;
  // the node split is real: two ranks on each host, local ranks 0 and 1
  for (int r = 0; r < 4; ++r) {
    const std::string where =
        "rank " + std::to_string(r) + "/4 (local " + std::to_string(r % 2) + "/2) on " + c.host(r / 2);
    EXPECT_NE(out.find(where), std::string::npos) << where << "\n" << out;
  }
  ASSERT_EQ(run_command("timeout -k 5 600 env OMP_NUM_THREADS=1 " + starft_binary() + " " +
                            train_args(tmp / "store", tmp / "one", 1, 0),
                        &out),
            0)
      << out;
  // Three AdamW steps: the weights agree to a small fraction of the distance travelled (Adam turns
  // gradients that are zero up to rounding into full-size steps, so rounding shows at lr's scale;
  // tests/train_loop_test.cpp, Trainer.TwoRanksEqualOneRankForAFewStarFTSteps).
  const double lr = 1e-4;
  const auto one = final_weights(tmp / "one"), four = final_weights(tmp / "four");
  const double difference = max_difference(one, four);
  const auto zero_shot = safetensors::load(fixture("clip/tiny_clip_openai.safetensors")).tensors;
  const double moved = max_difference(zero_shot, four);
  std::printf(
      "2 hosts x 2 ranks vs 1 rank after 3 steps: weights differ by at most %.3g; training moved them by up to %.3g\n",
      difference, moved);
  EXPECT_LE(difference, 3 * lr);
  EXPECT_GT(moved, lr) << "training did not move the weights";
  // the losses, which see every weight at once, agree closely at every step
  auto losses = [&](const std::string& run) {
    std::vector<double> out;
    std::ifstream in(run + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line)["loss"].get<double>());
    return out;
  };
  const auto l1 = losses(tmp / "one"), l4 = losses(tmp / "four");
  ASSERT_EQ(l1.size(), 3u);
  ASSERT_EQ(l4.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(l4[i], l1[i], 1e-5 * std::abs(l1[i])) << "step " << i + 1;
}

TEST(MultiHost, LinkCutMidStepEndsEveryRankAndResumesExactly) {
  Cluster c;
  REQUIRE_CLUSTER(c);
  // starft's watchdog fires first (30 s) on the remaining ranks and names the ranks it lost
  failure_drill("cut", "restore",
                {"did not complete within 30 s on rank ", "ranks that did not answer (unreachable or dead): 2, 3"});
}

TEST(MultiHost, KilledHostEndsEveryRankAndResumesExactly) {
  Cluster c;
  REQUIRE_CLUSTER(c);
  // The orted's connection closes at once: mpirun ends the job within a second, before any
  // collective can time out, naming the host whose daemon it lost (ranks 2 and 3, by the
  // start-up lines).
  failure_drill("kill", "restore", {"lost communication with a remote daemon", "on node " + c.host(1)});
}

TEST(MultiHost, EvaluationAcrossHostsEqualsOneRank) {
  Cluster c;
  REQUIRE_CLUSTER(c);
  starft::testing::EvalStores s;
  const std::string common = "eval --vocab " + fixture("clip/bpe_simple_vocab_16e6.txt.gz") +
                             " --templates simple --batch-size 5 --weights " +
                             fixture("clip/tiny_clip_openai.safetensors") + " --class-names " +
                             std::string(STARFT_SOURCE_DIR) + "/datasets/classnames/example-fish.txt --store " +
                             s.fish + " --store " + s.birds + ":class-names=store:templates=waterbirds";
  std::string out;
  ASSERT_EQ(run_command("timeout -k 5 300 env OMP_NUM_THREADS=1 " + starft_binary() + " " + common + " --out " +
                            (s.dir / "one"),
                        &out),
            0)
      << out;
  ASSERT_EQ(run_command("timeout -k 5 300 " + c.across(common + " --out " + (s.dir / "four")), &out), 0) << out;
  auto read = [](const std::string& p) { return nlohmann::json::parse(read_text(p)); };
  const auto one = read(s.dir / "one/results.json"), four = read(s.dir / "four/results.json");
  ASSERT_EQ(four["rows"][0]["ranks"], 4);
  const auto& a = one["rows"][0]["stores"];
  const auto& b = four["rows"][0]["stores"];
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["per_class"], b[i]["per_class"]) << a[i]["name"];
    EXPECT_EQ(a[i].value("per_group", nlohmann::json()), b[i].value("per_group", nlohmann::json())) << a[i]["name"];
    EXPECT_EQ(a[i]["total"], b[i]["total"]);
  }
}
