// Distributed evaluation under mpiexec (2 and 3 ranks): the counts reduced over the MPI ranks
// equal the counts of a one-rank evaluation that each rank also runs on its own.
#include <gtest/gtest.h>

#include "clip/weights.h"
#include "distributed/runtime.h"
#include "distributed/thread_communicator.h"
#include "eval/evaluate.h"
#include "eval_test_store.h"
#include "test_util.h"
#include "tiny_clip.h"
#include "data/templates.h"

using namespace starft;
using starft::testing::fixture;

namespace {

std::vector<int64_t> counts(const eval::EvalResults& r) {
  std::vector<int64_t> out;
  for (const auto& s : r.stores) {
    for (const auto& c : s.metrics.classes) {
      out.push_back(c.correct);
      out.push_back(c.total);
    }
    for (const auto& g : s.metrics.groups) {
      out.push_back(g.correct);
      out.push_back(g.total);
    }
  }
  return out;
}

}  // namespace

TEST(EvalRanks, MpiRanksGiveTheCountsOfOneRank) {
  auto& comm = distributed::Runtime::get().mpi();
  // Each rank writes the same stores into its own scratch directory (same seeds, same pixels).
  starft::testing::EvalStores stores;
  const std::string classes = data::datasets_dir() + "/classnames/";
  auto specs = eval::parse_eval_specs({stores.fish, stores.subset,
                                       stores.coarse + ":class-map=" + classes + "example-fish-map.tsv",
                                       stores.birds + ":class-names=store:templates=waterbirds"});
  eval::EvalOptions options;
  options.templates = "simple";
  options.class_names = classes + "example-fish.txt";
  options.train_store = stores.birds_train;
  options.batch_size = 4;

  auto model = clip::load_weights(fixture("clip/tiny_clip_openai.safetensors"), starft::testing::tiny_options());
  auto tokenizer = clip::Tokenizer::load(fixture("clip/bpe_simple_vocab_16e6.txt.gz"));
  eval::Evaluator evaluator(specs, options);
  const auto distributed = evaluator.evaluate(model, tokenizer, comm);
  EXPECT_EQ(distributed.ranks, comm.size());

  distributed::ThreadGroup alone(1);
  const auto single = evaluator.evaluate(model, tokenizer, alone.comm(0));
  EXPECT_EQ(single.ranks, 1);
  EXPECT_EQ(counts(distributed), counts(single));
  ASSERT_EQ(distributed.stores.size(), 4u);
  EXPECT_EQ(distributed.stores[3].metrics.total, 32);
  EXPECT_DOUBLE_EQ(*distributed.stores[3].metrics.avg_acc_train_weighted,
                   *single.stores[3].metrics.avg_acc_train_weighted);

  // Every rank holds the same results: the largest and the smallest count over ranks agree.
  auto mine = torch::tensor(counts(distributed), torch::kLong);
  auto high = mine.clone(), low = -mine;
  comm.all_reduce(high, distributed::ReduceOp::Max, "test_eval_max");
  comm.all_reduce(low, distributed::ReduceOp::Max, "test_eval_min");
  EXPECT_TRUE(torch::equal(high, mine));
  EXPECT_TRUE(torch::equal(-low, mine));
}
