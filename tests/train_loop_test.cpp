// The training loop on the tiny fixture model and tiny stores: teacher cache versus online
// teacher, exact text savings, 2 ranks versus 1, the loss going down, NaN handling, pre-training.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>

#include "clip/tokenizer.h"
#include "clip/weights.h"
#include "common/error.h"
#include "starft/build_config.h"
#include "data/store.h"
#include "eval/evaluate.h"
#include "distributed/thread_communicator.h"
#include "tensor_close.h"
#include "test_util.h"
#include "data/templates.h"
#include "train/teacher_cache.h"
#include "train/teacher_cache_build.h"
#include "train/text_encoder.h"
#include "train/trainer.h"
#include "eval_test_store.h"
#include "train_test_store.h"

using namespace starft;
using namespace starft::train;
using starft::testing::relative_difference;
using starft::testing::TempDir;
using starft::testing::dense_gradient;
using starft::testing::tensors_close;
using starft::testing::error_of;
namespace fs = std::filesystem;

namespace {

void build_cache(const TrainConfig& c, bool float16 = false) {
  clip::LoadOptions lo;
  lo.model = c.model;
  auto teacher = clip::load_weights(c.weights, lo);
  teacher->eval();
  data::Store store(c.store);
  auto tokenizer = clip::Tokenizer::load(c.vocab);
  CacheBuildOptions o;
  o.caption_template = c.caption_template;
  o.float16 = float16;
  o.batch_size = 5;
  o.workers = 1;
  distributed::ThreadGroup group(1);
  build_teacher_cache(c.teacher_cache_path(), teacher, store, tokenizer, data::load_templates(c.spurious_pool), o,
                      group.comm(0));
}

// The first batch of epoch 0 as the trainer's loader produces it.
data::Batch first_batch(Trainer& t) {
  t.loader().start(0, 0);
  auto b = t.loader().next();
  EXPECT_TRUE(b.has_value());
  return *b;
}

void perturb(clip::CLIP& model) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  for (auto& p : model->parameters()) p.add_(0.02 * torch::randn(p.sizes(), gen));
}

}  // namespace

TEST(TeacherCache, MatchesTheOnlineTeacherWithoutAugmentation) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store");
  auto c = starft::testing::tiny_config(tmp / "store", tmp / "run");
  c.augment = false;
  build_cache(c);
  distributed::ThreadGroup group(1);
  Trainer cached(c, group.comm(0));
  auto online_cfg = c;
  online_cfg.teacher = TeacherSource::online;
  online_cfg.run_dir = tmp / "run-online";
  Trainer online(online_cfg, group.comm(0));
  EXPECT_NEAR(cached.teacher_scale(), online.teacher_scale(), 1e-4 * online.teacher_scale());
  // The student starts as the teacher (R = 0); move it away, identically in both trainers.
  perturb(cached.model());
  perturb(online.model());
  for (int i = 0; i < 2; ++i) {
    auto batch = first_batch(cached);
    auto a = cached.compute_loss(batch, 0, i);
    auto b = online.compute_loss(batch, 0, i);
    EXPECT_GT(b.regulariser.item<double>(), 0);
    EXPECT_LT(relative_difference(a.regulariser, b.regulariser), 1e-4);
    EXPECT_LT(relative_difference(a.contrastive, b.contrastive), 1e-6);
    EXPECT_LT(relative_difference(a.loss, b.loss), 1e-4);
  }
  // float16 storage changes the regulariser only slightly.
  auto half_cfg = c;
  half_cfg.teacher_cache = tmp / "half.h5";
  half_cfg.run_dir = tmp / "run-half";
  build_cache(half_cfg, true);
  Trainer half(half_cfg, group.comm(0));
  perturb(half.model());
  auto batch = first_batch(half);
  EXPECT_LT(
      relative_difference(half.compute_loss(batch, 0, 0).regulariser, online.compute_loss(batch, 0, 0).regulariser),
      2e-2);
}

