// `starft dist-selftest`: checks a launch (mpirun or srun) end to end: every collective on
// every rank, a few synchronised gradient steps, and the stop flag. The failure drills
// (--fail-rank, --skip-rank, --signal-rank) make one rank misbehave, to see the whole job end
// (or stop cleanly) the way it would in training; the tests use them.
#include <csignal>
#include <iostream>
#include <thread>

#include "cli/command.h"
#include "common/error.h"
#include "distributed/grad_sync.h"
#include "distributed/runtime.h"

namespace starft::cli {
namespace {

int run(int argc, char** argv) {
  po::options_description options("dist-selftest options");
  options.add_options()("steps", po::value<int>()->default_value(5),
                        "training-like steps to run (each: backward, gradient "
                        "all-reduce, optimizer step, stop check)")("fail-rank", po::value<int>()->default_value(-1),
                                                                   "drill: this rank throws an error at step 1")(
      "skip-rank", po::value<int>()->default_value(-1),
      "drill: this rank skips the all-reduce of step 1 and sleeps, so the others time out")(
      "signal-rank", po::value<int>()->default_value(-1), "drill: this rank sends itself SIGUSR1 at --signal-step")(
      "signal-step", po::value<int>()->default_value(1), "step at which --signal-rank raises SIGUSR1");
  distributed::add_runtime_options(options);
  auto vm = parse(argc, argv, options,
                  "usage: mpirun -np N starft dist-selftest [options]\n"
                  "Checks the distributed runtime across all ranks; the drills make one rank misbehave.");
  if (!vm) return 0;
  const int steps = (*vm)["steps"].as<int>();
  const int fail_rank = (*vm)["fail-rank"].as<int>();
  const int skip_rank = (*vm)["skip-rank"].as<int>();
  const int signal_rank = (*vm)["signal-rank"].as<int>();
  const int signal_step = (*vm)["signal-step"].as<int>();
  check(steps >= 1, "--steps must be >= 1, got ", steps);
  check(signal_step >= 0, "--signal-step must be >= 0, got ", signal_step);

  distributed::ScopedRuntime runtime(distributed::runtime_options(*vm));
  const int rank = runtime->rank(), size = runtime->size();
  for (int r : {fail_rank, skip_rank, signal_rank}) {
    check(r < size, "drill rank ", r, " is not a rank of this job of ", size, " ranks");
  }
  auto& comm = runtime->mpi();

  // Every collective, with values each rank can predict.
  auto x = torch::full({1000}, static_cast<float>(rank + 1));
  comm.all_reduce(x, distributed::ReduceOp::Sum, "selftest_all_reduce");
  check(x.eq(size * (size + 1) / 2.0f).all().item<bool>(), "rank ", rank, ": all-reduce gave ", x[0].item<float>(),
        ", expected ", size * (size + 1) / 2);
  auto gathered = comm.all_gather(torch::full({2}, static_cast<int64_t>(rank), torch::kLong), "selftest_all_gather");
  for (int r = 0; r < size; ++r) {
    check(gathered[2 * r].item<int64_t>() == r, "rank ", rank, ": all-gather block ", r, " holds ",
          gathered[2 * r].item<int64_t>());
  }
  auto b = torch::full({3}, rank == size - 1 ? 7.0 : 0.0, torch::kDouble);
  comm.broadcast(b, size - 1, "selftest_broadcast");
  check(b.eq(7.0).all().item<bool>(), "rank ", rank, ": broadcast from rank ", size - 1, " gave ", b[0].item<double>());
  comm.barrier("selftest_barrier");

  // Training-like steps: every rank sees different data, the gradients are averaged.
  torch::manual_seed(1000 + rank);  // different initial weights: GradSync broadcasts rank 0's
  torch::nn::Linear model(64, 16);
  distributed::GradSyncOptions sync_options;
  sync_options.check_every = 1;
  distributed::GradSync sync(model->named_parameters(), comm, sync_options);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1));
  for (int step = 0; step < steps; ++step) {
    if (step == 1 && rank == fail_rank) {
      fail("dist-selftest: simulated failure on rank ", rank, " at step ", step, " (--fail-rank)");
    }
    if (step == 1 && rank == skip_rank) {
      spdlog::warn("dist-selftest: rank {} skips the collectives of step {} (--skip-rank) and sleeps", rank, step);
      std::this_thread::sleep_for(std::chrono::seconds(300));
      return 1;
    }
    optimizer.zero_grad();
    auto input = torch::randn({8, 64});
    model->forward(input).square().mean().backward();
    sync.finish();
    optimizer.step();
    if (rank == signal_rank && step == signal_step) std::raise(SIGUSR1);
    if (runtime->should_stop()) {
      std::cout << "dist-selftest: rank " << rank << " stopped at step " << step << std::endl;
      return 0;
    }
  }
  if (rank == 0) {
    std::cout << "dist-selftest: " << size << " rank(s) agree: all-reduce, all-gather, broadcast, barrier, " << steps
              << " synchronised gradient steps" << std::endl;
  }
  return 0;
}

const Registration dist_selftest_command("dist-selftest",
                                         "check the distributed runtime across all ranks (with failure drills)", run);

}  // namespace
}  // namespace starft::cli
