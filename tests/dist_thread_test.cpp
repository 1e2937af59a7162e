// The distributed machinery with ranks as threads of this process (ThreadGroup): collectives,
// their errors, the differentiable all-gather, gradient buckets against a single process, the
// watchdog's report of a rank that skipped a collective, and the parameter checksum.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <map>
#include <thread>

#include "common/error.h"
#include "distributed/all_gather.h"
#include "distributed/grad_sync.h"
#include "distributed/param_check.h"
#include "distributed/thread_communicator.h"
#include "dist_test_model.h"
#include "test_util.h"

using namespace starft;
using namespace starft::distributed;
using starft::testing::relative_difference;

namespace {

std::string exception_text(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ThreadCollectives, EveryOperationGivesTheExpectedValues) {
  ThreadGroup group(3);
  group.run([](Communicator& comm) {
    const int r = comm.rank(), n = comm.size();
    auto s = torch::full({5}, static_cast<float>(r + 1));
    comm.all_reduce(s, ReduceOp::Sum);
    EXPECT_TRUE(s.eq(6.0f).all().item<bool>());
    auto a = torch::full({4}, static_cast<double>(r));
    comm.all_reduce(a, ReduceOp::Avg);
    EXPECT_TRUE(a.eq(1.0).all().item<bool>());
    auto m = torch::tensor({r * 10, -r}, torch::kLong);
    comm.all_reduce(m, ReduceOp::Max);
    EXPECT_EQ(m[0].item<int64_t>(), 20);
    EXPECT_EQ(m[1].item<int64_t>(), 0);
    auto g = comm.all_gather(torch::full({2, 3}, static_cast<float>(r)));
    ASSERT_EQ(g.sizes(), (std::vector<int64_t>{2 * n, 3}));
    for (int k = 0; k < n; ++k) EXPECT_TRUE(g.narrow(0, 2 * k, 2).eq(static_cast<float>(k)).all().item<bool>());
    auto b = torch::full({3}, r == 1 ? 42 : -1, torch::kInt);
    comm.broadcast(b, 1);
    EXPECT_TRUE(b.eq(42).all().item<bool>());
    comm.barrier();
  });
}

TEST(ThreadCollectives, AsyncOperationsCompleteInSubmissionOrder) {
  ThreadGroup group(2);
  group.run([](Communicator& comm) {
    std::vector<torch::Tensor> ts;
    std::vector<WorkPtr> works;
    for (int i = 0; i < 6; ++i) {
      ts.push_back(torch::full({1000}, static_cast<float>(i + comm.rank())));
      works.push_back(comm.all_reduce_async(ts.back(), ReduceOp::Sum, "op" + std::to_string(i)));
    }
    for (int i = 5; i >= 0; --i) works[i]->wait();
    for (int i = 0; i < 6; ++i) {
      EXPECT_TRUE(works[i]->completed());
      EXPECT_TRUE(ts[i].eq(static_cast<float>(2 * i + 1)).all().item<bool>()) << "op " << i;
    }
  });
}

TEST(ThreadCollectives, BadArgumentsAreRefusedWithTheirReason) {
  ThreadGroup group(2);
  auto& comm = group.comm(0);
  auto t = torch::zeros({4, 4});
  EXPECT_NE(exception_text([&] { comm.all_reduce_async(t.t(), ReduceOp::Sum, "grads"); }).find("contiguous"),
            std::string::npos);
  EXPECT_NE(exception_text([&] {
              comm.all_reduce_async(torch::zeros({2}, torch::kHalf), ReduceOp::Sum, "grads");
            }).find("only supported by the NCCL backend"),
            std::string::npos);
  EXPECT_NE(exception_text([&] {
              comm.all_reduce_async(torch::zeros({2}, torch::kLong), ReduceOp::Avg, "count");
            }).find("average is only defined for floating-point"),
            std::string::npos);
  EXPECT_NE(exception_text([&] { comm.broadcast_async(t, 2, "weights"); }).find("root 2 is not a rank"),
            std::string::npos);
  EXPECT_NE(exception_text([&] {
              comm.all_gather_async(torch::zeros({7}), torch::zeros({4}), "features");
            }).find("expected 2 blocks of 4"),
            std::string::npos);
  // The message names the operation and the rank.
  auto msg = exception_text([&] { comm.all_reduce_async(t.t(), ReduceOp::Sum, "grad_bucket_3"); });
  EXPECT_NE(msg.find("grad_bucket_3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rank 0"), std::string::npos) << msg;
}

TEST(ThreadCollectives, SingleRankOperationsAreIdentities) {
  ThreadGroup group(1);
  auto& comm = group.comm(0);
  auto t = torch::arange(5, torch::kFloat);
  comm.all_reduce(t, ReduceOp::Avg);
  EXPECT_TRUE(t.equal(torch::arange(5, torch::kFloat)));
  EXPECT_TRUE(comm.all_gather(t).equal(t));
}

TEST(AllGatherWithGrad, ForwardAndBackwardMatchOneProcess) {
  const int n = 3;
  const int64_t rows = 2, cols = 4;
  // Rank r's block and the weights its loss applies to the gathered tensor.
  auto block = [&](int r) { return torch::arange(rows * cols, torch::kDouble).reshape({rows, cols}) * (r + 1) - 3.0; };
  auto weight = [&](int r) {
    return torch::linspace(-1, 1, n * rows * cols, torch::kDouble).reshape({n * rows, cols}) * (r + 2);
  };
  // Single process: loss = sum over ranks s of sum(w_s * tanh(gathered)^2).
  std::vector<torch::Tensor> xs;
  for (int r = 0; r < n; ++r) xs.push_back(block(r).requires_grad_(true));
  auto all = torch::cat(xs);
  torch::Tensor total = torch::zeros({}, torch::kDouble);
  for (int s = 0; s < n; ++s) total = total + (weight(s) * all.tanh().square()).sum();
  total.backward();

  ThreadGroup group(n);
  std::vector<torch::Tensor> forward(n), grads(n);
  group.run([&](Communicator& comm) {
    auto x = block(comm.rank()).requires_grad_(true);
    auto gathered = all_gather_with_grad(x, comm);
    forward[comm.rank()] = gathered.detach().clone();
    (weight(comm.rank()) * gathered.tanh().square()).sum().backward();
    grads[comm.rank()] = x.grad().clone();
  });
  for (int r = 0; r < n; ++r) {
    EXPECT_TRUE(forward[r].equal(all.detach())) << "rank " << r;
    EXPECT_LT(relative_difference(grads[r], xs[r].grad()), 1e-12) << "rank " << r;
  }
}

TEST(GradSyncBuckets, ReverseOrderSmallFirstBucketAndConfigurableSize) {
  ThreadGroup group(1);
  // Four float parameters of 256 KiB each (65536 elements) and a small one.
  std::vector<torch::Tensor> params;
  for (int i = 0; i < 4; ++i) params.push_back(torch::zeros({65536}, torch::requires_grad()));
  params.push_back(torch::zeros({10}, torch::requires_grad()));
  params.push_back(torch::zeros({3}));  // frozen: in no bucket
  GradSyncOptions o;
  o.first_bucket_bytes = 200 << 10;  // closes after 10 floats + 65536 floats
  o.bucket_bytes = 600 << 10;        // then three 256 KiB parameters fill one bucket
  GradSync sync(params, group.comm(0), o);
  EXPECT_EQ(sync.bucket_layout(), (std::vector<std::vector<int>>{{4, 3}, {2, 1, 0}}));

  o.bucket_bytes = o.first_bucket_bytes = 1;  // one parameter each
  GradSync each(params, group.comm(0), o);
  EXPECT_EQ(each.bucket_layout(), (std::vector<std::vector<int>>{{4}, {3}, {2}, {1}, {0}}));

  GradSync by_default(params, group.comm(0));  // 1 MiB first bucket holds all 1 MiB + 40 bytes
  EXPECT_EQ(by_default.bucket_layout(), (std::vector<std::vector<int>>{{4, 3, 2, 1, 0}}));
}

TEST(GradSyncBuckets, DtypesGetSeparateBuckets) {
  ThreadGroup group(1);
  std::vector<torch::Tensor> params{torch::zeros({4}, torch::requires_grad()),
                                    torch::zeros({4}, torch::dtype(torch::kDouble).requires_grad(true)),
                                    torch::zeros({4}, torch::requires_grad())};
  GradSync sync(params, group.comm(0));
  EXPECT_EQ(sync.bucket_layout(), (std::vector<std::vector<int>>{{2, 0}, {1}}));
}

// k AdamW steps of the tiny two-tower model with the FLYP loss on N thread-ranks (each its
// slice of the global batch) against one process with the whole batch.
void expect_training_matches_one_process(int ranks, GradSyncOptions options) {
  const int64_t batch = 12, steps = 3;
  torch::manual_seed(7);
  starft::testing::TinyTowers reference;
  torch::optim::AdamW ref_opt(reference->parameters(), torch::optim::AdamWOptions(1e-2).weight_decay(0.1));
  std::map<std::string, torch::Tensor> first_grads;  // of step 0, when all copies hold the same weights
  for (int64_t step = 0; step < steps; ++step) {
    auto [images, tokens] = starft::testing::tiny_batch(batch, step);
    ref_opt.zero_grad();
    starft::testing::tiny_loss(reference, images, tokens, nullptr).backward();
    if (step == 0) {
      for (const auto& item : reference->named_parameters()) {
        if (item.value().grad().defined()) first_grads[item.key()] = item.value().grad().clone();
      }
    }
    ref_opt.step();
  }

  std::vector<starft::testing::TinyTowers> models;
  for (int r = 0; r < ranks; ++r) {
    torch::manual_seed(r == 0 ? 7 : 100 + r);  // other ranks start elsewhere: the broadcast fixes it
    models.emplace_back();
  }
  options.check_every = 1;
  ThreadGroup group(ranks, /*comm_timeout_s=*/60);
  group.run([&](Communicator& comm) {
    auto& model = models[comm.rank()];
    GradSync sync(model->named_parameters(), comm, options);
    torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-2).weight_decay(0.1));
    const int64_t b = batch / comm.size();
    for (int64_t step = 0; step < steps; ++step) {
      auto [images, tokens] = starft::testing::tiny_batch(batch, step);
      opt.zero_grad();
      starft::testing::tiny_loss(model, images.narrow(0, comm.rank() * b, b), tokens.narrow(0, comm.rank() * b, b),
                                 &comm)
          .backward();
      sync.finish();
      if (step == 0) {
        // The synchronised gradient is the single-process gradient of the global batch.
        for (const auto& item : model->named_parameters()) {
          auto it = first_grads.find(item.key());
          EXPECT_EQ(item.value().grad().defined(), it != first_grads.end()) << item.key();
          if (it == first_grads.end() || !item.value().grad().defined()) continue;
          EXPECT_LT(relative_difference(item.value().grad(), it->second), 1e-5)
              << item.key() << " gradient on rank " << comm.rank();
        }
      }
      opt.step();
    }
  });
  auto expected = reference->named_parameters();
  for (int r = 0; r < ranks; ++r) {
    auto got = models[r]->named_parameters();
    for (const auto& item : expected) {
      EXPECT_LT(relative_difference(got[item.key()], item.value()), 1e-5)
          << item.key() << " on rank " << r << " of " << ranks;
    }
    EXPECT_FALSE(got["unused"].grad().defined()) << "no rank used it: its gradient stays undefined";
  }
}

