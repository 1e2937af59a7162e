// Metrics, class matching and WiSE-FT interpolation on hand-made numbers (no model).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "common/error.h"
#include "distributed/thread_communicator.h"
#include "eval/class_map.h"
#include "eval/evaluate.h"
#include "eval/metrics.h"
#include "eval/wise.h"
#include "test_util.h"
#include "data/templates.h"

using namespace starft;
using namespace starft::eval;
using starft::testing::TempDir;
using starft::testing::error_of;

namespace {

torch::Tensor longs(std::vector<int64_t> v) { return torch::tensor(v, torch::kLong); }

std::vector<int64_t> to_vec(const torch::Tensor& t) {
  auto c = t.to(torch::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

std::string write(const TempDir& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir / name) << text;
  return dir / name;
}

ClassList fish_head() { return data::read_class_list(data::datasets_dir() + "/classnames/example-fish.txt"); }

}  // namespace

// 10 samples, 2 classes, 4 groups (group = 2 * label + place), predictions chosen by hand.
//   group 0 (label 0, place 0): samples 0-3, 3 correct
//   group 1 (label 0, place 1): samples 4-5, 1 correct
//   group 2 (label 1, place 0): samples 6-6, 0 correct
//   group 3 (label 1, place 1): samples 7-9, 3 correct
TEST(EvalMetrics, GroupsWorstGroupAndBothAverages) {
  Counts counts(2, 4);
  counts.add(longs({0, 0, 0, 1, 0, 1, 0, 1, 1, 1}), longs({0, 0, 0, 0, 0, 0, 1, 1, 1, 1}),
             longs({0, 0, 0, 0, 1, 1, 2, 3, 3, 3}));
  EXPECT_EQ(to_vec(counts.class_correct()), (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(to_vec(counts.class_total()), (std::vector<int64_t>{6, 4}));
  EXPECT_EQ(to_vec(counts.group_correct()), (std::vector<int64_t>{3, 1, 0, 3}));
  EXPECT_EQ(to_vec(counts.group_total()), (std::vector<int64_t>{4, 2, 1, 3}));

  const std::vector<double> train = {0.5, 0.1, 0.1, 0.3};
  auto m = compute_metrics(counts, {"landbird", "waterbird"}, {"g0", "g1", "g2", "g3"}, train);
  EXPECT_EQ(m.correct, 7);
  EXPECT_EQ(m.total, 10);
  EXPECT_DOUBLE_EQ(m.top1, 0.7);
  ASSERT_EQ(m.classes.size(), 2u);
  EXPECT_EQ(m.classes[1].name, "waterbird");
  EXPECT_DOUBLE_EQ(m.classes[0].acc, 4.0 / 6);
  EXPECT_DOUBLE_EQ(m.classes[1].acc, 0.75);
  ASSERT_EQ(m.groups.size(), 4u);
  EXPECT_DOUBLE_EQ(m.groups[0].acc, 0.75);
  EXPECT_DOUBLE_EQ(m.groups[1].acc, 0.5);
  EXPECT_DOUBLE_EQ(m.groups[2].acc, 0.0);
  EXPECT_DOUBLE_EQ(m.groups[3].acc, 1.0);
  EXPECT_DOUBLE_EQ(*m.worst_group_acc, 0.0);
  EXPECT_DOUBLE_EQ(*m.avg_acc, 0.7);  // the plain mean over test samples
  // Waterbirds convention: 0.5 * 0.75 + 0.1 * 0.5 + 0.1 * 0 + 0.3 * 1 = 0.725
  EXPECT_NEAR(*m.avg_acc_train_weighted, 0.725, 1e-12);
  EXPECT_NEAR(m.get("avg_acc_train_weighted"), 0.725, 1e-12);
  EXPECT_DOUBLE_EQ(m.get("worst_group_acc"), 0.0);

  auto j = m.to_json();
  EXPECT_EQ(j["per_group"][2]["correct"], 0);
  EXPECT_EQ(j["per_group"][2]["total"], 1);
  EXPECT_DOUBLE_EQ(j["avg_acc"].get<double>(), 0.7);
  EXPECT_DOUBLE_EQ(j["per_class"][0]["acc"].get<double>(), 4.0 / 6);
}

TEST(EvalMetrics, EmptyGroupIsSkippedAndTrainWeightsRenormalised) {
  Counts counts(2, 4);
  // No sample of group 2.
  counts.add(longs({0, 1, 1, 1}), longs({0, 0, 1, 1}), longs({0, 1, 3, 3}));
  auto m = compute_metrics(counts, {"a", "b"}, {}, {0.4, 0.2, 0.2, 0.2});
  EXPECT_TRUE(std::isnan(m.groups[2].acc));
  EXPECT_EQ(m.groups[2].name, "group 2");
  EXPECT_DOUBLE_EQ(*m.worst_group_acc, 0.0);  // group 1: 0 of 1
  // (0.4 * 1 + 0.2 * 0 + 0.2 * 1) / 0.8
  EXPECT_NEAR(*m.avg_acc_train_weighted, 0.75, 1e-12);
  EXPECT_TRUE(m.to_json()["per_group"][2]["acc"].is_null());
}

TEST(EvalMetrics, StoreWithoutGroupsHasNoGroupMetrics) {
  Counts counts(3, 0);
  counts.add(longs({2, 1, 0}), longs({2, 1, 1}));
  auto m = compute_metrics(counts, {"x", "y", "z"});
  EXPECT_TRUE(m.groups.empty());
  EXPECT_FALSE(m.worst_group_acc.has_value());
  EXPECT_FALSE(m.to_json().contains("worst_group_acc"));
  EXPECT_NE(error_of([&] { m.get("worst_group_acc"); }).find("it has no groups"), std::string::npos);
  EXPECT_NE(error_of([&] { m.get("top5"); }).find("unknown metric 'top5'"), std::string::npos);
  EXPECT_NE(error_of([&] { counts.add(longs({0}), longs({3})); }).find("outside [0, 3)"), std::string::npos);
}

TEST(EvalMetrics, GroupProportions) {
  auto p = group_proportions({0, 0, 0, 1, 3, 3, 3, 3}, 4);
  EXPECT_EQ(p, (std::vector<double>{0.375, 0.125, 0.0, 0.5}));
  EXPECT_NE(error_of([] { group_proportions({0, 4}, 4); }).find("group 4"), std::string::npos);
}

// Counts of three ranks summed with one all-reduce equal the counts of one process.
TEST(EvalMetrics, CountsAllReduceOverRanksEqualsOneProcess) {
  const auto pred = longs({0, 1, 1, 2, 0, 2, 2, 1, 0, 0, 1});
  const auto lab = longs({0, 1, 2, 2, 0, 1, 2, 1, 1, 0, 1});
  const auto grp = longs({0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1});
  Counts whole(3, 2);
  whole.add(pred, lab, grp);
  distributed::ThreadGroup group(3);
  std::vector<Counts> per_rank(3);
  group.run([&](distributed::Communicator& comm) {
    Counts c(3, 2);
    auto idx = torch::arange(comm.rank(), 11, 3);
    c.add(pred.index_select(0, idx), lab.index_select(0, idx), grp.index_select(0, idx));
    c.all_reduce(comm);
    per_rank[comm.rank()] = c;
  });
  for (const auto& c : per_rank) {
    EXPECT_TRUE(torch::equal(c.class_correct(), whole.class_correct()));
    EXPECT_TRUE(torch::equal(c.class_total(), whole.class_total()));
    EXPECT_TRUE(torch::equal(c.group_correct(), whole.group_correct()));
    EXPECT_TRUE(torch::equal(c.group_total(), whole.group_total()));
  }
}

TEST(EvalClassMap, SameClassesAreIdentity) {
  auto head = fish_head();
  ClassList store{head.names, head.ids, "store"};
  auto m = match_classes(store, head, "store s");
  EXPECT_EQ(m.matching, Matching::identity);
  auto logits = torch::randn({5, 4});
  EXPECT_TRUE(torch::equal(m.apply(logits), logits));
}

// ImageNet-R style: the store has 2 of the head's 4 classes (by id, in another order). The
// argmax is restricted to those columns: a sample whose overall best column is outside the
// subset is still classified among the subset.
TEST(EvalClassMap, SubsetRestrictsTheArgmaxToMatchedColumns) {
  auto head = fish_head();
  ClassList store{{"tiger shark", "goldfish"}, {"n01491361", "n01443537"}, "subset"};
  auto m = match_classes(store, head, "store subset");
  EXPECT_EQ(m.matching, Matching::class_id);
  ASSERT_EQ(m.columns.size(), 2u);
  EXPECT_EQ(m.columns[0], (std::vector<int64_t>{3}));
  EXPECT_EQ(m.columns[1], (std::vector<int64_t>{1}));
  // Columns: tench, goldfish, great white shark, tiger shark.
  auto logits = torch::tensor({{9.0f, 1.0f, 8.0f, 2.0f},    // overall: tench; subset: tiger shark (0)
                               {0.0f, 5.0f, 9.0f, 4.0f},    // overall: great white; subset: goldfish (1)
                               {0.0f, 1.0f, 0.0f, 3.0f}});  // tiger shark (0)
  auto mapped = m.apply(logits);
  EXPECT_EQ(to_vec(mapped.argmax(1)), (std::vector<int64_t>{0, 1, 0}));
  Counts counts(2, 0);
  counts.add(mapped.argmax(1), longs({0, 1, 1}));
  EXPECT_EQ(to_vec(counts.class_correct()), (std::vector<int64_t>{1, 1}));
  // The unrestricted argmax would have got none right.
  EXPECT_EQ(to_vec(logits.argmax(1)), (std::vector<int64_t>{0, 2, 3}));

  // Without ids on one side: by name.
  ClassList by_name{{"goldfish", "tench"}, {}, "names"};
  auto n = match_classes(by_name, head, "store names");
  EXPECT_EQ(n.matching, Matching::class_name);
  EXPECT_EQ(n.columns[0], (std::vector<int64_t>{1}));
  EXPECT_EQ(n.columns[1], (std::vector<int64_t>{0}));
}

TEST(EvalClassMap, UnmatchedOrAmbiguousClassesAreErrors) {
  auto head = fish_head();
  ClassList store{{"tench", "hammerhead"}, {"n01440764", "n01494475"}, "s"};
  auto e = error_of([&] { match_classes(store, head, "store s"); });
  EXPECT_NE(e.find("store s: 1 of its 2 classes have no column in the head"), std::string::npos) << e;
  EXPECT_NE(e.find("n01494475 ('hammerhead')"), std::string::npos) << e;
  EXPECT_NE(e.find("matched by class id"), std::string::npos) << e;
  ClassList dup_head{{"crane", "crane", "tench"}, {}, "dup.txt"};
  ClassList by_name{{"crane"}, {}, "s2"};
  e = error_of([&] { match_classes(by_name, dup_head, "store s2"); });
  EXPECT_NE(e.find("'crane' each appear more than once in the head built from dup.txt"), std::string::npos) << e;
}

// ObjectNet style: each store class takes the maximum over its head columns.
TEST(EvalClassMap, ManyToOneMapTakesTheMaximumOverMappedColumns) {
  auto head = fish_head();
  ClassList store{{"shark", "cyprinid"}, {}, "coarse"};
  auto m = read_class_map(data::datasets_dir() + "/classnames/example-fish-map.tsv", store, head);
  EXPECT_EQ(m.matching, Matching::class_map);
  EXPECT_EQ(m.columns[0], (std::vector<int64_t>{2, 3}));  // shark: great white, tiger
  EXPECT_EQ(m.columns[1], (std::vector<int64_t>{0, 1}));  // cyprinid: tench, goldfish
  auto logits = torch::tensor({{1.0f, 2.0f, 7.0f, 3.0f}, {6.0f, 0.0f, 5.0f, 5.5f}, {0.0f, 4.0f, 1.0f, 3.5f}});
  auto mapped = m.apply(logits);
  auto expected = torch::tensor({{7.0f, 2.0f}, {5.5f, 6.0f}, {3.5f, 4.0f}});
  EXPECT_TRUE(torch::equal(mapped, expected)) << mapped;
  EXPECT_EQ(to_vec(mapped.argmax(1)), (std::vector<int64_t>{0, 1, 1}));
}

TEST(EvalClassMap, ClassMapErrorsNameFileAndLine) {
  auto head = fish_head();
  ClassList store{{"shark", "cyprinid"}, {}, "coarse"};
  TempDir dir;
  auto missing = write(dir, "missing.tsv", "shark\tn01484850\n");
  auto e = error_of([&] { read_class_map(missing, store, head); });
  EXPECT_NE(e.find("missing.tsv: no entry for 1 of the 2 classes of the store coarse: 'cyprinid'"), std::string::npos)
      << e;
  auto unknown_store = write(dir, "u1.tsv", "shark\tn01484850\ncyprinid\ttench\ncarp\ttench\n");
  e = error_of([&] { read_class_map(unknown_store, store, head); });
  EXPECT_NE(e.find("u1.tsv:3: 'carp' is not a class of the store coarse"), std::string::npos) << e;
  auto unknown_head = write(dir, "u2.tsv", "shark\tn01484850\tn99999999\ncyprinid\ttench\n");
  e = error_of([&] { read_class_map(unknown_head, store, head); });
  EXPECT_NE(e.find("u2.tsv:1: 'n99999999' is not a class of the head"), std::string::npos) << e;
  auto twice = write(dir, "twice.tsv", "shark\tn01484850\nshark\ttench\ncyprinid\ttench\n");
  e = error_of([&] { read_class_map(twice, store, head); });
  EXPECT_NE(e.find("twice.tsv:2: store class 'shark' already has an entry on line 1"), std::string::npos) << e;
  auto lonely = write(dir, "lonely.tsv", "shark\n");
  e = error_of([&] { read_class_map(lonely, store, head); });
  EXPECT_NE(e.find("lonely.tsv:1: a class map line is"), std::string::npos) << e;
}

TEST(EvalSpec, ParsesStoreSpecsAndRejectsBadOnes) {
  auto specs = parse_eval_specs({"a/b/,c:name=val:templates=waterbirds:class-names=store", "d:train-store=t"});
  ASSERT_EQ(specs.size(), 3u);
  EXPECT_EQ(specs[0].store, "a/b/");
  EXPECT_EQ(specs[1].store, "c");
  EXPECT_EQ(specs[1].name, "val");
  EXPECT_EQ(specs[1].templates, "waterbirds");
  EXPECT_EQ(specs[1].class_names, "store");
  EXPECT_EQ(specs[2].train_store, "t");
  EXPECT_NE(error_of([] { parse_eval_spec("s:colour=red"); }).find("unknown key 'colour'"), std::string::npos);
  EXPECT_NE(error_of([] { parse_eval_spec("s:name"); }).find("'name' is not key=value"), std::string::npos);
  EXPECT_NE(error_of([] { parse_eval_spec("s:name=a:name=b"); }).find("name is given twice"), std::string::npos);
  EXPECT_NE(error_of([] { parse_eval_spec(":name=a"); }).find("no store directory"), std::string::npos);
  EXPECT_NE(error_of([] { parse_eval_specs({"a,"}); }).find("empty entry"), std::string::npos);
  // The former key is refused naming the new one.
  const auto renamed = error_of([] { parse_eval_spec("a:classnames=store"); });
  EXPECT_NE(renamed.find("class-names"), std::string::npos) << renamed;
  EXPECT_EQ(renamed.find("unknown key"), std::string::npos) << renamed;
}

// --batch-size is global, as in training: each rank takes ceil(B / ranks).
TEST(EvalSpec, GlobalBatchIsSplitOverTheRanks) {
  EXPECT_EQ(per_rank_batch(64, 1), 64);
  EXPECT_EQ(per_rank_batch(64, 2), 32);
  EXPECT_EQ(per_rank_batch(64, 3), 22);
  EXPECT_EQ(per_rank_batch(5, 3), 2);
  EXPECT_EQ(per_rank_batch(1, 3), 1);
}

TEST(EvalWise, AlphasAreParsedAndChecked) {
  EXPECT_EQ(parse_alphas("0, 0.25,1"), (std::vector<double>{0, 0.25, 1}));
  EXPECT_NE(error_of([] { parse_alphas("0,1.5"); }).find("1.5 lies outside [0, 1]"), std::string::npos);
  EXPECT_NE(error_of([] { parse_alphas("0,x"); }).find("'x' is not a number"), std::string::npos);
  EXPECT_NE(error_of([] { parse_alphas("0.5,0.5"); }).find("listed twice"), std::string::npos);
  EXPECT_NE(error_of([] { parse_alphas("0,,1"); }).find("empty entry"), std::string::npos);
  EXPECT_EQ(alpha_label(0.5), "alpha=0.5");
}

TEST(EvalWise, InterpolationEndsAreExactlyTheTwoModels) {
  safetensors::TensorMap zs{{"w", torch::randn({3, 4})}, {"logit_scale", torch::tensor(4.6f)}};
  safetensors::TensorMap ft{{"w", torch::randn({3, 4})}, {"logit_scale", torch::tensor(3.0f)}};
  auto a0 = interpolate(zs, ft, 0.0), a1 = interpolate(zs, ft, 1.0), half = interpolate(zs, ft, 0.5);
  for (const auto& name : {"w", "logit_scale"}) {
    EXPECT_TRUE(torch::equal(a0[name], zs[name])) << name;
    EXPECT_TRUE(torch::equal(a1[name], ft[name])) << name;
    EXPECT_TRUE(torch::allclose(half[name], (zs[name] + ft[name]) / 2)) << name;
  }
  EXPECT_FLOAT_EQ(half["logit_scale"].item<float>(), 3.8f);
  safetensors::TensorMap other{{"w", torch::randn({3, 5})}, {"logit_scale", torch::tensor(3.0f)}};
  EXPECT_NE(error_of([&] { interpolate(zs, other, 0.5); }).find("tensor 'w' is [3, 4] in the zero-shot"),
            std::string::npos);
  safetensors::TensorMap fewer{{"w", torch::randn({3, 4})}};
  EXPECT_NE(error_of([&] { interpolate(zs, fewer, 0.5); }).find("'logit_scale' of the zero-shot weights is missing"),
            std::string::npos);
}
