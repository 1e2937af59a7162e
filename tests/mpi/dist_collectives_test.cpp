// The MPI backend under mpiexec: every collective with values each rank can predict, async
// operations in flight together, the differentiable all-gather against one process, the
// parameter checksum, text collectives, and the stop flag agreed at a step boundary.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <csignal>

#include "common/error.h"
#include "distributed/all_gather.h"
#include "distributed/param_check.h"
#include "distributed/runtime.h"
#include "distributed/stop_signal.h"
#include "distributed/text_collectives.h"
#include "tensor_close.h"

using namespace starft;
using namespace starft::distributed;

TEST(MpiRuntime, KnowsWhoIsWho) {
  auto& rt = Runtime::get();
  int world = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  EXPECT_EQ(rt.size(), world);
  EXPECT_GE(rt.local_size(), 1);
  EXPECT_LT(rt.local_rank(), rt.local_size());
  EXPECT_GE(rt.threads(), 1);
  EXPECT_EQ(rt.mpi_thread_level(), MPI_THREAD_MULTIPLE);
  EXPECT_FALSE(rt.host().empty());
  EXPECT_EQ(&rt.comm(), &rt.mpi()) << "the device is the CPU here: MPI";
  // Ranks agree on their numbering.
  auto ranks = rt.mpi().all_gather(torch::tensor({rt.rank()}, torch::kInt));
  EXPECT_TRUE(ranks.equal(torch::arange(rt.size(), torch::kInt)));
}

TEST(MpiCollectives, EveryOperationGivesTheExpectedValues) {
  auto& comm = Runtime::get().mpi();
  const int r = comm.rank(), n = comm.size();
  auto s = torch::full({1000}, static_cast<float>(r + 1));
  comm.all_reduce(s, ReduceOp::Sum, "sum");
  EXPECT_TRUE(s.eq(n * (n + 1) / 2.0f).all().item<bool>());
  auto a = torch::full({7}, static_cast<double>(r));
  comm.all_reduce(a, ReduceOp::Avg, "avg");
  EXPECT_TRUE(a.eq((n - 1) / 2.0).all().item<bool>());
  auto m = torch::tensor({r, -r}, torch::kInt);
  comm.all_reduce(m, ReduceOp::Max, "max");
  EXPECT_EQ(m[0].item<int>(), n - 1);
  EXPECT_EQ(m[1].item<int>(), 0);
  auto g = comm.all_gather(torch::full({3, 2}, static_cast<int64_t>(r), torch::kLong), "gather");
  for (int k = 0; k < n; ++k) EXPECT_TRUE(g.narrow(0, 3 * k, 3).eq(k).all().item<bool>()) << "block " << k;
  auto b = torch::full({5}, static_cast<uint8_t>(r == n - 1 ? 200 : 1), torch::kByte);
  comm.broadcast(b, n - 1, "bcast");
  EXPECT_TRUE(b.eq(200).all().item<bool>());
  comm.barrier("barrier");
}

TEST(MpiCollectives, TextOfEveryLengthIncludingEmptyAndBinary) {
  auto& comm = Runtime::get().mpi();
  const int r = comm.rank(), n = comm.size();
  // Rank 0 sends nothing, the others texts of different lengths holding zero bytes.
  auto text_of = [](int rank) {
    return rank == 0 ? std::string() : std::string(rank * 3, '\0') + "rank" + std::to_string(rank);
  };
  const auto all = all_gather_text(comm, text_of(r), "test_text");
  ASSERT_EQ(static_cast<int>(all.size()), n);
  for (int k = 0; k < n; ++k) EXPECT_EQ(all[k], text_of(k)) << "from rank " << k;
  EXPECT_TRUE(all_gather_text(comm, "", "test_empty") == std::vector<std::string>(n));
  const std::string from_last = std::string("\xff\0ok", 4) + std::string(10000, 'x');
  EXPECT_EQ(broadcast_text(comm, r == n - 1 ? from_last : "ignored", n - 1, "test_bcast"), from_last);
  EXPECT_EQ(broadcast_text(comm, r == 0 ? "" : "ignored", 0, "test_bcast_empty"), "");
}