TEST(GradSyncTraining, TwoRanksMatchOneProcessWithOneParameterPerBucket) {
  GradSyncOptions o;
  o.bucket_bytes = o.first_bucket_bytes = 1;
  expect_training_matches_one_process(2, o);
}

TEST(GradSyncTraining, ThreeRanksMatchOneProcessWithOneBucket) {
  GradSyncOptions o;
  o.bucket_bytes = o.first_bucket_bytes = int64_t{1} << 40;
  expect_training_matches_one_process(3, o);
}

TEST(GradSyncTraining, ThreeRanksMatchOneProcessWithDefaultBuckets) { expect_training_matches_one_process(3, {}); }

TEST(GradSyncTraining, RowSparseTokenEmbeddingMatchesOneProcess) {
  GradSyncOptions o;
  o.row_sparse = {"token.weight"};
  expect_training_matches_one_process(2, o);
  o.bucket_bytes = o.first_bucket_bytes = 1;
  expect_training_matches_one_process(3, o);
}

// Runs GradSync on 3 ranks for 2 steps with the row-sparse parameters "table" [6, 2] and "unused"
// [4, 2] (which no rank uses: its gradient must stay undefined); `backward` makes this rank's
// gradient of table. Returns each rank's final gradient of table, as GradSync left it.
std::vector<torch::Tensor> row_sparse_table_gradients(
    const std::function<void(Communicator&, const torch::Tensor& table)>& backward) {
  ThreadGroup group(3, /*comm_timeout_s=*/30);
  std::vector<torch::Tensor> grads(3);
  group.run([&](Communicator& comm) {
    auto table = torch::zeros({6, 2}, torch::requires_grad());
    auto unused = torch::zeros({4, 2}, torch::requires_grad());
    GradSyncOptions o;
    o.row_sparse = {"table", "unused"};
    GradSync sync({table, unused}, comm, o, {"table", "unused"});
    for (int step = 0; step < 2; ++step) {
      table.mutable_grad() = torch::Tensor();
      backward(comm, table);
      sync.finish();
    }
    grads[comm.rank()] = table.grad().clone();
    EXPECT_FALSE(unused.grad().defined()) << "no rank used it: its gradient stays undefined";
  });
  return grads;
}