TEST(TeacherCache, RefusesACacheOfOtherInputsNamingThePart) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store");
  auto c = starft::testing::tiny_config(tmp / "store", tmp / "run");
  build_cache(c);
  distributed::ThreadGroup group(1);
  auto other_pool = c;
  other_pool.spurious_pool = "textures";
  auto msg = error_of([&] { Trainer t(other_pool, group.comm(0)); });
  EXPECT_NE(msg.find("spurious pool differs"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("teacher weights differ"), std::string::npos) << msg;
  EXPECT_NE(msg.find("starft cache-teacher"), std::string::npos) << msg;

  // Other weights: the same model with one value changed.
  auto tensors = safetensors::load(c.weights).tensors;
  tensors["logit_scale"] = tensors["logit_scale"].to(torch::kFloat) + 0.5;
  safetensors::save(tmp / "other.safetensors", tensors);
  auto other_weights = c;
  other_weights.weights = tmp / "other.safetensors";
  msg = error_of([&] { Trainer t(other_weights, group.comm(0)); });
  EXPECT_NE(msg.find("teacher weights differ"), std::string::npos) << msg;

  // Another store (different samples) behind the same path.
  starft::testing::make_train_store(tmp / "store2", 24, false, 32, 99);
  fs::copy_file(c.teacher_cache_path(), tmp / "store2/teacher-cache.h5");
  auto other_store = c;
  other_store.store = tmp / "store2";
  msg = error_of([&] { Trainer t(other_store, group.comm(0)); });
  EXPECT_NE(msg.find("store manifest differs"), std::string::npos) << msg;

  // No cache at all.
  auto missing = c;
  missing.teacher_cache = tmp / "none.h5";
  msg = error_of([&] { Trainer t(missing, group.comm(0)); });
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
}

TEST(TextSavings, DedupAndTruncationLeaveLossAndGradientsUnchanged) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store");
  auto c = starft::testing::tiny_config(tmp / "store", tmp / "run");
  c.teacher = TeacherSource::online;
  c.augment = false;
  distributed::ThreadGroup group(1);
  std::vector<std::pair<bool, bool>> modes = {{false, false}, {true, false}, {false, true}, {true, true}};
  std::vector<double> losses;
  std::vector<std::vector<torch::Tensor>> grads;
  std::optional<data::Batch> batch;
  for (auto [dedup, truncate] : modes) {
    auto m = c;
    m.dedup = dedup;
    m.truncate = truncate;
    m.run_dir = tmp / ("run" + std::to_string(dedup) + std::to_string(truncate));
    Trainer t(m, group.comm(0));
    if (!batch) batch = first_batch(t);
    auto loss = t.compute_loss(*batch, 0, 0);
    t.backward(loss);
    losses.push_back(loss.loss.item<double>());
    std::vector<torch::Tensor> g;
    for (const auto& [name, p] : t.parameters())
      g.push_back(p.grad().defined() ? dense_gradient(p) : torch::zeros_like(p));
    grads.push_back(g);
  }
  // The batch repeats captions (4 classes in 8 samples), so deduplication does real work.
  std::set<int64_t> labels;
  for (int64_t i = 0; i < batch->labels.numel(); ++i) labels.insert(batch->labels[i].item<int64_t>());
  EXPECT_LT(labels.size(), static_cast<size_t>(batch->labels.numel()));
  for (size_t m = 1; m < modes.size(); ++m) {
    EXPECT_NEAR(losses[m], losses[0], 1e-5 * std::abs(losses[0])) << m;
    for (size_t i = 0; i < grads[0].size(); ++i) {
      EXPECT_TRUE(tensors_close(grads[m][i], grads[0][i], 1e-4, 1e-9)) << "mode " << m << " parameter " << i;
    }
  }
}