TEST(MpiCollectives, ManyAsyncOperationsInFlightComplete) {
  auto& comm = Runtime::get().mpi();
  std::vector<torch::Tensor> ts;
  std::vector<WorkPtr> works;
  for (int i = 0; i < 8; ++i) {
    // Sizes from a few bytes to 8 MiB.
    ts.push_back(torch::full({int64_t{1} << (3 * i % 22)}, static_cast<float>(comm.rank() + i)));
    works.push_back(comm.all_reduce_async(ts.back(), ReduceOp::Sum, "async_" + std::to_string(i)));
  }
  const int n = comm.size();
  for (int i = 7; i >= 0; --i) works[i]->wait();
  for (int i = 0; i < 8; ++i) {
    EXPECT_TRUE(ts[i].eq(static_cast<float>(n * (n - 1) / 2 + n * i)).all().item<bool>()) << "op " << i;
  }
}

TEST(MpiAllGatherWithGrad, ForwardAndBackwardMatchOneProcess) {
  auto& comm = Runtime::get().mpi();
  const int n = comm.size();
  const int64_t rows = 3, cols = 5;
  auto block = [&](int r) {
    return torch::randn({rows, cols}, at::detail::createCPUGenerator(10 + r)).to(torch::kDouble);
  };
  auto weight = [&](int r) {
    return torch::randn({n * rows, cols}, at::detail::createCPUGenerator(50 + r)).to(torch::kDouble);
  };
  // One process: every rank's loss sum(w_s * sin(gathered) * gathered), on the concatenated blocks.
  std::vector<torch::Tensor> xs;
  for (int r = 0; r < n; ++r) xs.push_back(block(r).requires_grad_(true));
  auto all = torch::cat(xs);
  torch::Tensor total = torch::zeros({}, torch::kDouble);
  for (int s = 0; s < n; ++s) total = total + (weight(s) * all.sin() * all).sum();
  total.backward();

  auto x = block(comm.rank()).requires_grad_(true);
  auto gathered = all_gather_with_grad(x, comm);
  EXPECT_TRUE(gathered.detach().equal(all.detach()));
  (weight(comm.rank()) * gathered.sin() * gathered).sum().backward();
  auto expected = xs[comm.rank()].grad();
  EXPECT_LT(starft::testing::relative_difference(x.grad(), expected), 1e-12);
}

TEST(MpiParameterCheck, DivergenceNamesTheRank) {
  auto& comm = Runtime::get().mpi();
  auto w = torch::linspace(-2, 2, 4096);
  auto v = torch::ones({3, 3});
  EXPECT_NO_THROW(check_parameters_in_sync({w, v}, comm, "step 0"));
  const int last = comm.size() - 1;
  if (comm.rank() == last) v[1][1] = 1.0001f;
  try {
    check_parameters_in_sync({w, v}, comm, "step 7");
    ADD_FAILURE() << "divergence was not detected";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("parameters diverged across ranks at step 7: rank " + std::to_string(last)), std::string::npos)
        << msg;
    if (last > 1) {
      EXPECT_EQ(msg.find("rank 1 ("), std::string::npos) << msg;
    }
  }
}

TEST(MpiStopSignal, AllRanksAgreeWhenOneRankGetsSigusr1) {
  auto& rt = Runtime::get();
  EXPECT_FALSE(rt.should_stop());
  if (rt.rank() == rt.size() - 1) std::raise(SIGUSR1);  // as Slurm's --signal=USR1 would
  EXPECT_EQ(stop_signal_received() != 0, rt.rank() == rt.size() - 1);
  EXPECT_TRUE(rt.should_stop());
  // Back to normal for the tests that follow.
  request_stop(0);
  install_stop_handlers();
  EXPECT_FALSE(rt.should_stop());
}