TEST(GradSyncTraining, RowSparseSendsTheUnionOfEachRanksRows) {
  const auto grads = row_sparse_table_gradients([](Communicator& comm, const torch::Tensor& table) {
    // rank r touches row r (weight r + 1) and row 5 (weight 3); rank 2 adds nothing else
    auto rows = comm.rank() < 2 ? torch::tensor({int64_t{comm.rank()}, int64_t{5}}) : torch::tensor({int64_t{5}});
    auto weights = comm.rank() < 2 ? torch::tensor({comm.rank() + 1.0f, 3.0f}) : torch::tensor({3.0f});
    (table.index_select(0, rows).sum(1) * weights).sum().backward();
  });
  auto expected = torch::zeros({6, 2});
  expected[0] = 1.0f / 3;
  expected[1] = 2.0f / 3;
  expected[5] = 3.0f;
  for (int r = 0; r < 3; ++r) EXPECT_TRUE(grads[r].equal(expected)) << "rank " << r << ": " << grads[r];
}

// The same union as above from sparse gradients (Embedding's sparse=true): param.grad becomes a
// coalesced sparse tensor with the union's rows averaged; a rank that used no row takes part and
// gets the dense equivalent; a parameter no rank used keeps an undefined gradient.
TEST(GradSyncTraining, RowSparseTakesSparseGradients) {
  const auto grads = row_sparse_table_gradients([](Communicator& comm, const torch::Tensor& table) {
    if (comm.rank() == 2) return;
    // rank r looks up row r once (weight r + 1) and row 5 twice (weight 3 each)
    auto ids = torch::tensor({int64_t{comm.rank()}, int64_t{5}, int64_t{5}});
    auto weights = torch::tensor({comm.rank() + 1.0f, 3.0f, 3.0f});
    auto looked_up = torch::embedding(table, ids, -1, /*scale_grad_by_freq=*/false, /*sparse=*/true);
    (looked_up.sum(1) * weights).sum().backward();
    EXPECT_TRUE(table.grad().is_sparse());
  });
  auto expected = torch::zeros({6, 2});
  expected[0] = 1.0f / 3;
  expected[1] = 2.0f / 3;
  expected[5] = 4.0f;  // (6 + 6 + 0) / 3
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(grads[r].is_sparse(), r < 2) << "rank " << r;
    EXPECT_TRUE(grads[r].to_dense().equal(expected)) << "rank " << r << ": " << grads[r];
  }
}

