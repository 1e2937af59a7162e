// `starft report`: a run's report (curves, step-time breakdown, evaluations per epoch) and a
// scaling study's (images/s, efficiency against the fewest ranks, the breakdown per rank count),
// from real tiny training runs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "distributed/thread_communicator.h"
#include "test_util.h"
#include "train/trainer.h"
#include "train_test_store.h"

using namespace starft;
using starft::testing::run_command;
using starft::testing::starft_binary;
using starft::testing::read_file;
using starft::testing::TempDir;
namespace fs = std::filesystem;

namespace {

void train_run(const train::TrainConfig& c, int ranks) {
  distributed::ThreadGroup group(ranks);
  group.run([&](distributed::Communicator& comm) {
    train::Trainer t(c, comm);
    t.run();
  });
}

bool have_gnuplot() { return run_command("command -v gnuplot > /dev/null") == 0; }

}  // namespace

TEST(Report, RunReportHasTheCurvesBreakdownAndEvaluations) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store");
  auto c = starft::testing::tiny_config(tmp / "store", tmp / "run");
  c.teacher = train::TeacherSource::online;
  c.epochs = 2;
  c.eval_stores = tmp / "store" + ":name=train-store";
  train_run(c, 2);
  std::string out;
  ASSERT_EQ(run_command(starft_binary() + " report --run-dir " + (tmp / "run"), &out), 0) << out;
  const std::string md = read_file(tmp / "run/report.md");
  for (const char* s :
       {"## Per epoch", "| 1 | 3 |", "| 2 | 3 |", "## Where a step's time goes", "| comm exposed |", "| backward |",
        "| **step** |", "2 ranks", "## Evaluation per epoch (%)", "train-store top-1", "The slowest rank"}) {
    EXPECT_NE(md.find(s), std::string::npos) << s << "\n" << md;
  }
  EXPECT_TRUE(fs::exists(tmp / "run/report-data/steps.dat"));
  if (have_gnuplot()) {
    EXPECT_TRUE(fs::exists(tmp / "run/report.png")) << out;
    EXPECT_NE(md.find("![training curves](report.png)"), std::string::npos);
  }
  // neither or both modes: refused, naming the options
  EXPECT_NE(run_command(starft_binary() + " report", &out), 0);
  EXPECT_NE(out.find("--run-dir or --scaling"), std::string::npos) << out;
  EXPECT_NE(run_command(starft_binary() + " report --run-dir " + (tmp / "nowhere"), &out), 0);
  EXPECT_NE(out.find("metrics.jsonl does not exist"), std::string::npos) << out;
}

TEST(Report, ScalingReportGivesImagesPerSecondAndEfficiencyPerRankCount) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store", 32);
  for (int ranks : {1, 2}) {
    auto c = starft::testing::tiny_config(tmp / "store", tmp / ("sweep/weak-n" + std::to_string(ranks)));
    c.teacher = train::TeacherSource::online;
    c.batch_size = 4 * ranks;
    c.epochs = 1;
    c.stop_after = 6;
    train_run(c, ranks);
    std::ofstream(c.run_dir + "/scaling.json") << "{\"mode\": \"weak\", \"ranks\": " << ranks << "}\n";
  }
  std::string out;
  ASSERT_EQ(run_command(starft_binary() + " report --scaling " + (tmp / "sweep") + " --out " + (tmp / "study"), &out),
            0)
      << out;
  const std::string md = read_file(tmp / "study/scaling.md");
  EXPECT_NE(md.find("| weak | 1 | 4 | 4 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| weak | 2 | 8 | 4 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 1.00 | 1.00 |"), std::string::npos) << "the baseline's speed-up and efficiency\n" << md;
  if (have_gnuplot()) {
    EXPECT_TRUE(fs::exists(tmp / "study/scaling.png")) << out;
  }
  EXPECT_NE(run_command(starft_binary() + " report --scaling " + (tmp / "store"), &out), 0);
  EXPECT_NE(out.find("holds no run"), std::string::npos) << out;
}