TEST(TextSavings, UniqueTextsMapBack) {
  auto u = unique_texts({"a", "b", "a", "c", "b"});
  EXPECT_EQ(u.texts, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(torch::equal(u.inverse, torch::tensor({0, 1, 0, 2, 1}, torch::kLong)));
}

TEST(Trainer, TwoRanksEqualOneRankForAFewStarFTSteps) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store");
  auto c = starft::testing::tiny_config(tmp / "store", tmp / "run");
  c.epochs = 1;
  c.stop_after = 3;
  build_cache(c);
  struct Result {
    std::vector<torch::Tensor> grads, params;  // rank 0's
    std::vector<double> losses;                // metrics.jsonl, per step
    bool ranks_agree = true;
  };
  auto run = [&](int ranks) {
    distributed::ThreadGroup group(ranks);
    Result r;
    std::vector<std::vector<torch::Tensor>> params(ranks);
    std::mutex m;
    auto cfg = c;
    cfg.run_dir = tmp / ("run" + std::to_string(ranks));
    group.run([&](distributed::Communicator& comm) {
      Trainer t(cfg, comm);
      // The synchronised gradient of the first global batch.
      t.backward(t.compute_loss(first_batch(t), 0, 0));
      std::vector<torch::Tensor> grads;
      for (const auto& [name, p] : t.parameters())
        grads.push_back(p.grad().defined() ? dense_gradient(p) : torch::zeros_like(p));
      t.run();
      EXPECT_EQ(t.state().step, 3);
      std::lock_guard<std::mutex> lock(m);
      for (const auto& [name, p] : t.parameters()) params[comm.rank()].push_back(p.detach().clone());
      if (comm.rank() == 0) r.grads = grads;
    });
    for (int k = 1; k < ranks; ++k) {
      for (size_t i = 0; i < params[0].size(); ++i) r.ranks_agree &= torch::equal(params[0][i], params[k][i]);
    }
    r.params = params[0];
    std::ifstream in(cfg.run_dir + "/metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) r.losses.push_back(nlohmann::json::parse(line)["loss"].get<double>());
    return r;
  };
  const auto one = run(1);
  const auto two = run(2);
  EXPECT_TRUE(two.ranks_agree);
  ASSERT_EQ(one.grads.size(), two.grads.size());
  for (size_t i = 0; i < one.grads.size(); ++i) {
    EXPECT_TRUE(tensors_close(two.grads[i], one.grads[i], 1e-5)) << "gradient " << i;
  }
  ASSERT_EQ(one.losses.size(), 3u);
  ASSERT_EQ(two.losses.size(), 3u);
  for (size_t s = 0; s < 3; ++s) EXPECT_NEAR(two.losses[s], one.losses[s], 1e-5 * std::abs(one.losses[s])) << s;
  // After three AdamW steps the parameters agree to a small fraction of the distance travelled
  // (Adam normalises gradients that are zero up to rounding, e.g. the key biases', into full-size
  // steps, so rounding differences show at the scale of lr).
  for (size_t i = 0; i < one.params.size(); ++i) {
    EXPECT_LE((two.params[i] - one.params[i]).abs().max().item<double>(), 3 * c.lr) << "parameter " << i;
  }
}

TEST(Trainer, LossGoesDownAndRunDirectoryIsComplete) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store", 32);
  auto c = starft::testing::tiny_config(tmp / "store", tmp / "run");
  c.epochs = 6;
  c.lr = 3e-4;
  c.warmup_steps = 3;
  c.checkpoint_every = 5;
  c.keep_checkpoints = 2;
  build_cache(c);
  distributed::ThreadGroup group(1);
  Trainer t(c, group.comm(0));
  EXPECT_EQ(t.run(), Trainer::Outcome::finished);
  EXPECT_EQ(t.state().step, 24);
  std::ifstream in(tmp / "run/metrics.jsonl");
  std::vector<nlohmann::json> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 24u);
  auto mean_loss = [&](size_t from, size_t to) {
    double s = 0;
    for (size_t i = from; i < to; ++i) s += lines[i]["loss"].get<double>();
    return s / (to - from);
  };
  EXPECT_LT(mean_loss(20, 24), 0.8 * mean_loss(0, 4));
  EXPECT_GT(lines[0]["regulariser"].get<double>(), 0);
  EXPECT_DOUBLE_EQ(lines[0]["lambda"].get<double>(), 0.5 * (1 - 1.0 / 6));
  EXPECT_DOUBLE_EQ(lines.back()["lambda"].get<double>(), 0.0);  // diminishing: 0 in the last epoch
  EXPECT_TRUE(fs::exists(tmp / "run/config.ini"));
  EXPECT_EQ(from_ini(
                [&] {
                  std::ifstream f(tmp / "run/config.ini");
                  return std::string(std::istreambuf_iterator<char>(f), {});
                }(),
                "config.ini")
                .lr,
            c.lr);
  auto ckpts = list_checkpoints(tmp / "run");
  ASSERT_EQ(ckpts.size(), 2u);
  EXPECT_EQ(fs::path(ckpts.back()).filename(), "step-000000024");
  // A second run in the same directory must say --resume.
  auto msg = error_of([&] { Trainer again(c, group.comm(0)); });
  EXPECT_NE(msg.find("--resume latest"), std::string::npos) << msg;
  // export writes the final weights alone.
  std::string out;
  ASSERT_EQ(starft::testing::run_command(starft::testing::starft_binary() + " export --run-dir " + (tmp / "run") +
                                             " --out " + (tmp / "final.safetensors"),
                                         &out),
            0)
      << out;
  auto exported = clip::load_weights(tmp / "final.safetensors");
  for (const auto& p : t.model()->named_parameters()) {
    EXPECT_TRUE(torch::equal(exported->named_parameters()[p.key()], p.value())) << p.key();
  }
}

