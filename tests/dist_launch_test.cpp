// Whole-job behaviour under mpirun, through `starft dist-selftest` and its drills: a healthy
// run, a rank that throws (the job must end non-zero, not hang), a rank that skips a collective
// (the timeout names it), a rank that gets SIGUSR1 (all ranks stop at the same step), and a
// Slurm launch whose task count does not match the MPI world (refused with the fix).
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "test_util.h"

using starft::testing::run_command;
using starft::testing::starft_binary;

namespace {

// `timeout` turns a hang into exit status 124 instead of a stuck test.
std::string mpirun_selftest(int ranks, const std::string& args, int limit_s) {
  return "timeout -k 5 " + std::to_string(limit_s) +
         " env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np " + std::to_string(ranks) +
         " --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 " + starft_binary() + " dist-selftest " + args;
}

}  // namespace

TEST(DistLaunch, HealthyJobPasses) {
  std::string out;
  int rc = run_command(mpirun_selftest(3, "--steps 3", 120), &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("dist-selftest: 3 rank(s) agree"), std::string::npos) << out;
  // One start-up line per rank, although ranks other than 0 log warnings only.
  for (int r = 0; r < 3; ++r) {
    EXPECT_NE(out.find("[rank " + std::to_string(r) + "] [info] rank " + std::to_string(r) + "/3 (local "),
              std::string::npos)
        << out;
  }
}

TEST(DistLaunch, RankThatThrowsEndsTheWholeJob) {
  std::string out;
  int rc = run_command(mpirun_selftest(2, "--steps 5", 30), &out);
  ASSERT_EQ(rc, 0) << "the healthy job must pass first:\n" << out;
  rc = run_command(mpirun_selftest(3, "--steps 5 --fail-rank 1", 30), &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(rc, 124) << "the job hung instead of ending:\n" << out;
  EXPECT_NE(out.find("[rank 1] [error] dist-selftest: simulated failure on rank 1 at step 1"), std::string::npos)
      << out;
}

TEST(DistLaunch, RankThatSkipsACollectiveTripsTheTimeout) {
  std::string out;
  int rc = run_command(mpirun_selftest(3, "--steps 5 --skip-rank 1 --comm-timeout 2", 60), &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(rc, 124) << "the job hung instead of timing out:\n" << out;
  std::regex report(
      R"(collective '([a-z_0-9]+)' \(operation #[0-9]+ on the grad_buckets communicator\) did not complete within 2 s on rank (0|2); ranks that never arrived: 1\.)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, report)) << out;
  EXPECT_EQ(m[1].str().rfind("grad_bucket_", 0), 0u) << "step 1's gradient all-reduce is the one skipped: " << m[1];
}

TEST(DistLaunch, Sigusr1OnOneRankStopsAllRanksAtTheSameStep) {
  std::string out;
  int rc = run_command(mpirun_selftest(3, "--steps 10 --signal-rank 2 --signal-step 3", 120), &out);
  EXPECT_EQ(rc, 0) << out;
  for (int r = 0; r < 3; ++r) {
    EXPECT_NE(out.find("dist-selftest: rank " + std::to_string(r) + " stopped at step 3"), std::string::npos) << out;
  }
}

TEST(DistLaunch, SlurmTaskCountThatDiffersFromTheWorldIsRefused) {
  std::string out;
  // What srun without PMIx does: each of 5 tasks starts MPI as a singleton (a world of 1).
  int rc = run_command("timeout -k 5 60 env -u SLURM_STEP_NUM_TASKS -u OMPI_COMM_WORLD_SIZE SLURM_NTASKS=5 " +
                           starft_binary() + " dist-selftest",
                       &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(rc, 124) << out;
  EXPECT_NE(out.find("Slurm started 5 tasks (SLURM_NTASKS=5) but MPI sees a world of 1 rank"), std::string::npos)
      << out;
  EXPECT_NE(out.find("srun --mpi=pmix"), std::string::npos) << out;
}

TEST(DistLaunch, OptionsHaveHelpAndBadValuesAreNamed) {
  std::string out;
  EXPECT_EQ(run_command(starft_binary() + " dist-selftest --help", &out), 0) << out;
  for (const char* option : {"--comm-timeout", "--threads", "--comm-backend", "--fail-rank", "--skip-rank"}) {
    EXPECT_NE(out.find(option), std::string::npos) << option << "\n" << out;
  }
  EXPECT_NE(run_command(starft_binary() + " dist-selftest --comm-timeout -1", &out), 0);
  EXPECT_NE(out.find("--comm-timeout must be a positive number of seconds, got -1"), std::string::npos) << out;
  EXPECT_NE(run_command(starft_binary() + " dist-selftest --comm-backend gloo", &out), 0);
  EXPECT_NE(out.find("--comm-backend must be auto, mpi or nccl, got 'gloo'"), std::string::npos) << out;
}
