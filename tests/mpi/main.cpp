// GoogleTest main for the multi-rank tests (run under mpiexec -np 2 and -np 3 by CTest).
// Starts the distributed runtime, runs every test on every rank, and ends with the same exit
// code everywhere: non-zero when any rank failed. Rank 0 prints GoogleTest's report; the other
// ranks print only their failures, prefixed with their rank.
#include <gtest/gtest.h>

#include <cstdio>

#include "distributed/runtime.h"

namespace {

class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, result.file_name() ? result.file_name() : "?",
                 result.line_number(), result.summary());
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed())
      std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  starft::distributed::RuntimeOptions options;
  // A rank that falls out of step with the others ends the run instead of hanging CTest.
  options.comm_timeout_s = 120;
  auto& runtime = starft::distributed::Runtime::start(options, &argc, &argv);
  if (runtime.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(runtime.rank()));
  }
  const int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  auto any = torch::tensor({failed}, torch::kInt);
  runtime.mpi().all_reduce(any, starft::distributed::ReduceOp::Max, "test_results");
  const int any_failed = any.item<int>();
  if (runtime.rank() == 0 && any_failed && !failed) {
    std::fprintf(stderr, "tests failed on another rank (see the [rank N] lines)\n");
  }
  starft::distributed::Runtime::stop();
  return any_failed;
}