TEST(Trainer, NonFiniteLossStopsWithTheLastGoodCheckpointIntact) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store");
  auto c = starft::testing::tiny_config(tmp / "store", tmp / "run");
  c.regulariser = Regulariser::none;
  c.checkpoint_every = 1;
  c.lr = 1e30;  // the first update blows the weights up
  c.warmup_steps = 0;
  distributed::ThreadGroup group(1);
  Trainer t(c, group.comm(0));
  auto msg = error_of([&] { t.run(); });
  EXPECT_NE(msg.find("the loss is"), std::string::npos) << msg;
  EXPECT_NE(msg.find("last good checkpoint"), std::string::npos) << msg;
  auto ckpts = list_checkpoints(tmp / "run");
  ASSERT_FALSE(ckpts.empty());
  const auto state = read_train_state(ckpts.back());
  EXPECT_TRUE(std::isfinite(state.last_loss));
  EXPECT_NO_THROW(clip::load_weights(weights_path(ckpts.back())));
}

TEST(Trainer, PretrainsFromRandomInitOnCaptions) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store", 24, /*captions=*/true);
  auto c = starft::testing::tiny_config(tmp / "store", tmp / "run");
  c.mode = Mode::pretrain;
  c.weights = "";
  c.model = "tiny";
  c.epochs = 4;
  c.lr = 5e-4;
  distributed::ThreadGroup group(1);
  Trainer t(c, group.comm(0));
  EXPECT_EQ(t.config().regulariser, Regulariser::none);
  t.run();
  std::ifstream in(tmp / "run/metrics.jsonl");
  std::vector<double> loss;
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    loss.push_back(j["loss"].get<double>());
    EXPECT_EQ(j["regulariser"].get<double>(), 0.0);
  }
  ASSERT_EQ(loss.size(), 12u);
  EXPECT_LT(loss[9] + loss[10] + loss[11], loss[0] + loss[1] + loss[2]);
}

TEST(Trainer, CrossEntropyHeadStartsAtTheZeroShotClassifier) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store");
  auto c = starft::testing::tiny_config(tmp / "store", tmp / "run");
  c.loss = Loss::ce;
  c.teacher = TeacherSource::online;
  c.head_templates = "simple";
  c.epochs = 1;
  distributed::ThreadGroup group(1);
  Trainer t(c, group.comm(0));
  // With the single template "a photo of a {}." the head is s0 * norm(caption features).
  const auto& params = t.parameters();
  ASSERT_EQ(params[params.size() - 2].first, "head.weight");
  auto head = params[params.size() - 2].second.detach();
  auto tokenizer = clip::Tokenizer::load(c.vocab);
  TextEncoder enc(tokenizer, false, true);
  {
    torch::NoGradGuard no_grad;
    auto zs = torch::nn::functional::normalize(
        enc.encode(t.model(), {"a photo of a tench.", "a photo of a goldfish.", "a photo of a great white shark.",
                               "a photo of a tiger shark."}),
        torch::nn::functional::NormalizeFuncOptions().dim(-1));
    EXPECT_LT(relative_difference(head, t.model()->logit_scale.exp() * zs), 1e-5);
  }
  EXPECT_EQ(t.run(), Trainer::Outcome::finished);
  EXPECT_FALSE(read_head(list_checkpoints(tmp / "run").back()).empty());
}