TEST(GradSyncTraining, RowSparseNameMustBeAParameter) {
  ThreadGroup group(1, /*comm_timeout_s=*/30);
  group.run([&](Communicator& comm) {
    GradSyncOptions o;
    o.row_sparse = {"token_embedding.weight"};
    auto p = torch::zeros({3, 2}, torch::requires_grad());
    const auto message = exception_text([&] { GradSync sync({p}, comm, o, {"visual.proj"}); });
    EXPECT_NE(message.find("token_embedding.weight"), std::string::npos) << message;
  });
}

TEST(GradSyncTraining, SynchroniseAfterBackwardGivesTheSameResult) {
  GradSyncOptions o;
  o.overlap = false;
  o.bucket_bytes = o.first_bucket_bytes = 1;
  expect_training_matches_one_process(2, o);
}

TEST(GradSyncTraining, ParameterUsedOnOneRankGetsTheAverageAndNobodyWaitsForIt) {
  ThreadGroup group(3, /*comm_timeout_s=*/30);
  std::vector<torch::Tensor> grads_a(3), grads_b(3);
  group.run([&](Communicator& comm) {
    auto a = torch::ones({4}, torch::requires_grad());
    auto b = torch::ones({2}, torch::requires_grad());
    auto c = torch::ones({3}, torch::requires_grad());  // nobody uses it
    GradSyncOptions o;
    o.bucket_bytes = o.first_bucket_bytes = 1;
    GradSync sync({a, b, c}, comm, o);
    for (int step = 0; step < 2; ++step) {
      a.mutable_grad() = torch::Tensor();
      b.mutable_grad() = torch::Tensor();
      auto loss = (a * (comm.rank() + 1)).sum();
      if (comm.rank() == 1) loss = loss + (b * 6).sum();  // only rank 1 uses b
      loss.backward();
      sync.finish();
    }
    grads_a[comm.rank()] = a.grad().clone();
    grads_b[comm.rank()] = b.grad().defined() ? b.grad().clone() : torch::Tensor();
    EXPECT_FALSE(c.grad().defined());
  });
  for (int r = 0; r < 3; ++r) {
    EXPECT_TRUE(grads_a[r].eq(2.0f).all().item<bool>()) << "rank " << r << ": (1 + 2 + 3) / 3";
    ASSERT_TRUE(grads_b[r].defined()) << "rank " << r;
    EXPECT_TRUE(grads_b[r].eq(2.0f).all().item<bool>()) << "rank " << r << ": 6 / 3";
  }
}

