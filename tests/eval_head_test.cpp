// The zero-shot head and the Evaluator on the tiny fixture model and generated stores; ranks
// as threads (distributed::ThreadGroup) for the split-over-ranks checks.
#include <gtest/gtest.h>

#include <fstream>

#include "clip/weights.h"
#include "common/error.h"
#include "data/store.h"
#include "distributed/thread_communicator.h"
#include "eval/evaluate.h"
#include "eval/zeroshot_head.h"
#include "eval_test_store.h"
#include "test_util.h"
#include "tiny_clip.h"
#include "data/templates.h"

using namespace starft;
using namespace starft::eval;
using starft::testing::fish_list;
using starft::testing::fish_map;
using starft::testing::fixture;
using starft::testing::TempDir;
using starft::testing::error_of;

namespace {

clip::CLIP tiny_model() {
  return clip::load_weights(fixture("clip/tiny_clip_openai.safetensors"), starft::testing::tiny_options());
}

const clip::Tokenizer& tokenizer() {
  static clip::Tokenizer t = clip::Tokenizer::load(fixture("clip/bpe_simple_vocab_16e6.txt.gz"));
  return t;
}

struct Stores : starft::testing::EvalStores {
  // Every kind of matching: identity (fish), class id subset, class map, the store's own head.
  std::vector<EvalSpec> specs() const {
    return parse_eval_specs({fish + "," + subset + "," + coarse + ":class-map=" + fish_map() + "," + birds +
                             ":class-names=store:templates=waterbirds:train-store=" + birds_train});
  }
  EvalOptions options() const {
    EvalOptions o;
    o.templates = "simple";
    o.class_names = fish_list();
    o.batch_size = 4;
    o.text_batch_size = 3;
    return o;
  }
};

}  // namespace

// The head equals the definition computed text by text: per class, the normalised mean of the
// normalised features of each template, times exp(logit_scale).
TEST(EvalHead, MatchesTheDefinitionTextByText) {
  auto model = tiny_model();
  const std::vector<std::string> classes{"tench", "great white shark", "goldfish"};
  const std::vector<std::string> templates{"a photo of a {}.", "a sketch of a {}.", "a {} in the water."};
  HeadOptions options;
  options.text_batch_size = 2;  // batches that cut across classes
  auto head = zeroshot_head(model, tokenizer(), classes, templates, options);
  ASSERT_EQ(head.sizes(), (std::vector<int64_t>{3, 64}));
  torch::NoGradGuard no_grad;
  const double scale = model->logit_scale.exp().item<double>();
  auto norm = [](const torch::Tensor& x) { return x / x.norm(2, -1, true); };
  for (size_t c = 0; c < classes.size(); ++c) {
    auto sum = torch::zeros({64});
    for (const auto& t : templates) {
      auto tokens = tokenizer().tokenize_batch({data::apply_template(t, classes[c])});
      sum += norm(model->encode_text(tokens, false))[0];
    }
    auto expected = scale * norm(sum / 3.0);
    EXPECT_TRUE(torch::allclose(head[c], expected, 1e-5, 1e-5 * scale)) << "class " << classes[c];
  }
  // Unit rows before the scale.
  auto w = class_embeddings(model, tokenizer(), classes, templates, options);
  EXPECT_TRUE(torch::allclose(w.norm(2, 1), torch::ones({3}), 1e-5, 1e-5));
}

TEST(EvalHead, SplitOverRanksEqualsOneProcess) {
  const std::vector<std::string> classes{"tench", "goldfish", "great white shark", "tiger shark", "hammerhead"};
  const auto templates = data::load_templates("fashion");
  auto model = tiny_model();
  auto whole = zeroshot_head(model, tokenizer(), classes, templates);
  distributed::ThreadGroup group(3);
  std::vector<torch::Tensor> heads(3);
  std::vector<clip::CLIP> models;
  for (int r = 0; r < 3; ++r) models.push_back(tiny_model());
  group.run([&](distributed::Communicator& comm) {
    heads[comm.rank()] = zeroshot_head(models[comm.rank()], tokenizer(), classes, templates, {}, &comm);
  });
  for (const auto& h : heads) {
    ASSERT_EQ(h.sizes(), whole.sizes());
    EXPECT_TRUE(torch::allclose(h, whole, 1e-6, 1e-5)) << (h - whole).abs().max();
  }
}