TEST(Trainer, CommandsCacheTeacherThenTrainThenResume) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store");
  const std::string bin = starft::testing::starft_binary();
  const std::string inputs = " --config " + std::string(STARFT_SOURCE_DIR) + "/configs/tiny.ini --weights " +
                             starft::testing::fixture("clip/tiny_clip_openai.safetensors") + " --vocab " +
                             starft::testing::fixture("clip/bpe_simple_vocab_16e6.txt.gz") + " --store " +
                             (tmp / "store");
  std::string out;
  ASSERT_EQ(starft::testing::run_command(bin + " cache-teacher" + inputs + " --float16", &out), 0) << out;
  EXPECT_TRUE(fs::exists(tmp / "store/teacher-cache.h5"));
  EXPECT_NE(starft::testing::run_command(bin + " cache-teacher" + inputs, &out), 0);
  EXPECT_NE(out.find("--overwrite"), std::string::npos) << out;
  // Stopped after 4 of 6 steps, resumed to step 5, then resumed to the end.
  const std::string train_inputs = bin + " train" + inputs;
  const std::string train = train_inputs + " --run-dir " + (tmp / "run");
  ASSERT_EQ(starft::testing::run_command(train + " --stop-after 4", &out), 0) << out;
  EXPECT_NE(out.find("step 4/6"), std::string::npos) << out;
  EXPECT_NE(out.find("L_c"), std::string::npos) << out;
  EXPECT_NE(out.find("img/s"), std::string::npos) << out;
  EXPECT_NE(out.find("ETA"), std::string::npos) << out;
  EXPECT_EQ(fs::path(*latest_checkpoint(tmp / "run")).filename(), "step-000000004");
  // Resumed with the same settings (resume and stop-after differ, which leaves the steps as they
  // are): no warning about the configuration.
  ASSERT_EQ(starft::testing::run_command(train + " --resume latest --stop-after 5", &out), 0) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  EXPECT_EQ(out.find("differ"), std::string::npos) << out;
  EXPECT_EQ(fs::path(*latest_checkpoint(tmp / "run")).filename(), "step-000000005");
  // With another learning rate: the warning names the key and both values.
  ASSERT_EQ(starft::testing::run_command(train + " --resume latest --lr 2e-4", &out), 0) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  EXPECT_NE(out.find("settings that differ from the checkpoint's (lr: 0.0001 in the checkpoint, 0.0002 now)"),
            std::string::npos)
      << out;
  EXPECT_EQ(read_train_state(*latest_checkpoint(tmp / "run")).step, 6);
  std::ifstream in(tmp / "run/metrics.jsonl");
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) EXPECT_EQ(nlohmann::json::parse(line)["step"].get<int64_t>(), ++n);
  EXPECT_EQ(n, 6);
  // A cache built for another pool is refused by the command before any step.
  EXPECT_NE(starft::testing::run_command(train_inputs + " --spurious-pool textures --run-dir " + (tmp / "run2"), &out),
            0);
  EXPECT_NE(out.find("spurious pool differs"), std::string::npos) << out;
}