TEST(GradSyncTraining, BucketsLaunchedAtDifferentMomentsDoNotCrossTheAllGather) {
  // `w` is used on rank 0 only, after the all-gather: rank 0 launches its bucket from the hook,
  // before the all-gather's backward all-reduce; rank 1 only in finish(), after it. On one shared
  // sequence of collectives the two would pair up wrongly; the buckets' own communicator keeps
  // them apart.
  ThreadGroup group(2, /*comm_timeout_s=*/30);
  std::vector<torch::Tensor> grad_w(2), grad_x(2);
  group.run([&](Communicator& comm) {
    auto x = torch::full({2, 3}, 1.0 + comm.rank(), torch::requires_grad());
    auto w = torch::full({3}, 2.0f, torch::requires_grad());
    GradSyncOptions o;
    o.bucket_bytes = o.first_bucket_bytes = 1;
    GradSync sync({x, w}, comm, o);
    auto gathered = all_gather_with_grad(x, comm);
    auto loss = gathered.square().sum();
    if (comm.rank() == 0) loss = loss + (gathered.sum(0) * w).sum();
    loss.backward();
    sync.finish();
    grad_w[comm.rank()] = w.grad().clone();
    grad_x[comm.rank()] = x.grad().clone();
  });
  // x holds rank 0's ones on both ranks and g = [x; x]. The global loss is the mean over ranks of
  // loss_0 = sum(g^2) + sum(colsum(g) * w) and loss_1 = sum(g^2). Each of x's two blocks gets
  // (2g + w) + 2g = 6 from the two losses, so d/dx = 2 blocks * 6 / 2 = 6; d/dw = colsum(g) / 2 = 2.
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(grad_x[r].eq(6.0f).all().item<bool>()) << "rank " << r << ": " << grad_x[r];
    EXPECT_TRUE(grad_w[r].eq(2.0f).all().item<bool>()) << "rank " << r << ": " << grad_w[r];
  }
}

TEST(GradSyncTraining, SecondBackwardBeforeFinishIsRefused) {
  ThreadGroup group(1);
  auto w = torch::ones({2}, torch::requires_grad());
  GradSync sync({w}, group.comm(0), {}, {"head.weight"});
  w.sum().backward();
  auto msg = exception_text([&] { w.sum().backward(); });
  EXPECT_NE(msg.find("head.weight received a second gradient before finish()"), std::string::npos) << msg;
}