TEST(EvalHead, TokenizerLargerThanTheModelVocabularyIsAnError) {
  clip::CLIPConfig cfg = clip::config_by_name("tiny");
  cfg.vocab_size = 1000;
  clip::CLIP small(cfg);
  auto e = error_of([&] { zeroshot_head(small, tokenizer(), {"tench"}, {"a {}."}); });
  EXPECT_NE(e.find("the tokenizer has 49408 tokens but the model's text tower only 1000"), std::string::npos) << e;
}

// One rank and three ranks (threads) give identical counts on every store, including a rank
// count that does not divide the stores' sizes.
TEST(EvalEvaluator, OneAndThreeRanksGiveIdenticalCounts) {
  Stores stores;
  auto model = tiny_model();
  Evaluator one(stores.specs(), stores.options());
  distributed::ThreadGroup single(1);
  const auto expected = one.evaluate(model, tokenizer(), single.comm(0));
  ASSERT_EQ(expected.stores.size(), 4u);
  EXPECT_EQ(expected.ranks, 1);

  // Totals per class are the stores' label counts.
  for (const auto& r : expected.stores) {
    data::Store store(r.store);
    std::vector<int64_t> per_class(store.manifest().class_names.size(), 0);
    for (auto l : store.labels()) per_class[l]++;
    for (size_t c = 0; c < per_class.size(); ++c) {
      EXPECT_EQ(r.metrics.classes[c].total, per_class[c]) << r.name << " class " << c;
    }
    EXPECT_EQ(r.metrics.total, store.size());
  }
  EXPECT_EQ(expected.stores[0].matching, Matching::identity);
  EXPECT_EQ(expected.stores[1].matching, Matching::class_id);
  EXPECT_EQ(expected.stores[2].matching, Matching::class_map);
  EXPECT_EQ(expected.stores[3].matching, Matching::identity);
  EXPECT_EQ(expected.stores[3].head_classes, 2);
  EXPECT_EQ(expected.stores[3].templates, "waterbirds");
  ASSERT_EQ(expected.stores[3].metrics.groups.size(), 4u);
  EXPECT_TRUE(expected.stores[3].metrics.avg_acc_train_weighted.has_value());
  EXPECT_DOUBLE_EQ(expected.metric("birds", "worst_group_acc"), *expected.stores[3].metrics.worst_group_acc);

  distributed::ThreadGroup three(3);
  std::vector<EvalResults> got(3);
  std::vector<clip::CLIP> models;
  for (int r = 0; r < 3; ++r) models.push_back(tiny_model());
  std::vector<std::unique_ptr<Evaluator>> evaluators;
  for (int r = 0; r < 3; ++r) evaluators.push_back(std::make_unique<Evaluator>(stores.specs(), stores.options()));
  three.run([&](distributed::Communicator& comm) {
    got[comm.rank()] = evaluators[comm.rank()]->evaluate(models[comm.rank()], tokenizer(), comm);
  });
  for (int rank = 0; rank < 3; ++rank) {
    EXPECT_EQ(got[rank].ranks, 3);
    ASSERT_EQ(got[rank].stores.size(), expected.stores.size());
    for (size_t s = 0; s < expected.stores.size(); ++s) {
      const auto& a = expected.stores[s].metrics;
      const auto& b = got[rank].stores[s].metrics;
      EXPECT_EQ(b.correct, a.correct) << "rank " << rank << " store " << expected.stores[s].name;
      EXPECT_EQ(b.total, a.total);
      for (size_t c = 0; c < a.classes.size(); ++c) {
        EXPECT_EQ(b.classes[c].correct, a.classes[c].correct) << expected.stores[s].name << " class " << c;
        EXPECT_EQ(b.classes[c].total, a.classes[c].total);
      }
      ASSERT_EQ(b.groups.size(), a.groups.size());
      for (size_t g = 0; g < a.groups.size(); ++g) {
        EXPECT_EQ(b.groups[g].correct, a.groups[g].correct) << "group " << g;
        EXPECT_EQ(b.groups[g].total, a.groups[g].total) << "group " << g;
      }
    }
  }
}