TEST(Trainer, FrozenTextTowerAndFixedLogitScaleStayPut) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store");
  auto c = starft::testing::tiny_config(tmp / "store", tmp / "run");
  c.teacher = TeacherSource::online;
  c.freeze_text = true;
  c.train_logit_scale = false;
  c.grad_clip = 0.5;
  c.stop_after = 2;
  c.lr = 1e-3;
  distributed::ThreadGroup group(1);
  Trainer t(c, group.comm(0));
  std::map<std::string, torch::Tensor> before;
  for (const auto& p : t.model()->named_parameters()) before[p.key()] = p.value().detach().clone();
  for (const auto& [name, p] : t.parameters()) {
    EXPECT_TRUE(name.rfind("visual.", 0) == 0) << name << " should be frozen";
  }
  t.run();
  for (const auto& p : t.model()->named_parameters()) {
    const bool text = p.key().rfind("visual.", 0) != 0;
    EXPECT_EQ(torch::equal(p.value(), before[p.key()]), text) << p.key();
  }
}

namespace {

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// A validation store with groups and the training store's four classes.
std::string make_group_val_store(const TempDir& tmp) {
  auto layout = starft::testing::fish_layout();
  layout.groups = true;
  layout.count = 24;
  starft::testing::make_eval_store(tmp / "val", layout);
  return tmp / "val";
}

}  // namespace

TEST(Trainer, EvaluatesAtEpochEndsAndKeepsTheBestWeights) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store", 24);
  auto c = starft::testing::tiny_config(tmp / "store", tmp / "run");
  c.regulariser = Regulariser::none;
  c.epochs = 3;
  c.lr = 1e-3;
  c.eval_stores = make_group_val_store(tmp) + ":name=val";
  c.eval_templates = "simple";
  c.eval_batch_size = 10;
  c.best_metric = "val/top1";
  distributed::ThreadGroup group(1);
  {
    Trainer t(c, group.comm(0));
    EXPECT_EQ(t.run(), Trainer::Outcome::finished);
  }
  // One record per epoch, each with the metric; best/ holds the first maximum.
  const auto lines = read_jsonl(tmp / "run/eval.jsonl");
  ASSERT_EQ(lines.size(), 3u);
  double best = -1;
  int64_t best_step = -1;
  std::set<double> values;
  for (size_t e = 0; e < lines.size(); ++e) {
    EXPECT_EQ(lines[e]["epoch"].get<int64_t>(), static_cast<int64_t>(e));
    EXPECT_EQ(lines[e]["step"].get<int64_t>(), static_cast<int64_t>(3 * (e + 1)));
    const auto& store = lines[e]["results"]["stores"][0];
    EXPECT_EQ(store["name"], "val");
    EXPECT_EQ(store["total"].get<int64_t>(), 24);
    const double v = lines[e]["best_metric"]["value"].get<double>();
    EXPECT_DOUBLE_EQ(v, store["top1"].get<double>());
    EXPECT_TRUE(store["worst_group_acc"].is_number());
    values.insert(v);
    if (v > best) {
      best = v;
      best_step = lines[e]["step"].get<int64_t>();
    }
  }
  ASSERT_GT(values.size(), 1u) << "the model should change between epochs, so the best is a real choice";
  const auto record = read_best(tmp / "run");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ((*record)["metric"], "val/top1");
  EXPECT_DOUBLE_EQ((*record)["value"].get<double>(), best);
  EXPECT_EQ((*record)["step"].get<int64_t>(), best_step);
  // The kept weights score exactly the recorded value when evaluated on their own.
  auto kept = clip::load_weights(weights_path(best_dir(tmp / "run")));
  auto tokenizer = clip::Tokenizer::load(c.vocab);
  eval::EvalOptions options;
  options.templates = "simple";
  const auto again = eval::evaluate(kept, tokenizer, eval::parse_eval_specs({c.eval_stores}), group.comm(0), options);
  EXPECT_DOUBLE_EQ(again.metric("val", "top1"), best);

  // A resumed run knows the best so far and only replaces best/ with a better value.
  c.resume = "latest";
  c.epochs = 4;
  Trainer resumed(c, group.comm(0));
  const auto outcome = resumed.evaluate(3);
  ASSERT_TRUE(outcome.value.has_value());
  EXPECT_EQ(outcome.new_best, *outcome.value > best);
  EXPECT_EQ(read_best(tmp / "run").value()["value"].get<double>(), std::max(best, *outcome.value));
}