TEST(GradSyncTraining, ParametersAreBroadcastFromRankZero) {
  ThreadGroup group(3);
  std::vector<torch::Tensor> values(3);
  group.run([&](Communicator& comm) {
    auto w = torch::full({5}, static_cast<float>(comm.rank() + 10), torch::requires_grad());
    GradSync sync({w}, comm);
    values[comm.rank()] = w.detach().clone();
  });
  for (int r = 0; r < 3; ++r) EXPECT_TRUE(values[r].eq(10.0f).all().item<bool>()) << "rank " << r;
}

TEST(ParameterCheck, DivergenceNamesTheRanksThatDiffer) {
  ThreadGroup group(3);
  std::vector<std::string> errors(3);
  group.run([&](Communicator& comm) {
    auto w = torch::linspace(-1, 1, 1000);
    check_parameters_in_sync({w}, comm, "step 0");  // identical: passes
    if (comm.rank() == 2) w[17] += 1e-6;            // a small change in one element
    errors[comm.rank()] = exception_text([&] { check_parameters_in_sync({w}, comm, "step 100"); });
  });
  for (int r = 0; r < 3; ++r) {
    EXPECT_NE(errors[r].find("parameters diverged across ranks at step 100: rank 2"), std::string::npos) << errors[r];
    EXPECT_EQ(errors[r].find("rank 1 ("), std::string::npos) << errors[r];
  }
}

TEST(Watchdog, RankThatSkipsACollectiveIsNamed) {
  ThreadGroup group(3, /*comm_timeout_s=*/1.5);  // ample for the warm-up barrier on a loaded machine
  std::vector<std::string> errors(3);
  group.run([&](Communicator& comm) {
    comm.barrier("warm_up");
    if (comm.rank() == 1) return;  // skips the next collective
    auto t = torch::ones({8});
    errors[comm.rank()] = exception_text([&] { comm.all_reduce(t, ReduceOp::Sum, "grad_bucket_0"); });
  });
  for (int r : {0, 2}) {
    EXPECT_NE(errors[r].find("collective 'grad_bucket_0' (operation #1 on the thread communicator) did not complete "
                             "within 1.5 s"),
              std::string::npos)
        << errors[r];
    EXPECT_NE(errors[r].find("ranks that never arrived: 1."), std::string::npos) << errors[r];
  }
  auto timeouts = group.timeouts();
  ASSERT_FALSE(timeouts.empty());
  for (const auto& t : timeouts) {
    EXPECT_EQ(t.missing, std::vector<int>{1});
    EXPECT_EQ(t.name, "grad_bucket_0");
  }
}

TEST(Watchdog, LaterOperationsFailAfterAFailure) {
  ThreadGroup group(2, /*comm_timeout_s=*/0.2);
  std::string later;
  group.run([&](Communicator& comm) {
    if (comm.rank() == 1) return;
    auto t = torch::ones({2});
    auto first = comm.all_reduce_async(t, ReduceOp::Sum, "first");
    auto second = comm.all_reduce_async(t, ReduceOp::Sum, "second");
    EXPECT_THROW(first->wait(), Error);
    later = exception_text([&] { second->wait(); });
  });
  EXPECT_NE(later.find("second (thread, rank 0) was not run: an earlier operation failed: first"), std::string::npos)
      << later;
}

TEST(Watchdog, OperationsWithinTheTimeoutAreNotReported) {
  std::vector<StalledOp> reported;
  std::mutex m;
  {
    Watchdog dog(0, 1, 0.2, nullptr, [&](const StalledOp& s) {
      std::lock_guard<std::mutex> lock(m);
      reported.push_back(s);
    });
    int ch = dog.add_channel("mpi");
    auto seq = dog.begin(ch, "quick");
    dog.end(ch, seq);
    std::atomic<bool> done{false};
    dog.begin(ch, "device_op", [&] { return done.load(); });  // ends when its poll says so
    done = true;
    dog.begin(ch, "stuck");
    // "stuck" (timeout 0.2 s) is reported; the two that ended before it would have been reported
    // no later than it had they still counted as running.
    EXPECT_TRUE(starft::testing::wait_until(
        [&] {
          std::lock_guard<std::mutex> lock(m);
          return !reported.empty();
        },
        30));
    EXPECT_EQ(dog.entered(ch), 3u);
  }
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].name, "stuck");
  EXPECT_EQ(reported[0].seq, 2u);
  EXPECT_NE(reported[0].message().find("ranks that never arrived: unknown"), std::string::npos);
}