// A store smaller than the number of ranks leaves some ranks without samples; they still
// take part in the reduction.
TEST(EvalEvaluator, RanksWithoutSamplesStillReduce) {
  TempDir dir;
  auto layout = starft::testing::fish_layout();
  layout.count = 2;
  starft::testing::make_eval_store(dir / "two", layout);
  EvalOptions o;
  o.templates = "simple";
  std::vector<EvalResults> got(3);
  std::vector<clip::CLIP> models;
  for (int r = 0; r < 3; ++r) models.push_back(tiny_model());
  distributed::ThreadGroup three(3);
  three.run([&](distributed::Communicator& comm) {
    Evaluator e(parse_eval_specs({dir / "two"}), o);
    got[comm.rank()] = e.evaluate(models[comm.rank()], tokenizer(), comm);
  });
  for (const auto& r : got) EXPECT_EQ(r.stores[0].metrics.total, 2);
}

// Every problem with the request is reported when the Evaluator is built, before any scoring.
TEST(EvalEvaluator, ProblemsAreFoundBeforeScoring) {
  Stores stores;
  auto o = stores.options();
  // The subset store against a head that lacks one of its classes.
  TempDir dir;
  const std::string three_fish = dir / "three.txt";
  std::ofstream(three_fish) << "n01440764\ttench\nn01443537\tgoldfish\nn01484850\tgreat white shark\n";
  o.class_names = three_fish;
  auto e = error_of([&] { Evaluator(parse_eval_specs({stores.subset}), o); });
  EXPECT_NE(
      e.find("store " + stores.subset + ": 1 of its 2 classes have no column in the head built from " + three_fish),
      std::string::npos)
      << e;
  EXPECT_NE(e.find("n01491361 ('tiger shark')"), std::string::npos) << e;
  // The coarse store without its class map: its names are not head classes.
  o = stores.options();
  e = error_of([&] { Evaluator(parse_eval_specs({stores.coarse}), o); });
  EXPECT_NE(e.find("2 of its 2 classes have no column in the head"), std::string::npos) << e;
  // A class map that misses one of the store's classes.
  const std::string partial = dir / "partial.tsv";
  std::ofstream(partial) << "shark\tgreat white shark\ttiger shark\n";
  e = error_of([&] { Evaluator(parse_eval_specs({stores.coarse + ":class-map=" + partial}), o); });
  EXPECT_NE(e.find("no entry for 1 of the 2 classes of the store " + stores.coarse + ": 'cyprinid'"), std::string::npos)
      << e;
  // Missing store, unknown template set, two stores with one name.
  e = error_of([&] { Evaluator(parse_eval_specs({dir / "nowhere"}), o); });
  EXPECT_NE(e.find("nowhere: no such directory"), std::string::npos) << e;
  e = error_of([&] { Evaluator(parse_eval_specs({stores.fish + ":templates=nosuchset"}), o); });
  EXPECT_NE(e.find("unknown template set 'nosuchset'"), std::string::npos) << e;
  e = error_of([&] { Evaluator(parse_eval_specs({stores.fish + "," + stores.fish}), o); });
  EXPECT_NE(e.find("two stores are named 'fish'"), std::string::npos) << e;
  // Training proportions from a store without groups; groups asked of a store without them.
  e = error_of(
      [&] { Evaluator(parse_eval_specs({stores.birds + ":class-names=store:train-store=" + stores.fish}), o); });
  EXPECT_NE(e.find("--train-store " + stores.fish + ": the store has no groups"), std::string::npos) << e;
  e = error_of([&] { Evaluator(parse_eval_specs({stores.fish + ":train-store=" + stores.birds_train}), o); });
  EXPECT_NE(e.find("is given but the store has no groups"), std::string::npos) << e;
}