TEST(Trainer, RefusesABestMetricOfAnUnknownEvaluationStore) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store", 24);
  auto c = starft::testing::tiny_config(tmp / "store", tmp / "run");
  c.regulariser = Regulariser::none;
  c.eval_stores = make_group_val_store(tmp) + ":name=val";
  c.best_metric = "group-val/worst_group_acc";
  distributed::ThreadGroup group(1);
  auto msg = error_of([&] { Trainer t(c, group.comm(0)); });
  EXPECT_NE(msg.find("no evaluation store is named 'group-val'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("named val"), std::string::npos) << msg;
  c.eval_stores = (tmp / "missing") + std::string(":name=val");
  msg = error_of([&] { Trainer t(c, group.comm(0)); });
  EXPECT_NE(msg.find("--eval-stores"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(tmp / "run/eval.jsonl"));
  // A bad template set is refused the same way, before the run directory is written.
  c.eval_stores = (tmp / "val") + std::string(":name=val");
  c.eval_templates = "nosuch";
  msg = error_of([&] { Trainer t(c, group.comm(0)); });
  EXPECT_NE(msg.find("--eval-templates"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nosuch"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(tmp / "run"));
}

// The per-step time breakdown of metrics.jsonl (issue 15): every part present and non-negative,
// the parts disjoint pieces of the step (never more than it) that together cover it, and the
// slowest rank one of the ranks, with its own step time.
TEST(Trainer, MetricsCarryAStepTimeBreakdownThatAddsUpToTheStep) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store");
  auto c = starft::testing::tiny_config(tmp / "store", tmp / "run");
  c.teacher = TeacherSource::online;
  c.epochs = 2;
  c.checkpoint_every = 2;  // a checkpoint between steps is not part of any step
  const int ranks = 2;
  distributed::ThreadGroup group(ranks);
  group.run([&](distributed::Communicator& comm) {
    Trainer t(c, comm);
    EXPECT_EQ(t.run(), Trainer::Outcome::finished);
    const auto& last = t.step_times();
    EXPECT_GT(last.step, 0);
    EXPECT_LE(last.parts(), last.step * (1 + 1e-9));
  });
  std::ifstream in(tmp / "run/metrics.jsonl");
  std::string line;
  double step_sum = 0, parts_sum = 0;
  int n = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    ++n;
    double parts = 0;
    for (const char* key : {"data_s", "forward_s", "backward_s", "comm_exposed_s", "optimizer_s", "other_s"}) {
      ASSERT_TRUE(j.contains(key)) << key << " missing in " << line;
      EXPECT_GE(j[key].get<double>(), 0) << key << " in " << line;
      parts += j[key].get<double>();
    }
    for (const char* key : {"step_s", "images_per_s", "slowest_rank", "slowest_rank_step_s", "slowest_rank_busy_s"}) {
      ASSERT_TRUE(j.contains(key)) << key << " missing in " << line;
    }
    const double step = j["step_s"].get<double>();
    EXPECT_GT(step, 0) << line;
    EXPECT_GT(j["forward_s"].get<double>(), 0) << line;
    EXPECT_GT(j["backward_s"].get<double>(), 0) << line;
    EXPECT_LE(parts, step * (1 + 1e-9)) << "the parts are disjoint pieces of the step: " << line;
    const int slowest = j["slowest_rank"].get<int>();
    EXPECT_GE(slowest, 0);
    EXPECT_LT(slowest, ranks);
    EXPECT_GT(j["slowest_rank_step_s"].get<double>(), 0) << line;
    EXPECT_LE(j["slowest_rank_busy_s"].get<double>(), j["slowest_rank_step_s"].get<double>() * (1 + 1e-9)) << line;
    EXPECT_GT(j["images_per_s"].get<double>(), 0) << line;
    step_sum += step;
    parts_sum += parts;
  }
  EXPECT_EQ(n, 6);
  // What no timer covers is a few statements per step: within a few percent of the steps' time.
  EXPECT_GE(parts_sum, 0.97 * step_sum) << "parts " << parts_sum << " s of " << step_sum << " s";
}
