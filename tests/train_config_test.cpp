// The trainer's configuration, schedule, optimizer state and checkpoints.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include "clip/weights.h"
#include "common/error.h"
#include "starft/build_config.h"
#include "test_util.h"
#include "tiny_clip.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train_test_store.h"

using namespace starft;
using namespace starft::train;
using starft::testing::TempDir;
using starft::testing::write_file;
using starft::testing::error_of;
namespace fs = std::filesystem;

namespace {

#define EXPECT_ERROR(stmt, text)                                                       \
  do {                                                                                 \
    const std::string message = error_of([&] { stmt; });                               \
    EXPECT_NE(message.find(text), std::string::npos)                                   \
        << "expected an error containing '" << (text) << "', got '" << message << "'"; \
  } while (0)

}  // namespace

TEST(TrainConfig, CommandLineWinsOverIniWhichWinsOverDefaults) {
  TempDir tmp;
  write_file(tmp / "a.ini", "# a comment\nbatch-size = 64\nlr = 3e-5\nspurious-pool = textures\ndedup = false\n");
  auto c = parse_train_args({"--config", tmp / "a.ini", "--lr", "7e-6", "--epochs=4"});
  EXPECT_EQ(c.batch_size, 64);             // from the file
  EXPECT_DOUBLE_EQ(c.lr, 7e-6);            // command line over the file
  EXPECT_EQ(c.epochs, 4);                  // command line over the default
  EXPECT_EQ(c.spurious_pool, "textures");  // file over the default
  EXPECT_FALSE(c.dedup);
  EXPECT_TRUE(c.truncate);  // default
  EXPECT_EQ(c.warmup_steps, 500);
  // A switch on the command line.
  EXPECT_TRUE(parse_train_args({"--freeze-text"}).freeze_text);
  EXPECT_FALSE(parse_train_args({"--freeze-text=false"}).freeze_text);
}

TEST(TrainConfig, EffectiveConfigReadsBackIdentically) {
  TrainConfig c;
  c.store = "/some/store";
  c.lr = 1.2345678901234567e-5;
  c.eps = 1e-8;
  c.batch_size = 48;
  c.exclude_gains_biases = true;
  c.caption_template = "a photo of the {}.";
  c.resume = "latest";
  const auto ini = to_ini(c);
  const auto back = from_ini(ini, "test");
  EXPECT_EQ(to_ini(back), ini);
  EXPECT_EQ(back.lr, c.lr);
  EXPECT_EQ(back.caption_template, c.caption_template);
  EXPECT_TRUE(back.exclude_gains_biases);
  // Every option appears, so the file documents the whole run.
  for (const char* key : {"mode", "weights", "store", "lambda-schedule", "teacher-cache", "grad-clip", "stop-after"}) {
    EXPECT_NE(ini.find(std::string("\n") + key + " = "), std::string::npos) << key;
  }
}

TEST(TrainConfig, UnknownKeysAndBadValuesAreErrors) {
  TempDir tmp;
  write_file(tmp / "bad.ini", "batch-sise = 4\n");
  EXPECT_ERROR(parse_train_args({"--config", tmp / "bad.ini"}), "bad.ini");
  EXPECT_ERROR(parse_train_args({"--batch-size", "many"}), "batch-size");
  EXPECT_ERROR(parse_train_args({"--no-such-option"}), "no-such-option");
  EXPECT_ERROR(parse_train_args({"--config", tmp / "missing.ini"}), "missing.ini");
}

// The fixed sets are enums: every name reads back to its value, and any other text is refused at
// parse time, on the command line and in a file, with the accepted names.
TEST(TrainConfig, ChoicesAreEnumsReadByName) {
  auto c = parse_train_args({"--mode", "pretrain", "--loss", "ce", "--regulariser", "kl", "--duplicate-captions",
                             "positives", "--lambda-schedule", "constant", "--teacher", "online"});
  EXPECT_EQ(c.mode, Mode::pretrain);
  EXPECT_EQ(c.loss, Loss::ce);
  EXPECT_EQ(c.regulariser, Regulariser::kl);
  EXPECT_EQ(c.duplicate_captions, DuplicateCaptions::positives);
  EXPECT_EQ(c.lambda_schedule, LambdaSchedule::constant);
  EXPECT_EQ(c.teacher, TeacherSource::online);
  const auto back = from_ini(to_ini(c), "test");
  EXPECT_EQ(back.mode, Mode::pretrain);
  EXPECT_EQ(back.regulariser, Regulariser::kl);
  EXPECT_EQ(back.teacher, TeacherSource::online);
  EXPECT_NE(to_ini(c).find("regulariser = kl\n"), std::string::npos);

  auto e = error_of([] { parse_train_args({"--loss", "hinge"}); });
  EXPECT_NE(e.find("--loss: unknown value 'hinge'"), std::string::npos) << e;
  EXPECT_NE(e.find("flyp, ce"), std::string::npos) << e;
  EXPECT_ERROR(parse_train_args({"--teacher", "oracle"}), "--teacher: unknown value 'oracle'");
  EXPECT_ERROR(parse_train_args({"--mode", "Pretrain"}), "finetune, pretrain");
  TempDir tmp;
  write_file(tmp / "bad.ini", "regulariser = l2\n");
  e = error_of([&] { parse_train_args({"--config", tmp / "bad.ini"}); });
  EXPECT_NE(e.find("bad.ini"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown value 'l2'; choose one of starft, kl, none"), std::string::npos) << e;
}

TEST(TrainConfig, FormerNamesAreRefusedNamingTheNewOnes) {
  TempDir tmp;
  auto e = error_of([] { parse_train_args({"--eval-classnames", "names.txt"}); });
  EXPECT_NE(e.find("eval-class-names"), std::string::npos) << e;
  write_file(tmp / "old.ini", "lr = 1e-5\neval-classnames = names.txt\n");
  e = error_of([&] { parse_train_args({"--config", tmp / "old.ini"}); });
  EXPECT_NE(e.find("old.ini"), std::string::npos) << e;
  EXPECT_NE(e.find("eval-class-names"), std::string::npos) << e;
  EXPECT_EQ(parse_train_args({"--eval-class-names", "names.txt"}).eval_class_names, "names.txt");
  // A run directory written before the rename still loads: its config.ini is upgraded.
  TrainConfig c;
  c.eval_class_names = "names.txt";
  const auto ini = to_ini(c);
  std::string old = ini;
  old.replace(old.find("eval-class-names = "), std::string("eval-class-names").size(), "eval-classnames");
  EXPECT_EQ(upgrade_ini(old), ini);
  EXPECT_EQ(from_ini(old, "old config.ini").eval_class_names, "names.txt");
}

TEST(TrainConfig, EveryInvalidValueIsRefusedBeforeWork) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store");
  const auto good = starft::testing::tiny_config(tmp / "store", tmp / "run");
  EXPECT_EQ(error_of([&] { validate(good, 2); }), "");

  auto with = [&](const std::function<void(TrainConfig&)>& change) {
    TrainConfig c = good;
    change(c);
    return c;
  };
  EXPECT_ERROR(validate(with([&](TrainConfig& c) { c.store = tmp / "nowhere"; }), 1), "manifest.json");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.store = ""; }), 1), "--store is required");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.spurious_pool = "weather"; }), 1), "weather");
  EXPECT_ERROR(validate(good, 3), "not divisible by the 3 ranks");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.lr = -1e-5; }), 1), "--lr");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.lambda = -0.5; }), 1), "--lambda");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.weight_decay = -0.1; }), 1), "--weight-decay");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.min_lr = 1.0; }), 1), "--min-lr");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.warmup_steps = -1; }), 1), "--warmup-steps");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.grad_clip = -1; }), 1), "--grad-clip");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.beta2 = 1.0; }), 1), "--beta2");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.epochs = 0; }), 1), "--epochs");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.weights = "/no/weights.safetensors"; }), 1), "--weights");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.run_dir = ""; }), 1), "--run-dir");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.device = "tpu"; }), 1), "--device must be cpu, cuda or cuda:N");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.resume = "/no/checkpoint"; }), 1), "--resume");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.batch_size = 64; }), 1), "larger than the store");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.caption_template = "a photo"; }), 1), "--caption-template");
  // Pre-training needs captions in the store and an architecture instead of weights.
  EXPECT_ERROR(validate(with([](TrainConfig& c) {
                          c.mode = Mode::pretrain;
                          c.weights = "";
                          c.model = "tiny";
                        }),
                        1),
               "captions");
  EXPECT_ERROR(validate(with([](TrainConfig& c) {
                          c.mode = Mode::pretrain;
                          c.model = "tiny";
                        }),
                        1),
               "--weights is for finetune");
  EXPECT_ERROR(validate(with([](TrainConfig& c) {
                          c.mode = Mode::pretrain;
                          c.weights = "";
                          c.model = "ViT-Z";
                        }),
                        1),
               "ViT-Z");
  // In finetune mode --model names the architecture of --weights: the same names and files.
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.model = "ViT-Z"; }), 1), "unknown model name 'ViT-Z'");
  // Evaluation during training and the best checkpoint.
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.eval_every = -1; }), 1), "--eval-every");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.eval_batch_size = 0; }), 1), "--eval-batch-size");
  EXPECT_ERROR(validate(with([](TrainConfig& c) { c.best_metric = "val/top1"; }), 1), "needs evaluation during");
  EXPECT_ERROR(validate(with([](TrainConfig& c) {
                          c.eval_stores = "val";
                          c.eval_every = 0;
                          c.best_metric = "val/top1";
                        }),
                        1),
               "--eval-every >= 1");
  EXPECT_ERROR(validate(with([](TrainConfig& c) {
                          c.eval_stores = "val";
                          c.best_metric = "worst_group_acc";
                        }),
                        1),
               "is not STORE/METRIC");
  EXPECT_ERROR(validate(with([](TrainConfig& c) {
                          c.eval_stores = "val";
                          c.best_metric = "val/accuracy";
                        }),
                        1),
               "unknown metric 'accuracy'");
  EXPECT_EQ(split_best_metric("group-val/worst_group_acc"),
            (std::pair<std::string, std::string>{"group-val", "worst_group_acc"}));
}

TEST(TrainConfig, EffectiveConfigErrorsGoThroughTheCommand) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store");
  std::string out;
  const std::string base = starft::testing::starft_binary() + " train --store " + (tmp / "store") + " --weights " +
                           starft::testing::fixture("clip/tiny_clip_openai.safetensors") + " --vocab " +
                           starft::testing::fixture("clip/bpe_simple_vocab_16e6.txt.gz") + " --run-dir " +
                           (tmp / "run") + " --batch-size 8";
  EXPECT_NE(starft::testing::run_command(base + " --spurious-pool weather", &out), 0);
  EXPECT_NE(out.find("weather"), std::string::npos) << out;
  EXPECT_NE(starft::testing::run_command(base + " --lr=-1", &out), 0);
  EXPECT_NE(out.find("--lr"), std::string::npos) << out;
  // Nothing was written for a refused run.
  EXPECT_FALSE(fs::exists(tmp / "run"));
  EXPECT_EQ(starft::testing::run_command(starft::testing::starft_binary() + " train --help", &out), 0);
  for (const char* key : {"--spurious-pool", "--teacher-cache", "--lambda-schedule", "--resume", "--comm-timeout"}) {
    EXPECT_NE(out.find(key), std::string::npos) << key;
  }
}

TEST(LrSchedule, WarmupThenCosineToTheMinimum) {
  LrSchedule s{1e-3, 1e-5, 10, 110};
  EXPECT_DOUBLE_EQ(s.at(0), 1e-3 * 1 / 10);
  EXPECT_DOUBLE_EQ(s.at(4), 1e-3 * 5 / 10);
  EXPECT_DOUBLE_EQ(s.at(9), 1e-3);
  EXPECT_DOUBLE_EQ(s.at(10), 1e-3);  // cosine starts at the peak
  EXPECT_NEAR(s.at(60), 1e-5 + 0.5 * (1e-3 - 1e-5), 1e-15);
  EXPECT_NEAR(s.at(110), 1e-5, 1e-15);
  for (int64_t i = 11; i < 110; ++i) EXPECT_LT(s.at(i), s.at(i - 1));
  LrSchedule none{2e-5, 0, 0, 4};
  EXPECT_DOUBLE_EQ(none.at(0), 2e-5);
}

namespace {

NamedParams params_of(clip::CLIP& model) {
  NamedParams out;
  for (auto& p : model->named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

void fake_step(clip::CLIP& model, torch::optim::AdamW& opt, int seed) {
  torch::manual_seed(seed);
  opt.zero_grad();
  auto images = torch::randn({2, 3, 32, 32});
  auto tokens = torch::randint(1, 1000, {2, 6}, torch::kLong);
  tokens.select(1, 5).fill_(49407);
  auto loss = model->logits_per_image(model->encode_image(images), model->encode_text(tokens)).logsumexp(1).mean();
  loss.backward();
  opt.step();
}

}  // namespace

TEST(AdamW, GainsAndBiasesCanBeExcludedFromDecay) {
  auto model = clip::load_weights(starft::testing::fixture("clip/tiny_clip_openai.safetensors"),
                                  starft::testing::tiny_options());
  auto params = params_of(model);
  AdamWSettings s;
  s.weight_decay = 0.1;
  auto all = make_adamw(params, s);
  EXPECT_EQ(all->param_groups().size(), 1u);
  s.exclude_gains_biases = true;
  auto split = make_adamw(params, s);
  ASSERT_EQ(split->param_groups().size(), 2u);
  auto decay_of = [&](int g) {
    return static_cast<torch::optim::AdamWOptions&>(split->param_groups()[g].options()).weight_decay();
  };
  EXPECT_DOUBLE_EQ(decay_of(0), 0.1);
  EXPECT_DOUBLE_EQ(decay_of(1), 0.0);
  for (const auto& p : split->param_groups()[1].params()) EXPECT_LT(p.dim(), 2);
  size_t one_d = 0;
  for (const auto& [name, p] : params) one_d += is_gain_or_bias(name, p);
  EXPECT_EQ(split->param_groups()[1].params().size(), one_d);
  EXPECT_TRUE(is_gain_or_bias("logit_scale", params_of(model).back().second));
}

// FusedAdamW against LibTorch's AdamW, the reference: 20 steps of random gradients on parameters of
// every kind it meets (2-D decayed, 1-D undecayed, a non-contiguous one that takes LibTorch's path,
// one without a gradient on some steps). Tolerance: float32 rounding accumulated over 20 steps.
TEST(AdamW, FusedStepMatchesLibTorchAdamW) {
  torch::manual_seed(7);
  auto make = [] {
    std::vector<torch::Tensor> ps{torch::randn({300, 70}), torch::randn({70}), torch::randn({40, 30}).t(),
                                  torch::randn({5, 5})};
    for (auto& p : ps) p.set_requires_grad(true);
    return ps;
  };
  auto a = make();
  std::vector<torch::Tensor> b;
  for (auto& p : a) b.push_back(p.detach().clone().set_requires_grad(true));
  auto options = torch::optim::AdamWOptions(3e-3).betas(std::make_tuple(0.9, 0.98)).eps(1e-6).weight_decay(0.2);
  auto groups = [&](std::vector<torch::Tensor>& ps) {
    std::vector<torch::optim::OptimizerParamGroup> g;
    g.emplace_back(std::vector<torch::Tensor>{ps[0], ps[2], ps[3]},
                   std::make_unique<torch::optim::AdamWOptions>(options));
    auto none = options;
    none.weight_decay(0.0);
    g.emplace_back(std::vector<torch::Tensor>{ps[1]}, std::make_unique<torch::optim::AdamWOptions>(none));
    return g;
  };
  FusedAdamW fused(groups(a), options);
  torch::optim::AdamW reference(groups(b), options);
  ASSERT_FALSE(a[2].is_contiguous());
  for (int step = 0; step < 20; ++step) {
    for (size_t i = 0; i < a.size(); ++i) {
      auto g = torch::randn(a[i].sizes()) * static_cast<double>(i + 1);
      const bool skip = i == 3 && step % 3 == 1;  // no gradient this step: not stepped
      a[i].mutable_grad() =
          skip ? torch::Tensor() : (a[i].is_contiguous() ? g.clone() : g.clone().t().contiguous().t());
      b[i].mutable_grad() = skip ? torch::Tensor() : g.clone();
    }
    fused.step();
    reference.step();
  }
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-5, 1e-6))
        << "parameter " << i << ": max difference " << (a[i] - b[i]).abs().max().item<float>();
  }
  auto step_of = [&](const torch::Tensor& p) {
    return static_cast<torch::optim::AdamWParamState&>(*fused.state().at(c10::guts::to_string(p.unsafeGetTensorImpl())))
        .step();
  };
  EXPECT_EQ(step_of(a[0]), 20);
  EXPECT_EQ(step_of(a[3]), 13);
}

// A row-sparse gradient (Embedding's sparse=true) gets its dense equivalent's update to the bit:
// against FusedAdamW on the same gradients made dense (bitwise) and LibTorch's AdamW (float32
// rounding, as above). The steps cover rows touched once and then never (their moments decay
// while they get no gradient), duplicate rows, a dense step in between, and a state reloaded
// through optimizer_state / load_optimizer_state (the rows with nonzero moments found again).
TEST(AdamW, RowSparseGradientStepsLikeItsDenseEquivalent) {
  torch::manual_seed(11);
  const int64_t rows = 50, width = 8;
  auto start = torch::randn({rows, width});
  auto sparse_p = start.clone().set_requires_grad(true);
  auto dense_p = start.clone().set_requires_grad(true);
  auto libtorch_p = start.clone().set_requires_grad(true);
  auto options = torch::optim::AdamWOptions(3e-3).betas(std::make_tuple(0.9, 0.98)).eps(1e-6).weight_decay(0.2);
  auto sparse_opt = std::make_unique<FusedAdamW>(std::vector<torch::Tensor>{sparse_p}, options);
  FusedAdamW dense_opt(std::vector<torch::Tensor>{dense_p}, options);
  torch::optim::AdamW reference(std::vector<torch::Tensor>{libtorch_p}, options);
  ASSERT_TRUE(FusedAdamW::takes_row_sparse_gradient(sparse_p));
  for (int step = 0; step < 12; ++step) {
    // step 0 touches rows 3 and 7 (7 twice); later steps rows 10.., never 3 or 7 again
    auto index =
        step == 0 ? torch::tensor({int64_t{3}, int64_t{7}, int64_t{7}}) : torch::randint(10, rows, {6}, torch::kLong);
    auto values = torch::randn({index.size(0), width});
    auto grad = torch::sparse_coo_tensor(index.unsqueeze(0), values, {rows, width});
    sparse_p.mutable_grad() = step == 5 ? grad.to_dense() : grad;  // step 5: a dense gradient
    dense_p.mutable_grad() = grad.to_dense();
    libtorch_p.mutable_grad() = grad.to_dense();
    sparse_opt->step();
    dense_opt.step();
    reference.step();
    if (step == 8) {  // a checkpoint's state into a new optimizer
      NamedParams named{{"token_embedding.weight", sparse_p}};
      const auto state = optimizer_state(*sparse_opt, named);
      sparse_opt = std::make_unique<FusedAdamW>(std::vector<torch::Tensor>{sparse_p}, options);
      load_optimizer_state(*sparse_opt, named, state, "checkpoint");
    }
  }
  EXPECT_TRUE(torch::equal(sparse_p, dense_p)) << "max difference " << (sparse_p - dense_p).abs().max().item<float>();
  EXPECT_TRUE(torch::allclose(sparse_p, libtorch_p, 1e-5, 1e-6))
      << "max difference " << (sparse_p - libtorch_p).abs().max().item<float>();
  // rows 3 and 7 kept moving after their only gradient, as the dense update moves them
  EXPECT_FALSE(torch::allclose(sparse_p[3], start[3] * std::pow(1 - 3e-3 * 0.2, 12)));
}

TEST(AdamW, SparseGradientOnAParameterItCannotTakeIsRefused) {
  auto p = torch::randn({6, 4}).t().set_requires_grad(true);  // not contiguous
  FusedAdamW opt(std::vector<torch::Tensor>{p}, torch::optim::AdamWOptions(1e-3));
  p.mutable_grad() = torch::sparse_coo_tensor(torch::tensor({{int64_t{1}}}), torch::ones({1, 6}), {4, 6});
  const auto message = error_of([&] { opt.step(); });
  EXPECT_NE(message.find("sparse gradient"), std::string::npos) << message;
}

// clip_grad_norm against LibTorch's clip_grad_norm_ on the same gradients made dense: the same
// norm and the same clipped gradients, row-sparse (uncoalesced, a row twice) or dense; and no
// change below the limit.
TEST(GradClip, RowSparseGradientsClipLikeTheirDenseEquivalent) {
  torch::manual_seed(3);
  auto table = torch::randn({20, 4}, torch::requires_grad());
  auto bias = torch::randn({4}, torch::requires_grad());
  auto grad = torch::sparse_coo_tensor(torch::tensor({{int64_t{2}, int64_t{9}, int64_t{2}}}), torch::randn({3, 4}) * 10,
                                       {20, 4});
  auto dense_table = table.detach().clone().set_requires_grad(true);
  auto dense_bias = bias.detach().clone().set_requires_grad(true);
  for (const double max_norm : {1.0, 1e6}) {
    table.mutable_grad() = grad.clone();
    bias.mutable_grad() = torch::ones({4});
    dense_table.mutable_grad() = grad.to_dense();
    dense_bias.mutable_grad() = torch::ones({4});
    const double got = clip_grad_norm({table, bias}, max_norm);
    const double want =
        torch::nn::utils::clip_grad_norm_(std::vector<torch::Tensor>{dense_table, dense_bias}, max_norm);
    EXPECT_NEAR(got, want, 1e-5 * want) << "max_norm " << max_norm;
    EXPECT_TRUE(torch::allclose(table.grad().to_dense(), dense_table.grad(), 1e-6, 1e-7)) << "max_norm " << max_norm;
    EXPECT_TRUE(torch::equal(bias.grad(), dense_bias.grad())) << "max_norm " << max_norm;
    EXPECT_EQ(bias.grad().norm().item<double>() < 1.5, max_norm == 1.0) << "clipped only below the norm";
  }
}

TEST(AdamW, StateRoundTripContinuesBitwise) {
  const auto path = starft::testing::fixture("clip/tiny_clip_openai.safetensors");
  auto a = clip::load_weights(path, starft::testing::tiny_options());
  auto b = clip::load_weights(path, starft::testing::tiny_options());
  AdamWSettings s;
  s.lr = 1e-3;
  auto pa = params_of(a), pb = params_of(b);
  auto oa = make_adamw(pa, s);
  fake_step(a, *oa, 1);
  fake_step(a, *oa, 2);
  // b takes a's weights and optimizer state through the checkpoint formats.
  TempDir tmp;
  safetensors::save(tmp / "opt.safetensors", optimizer_state(*oa, pa));
  clip::save_weights(a, tmp / "w.safetensors");
  clip::load_state_dict(b, safetensors::load(tmp / "w.safetensors").tensors, "w");
  auto ob = make_adamw(pb, s);
  load_optimizer_state(*ob, pb, safetensors::load(tmp / "opt.safetensors").tensors, "opt");
  fake_step(a, *oa, 3);
  fake_step(b, *ob, 3);
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(torch::equal(pa[i].second, pb[i].second)) << pa[i].first;
  }
  // A state that does not fit is refused with the tensor's name.
  auto state = optimizer_state(*oa, pa);
  state["visual.proj.exp_avg"] = torch::zeros({3});
  EXPECT_ERROR(load_optimizer_state(*ob, pb, state, "opt"), "visual.proj");
  state = optimizer_state(*oa, pa);
  state["no.such.param.step"] = torch::tensor(1);
  EXPECT_ERROR(load_optimizer_state(*ob, pb, state, "opt"), "no.such.param.step");
}

TEST(Checkpoint, AtomicKeepsTheLastKAndResolvesLatest) {
  TempDir tmp;
  const auto run = tmp / "run";
  auto model = clip::load_weights(starft::testing::fixture("clip/tiny_clip_openai.safetensors"),
                                  starft::testing::tiny_options());
  EXPECT_FALSE(latest_checkpoint(run).has_value());
  EXPECT_FALSE(resolve_checkpoint("latest", run).has_value());
  for (int64_t step : {5, 10, 15, 20}) {
    CheckpointContents c;
    c.model = &model;
    c.optimizer["x.step"] = torch::tensor(step);
    c.state.step = step;
    c.state.epoch = step / 10;
    c.state.sampler.epoch = step / 10;
    c.state.sampler.step = step % 10;
    c.state.torch_rng = capture_torch_rng();
    c.state.config_ini = "lr = 1\n";
    write_checkpoint(run, c, 2);
  }
  // A killed writer's leftover is never taken for a checkpoint.
  fs::create_directories(fs::path(checkpoints_dir(run)) / ".tmp-step-000000025-1");
  fs::create_directories(fs::path(checkpoints_dir(run)) / "step-000000030");  // no state.json: incomplete
  auto all = list_checkpoints(run);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(fs::path(all[0]).filename(), "step-000000015");
  EXPECT_EQ(fs::path(all[1]).filename(), "step-000000020");
  EXPECT_EQ(*resolve_checkpoint("latest", run), all[1]);
  const auto state = read_train_state(all[1]);
  EXPECT_EQ(state.step, 20);
  EXPECT_EQ(state.sampler.epoch, 2);
  EXPECT_EQ(state.config_ini, "lr = 1\n");
  EXPECT_EQ(read_optimizer_state(all[1])["x.step"].item<int64_t>(), 20);
  auto back = clip::load_weights(weights_path(all[1]));
  EXPECT_TRUE(torch::equal(back->logit_scale, model->logit_scale));
  EXPECT_ERROR(resolve_checkpoint(tmp / "nothing", run), "state.json");
}

TEST(Checkpoint, TorchRngStateRoundTrips) {
  torch::manual_seed(11);
  const auto saved = capture_torch_rng();
  auto a = torch::rand({5});
  restore_torch_rng(saved, "test");
  auto b = torch::rand({5});
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_ERROR(restore_torch_rng("zz", "state.json"), "state.json");
}

TEST(TrainConfig, ShippedConfigsParse) {
  const std::string dir = std::string(STARFT_SOURCE_DIR) + "/configs/";
  auto tiny = parse_train_args({"--config", dir + "tiny.ini"});
  EXPECT_EQ(tiny.batch_size, 8);
  EXPECT_EQ(tiny.regulariser, Regulariser::starft);
  auto ref = parse_train_args({"--config", dir + "imagenet_vitb16.ini"});
  // The reference recipe of docs/method.md.
  EXPECT_EQ(ref.epochs, 10);
  EXPECT_EQ(ref.batch_size, 512);
  EXPECT_DOUBLE_EQ(ref.lr, 1e-5);
  EXPECT_DOUBLE_EQ(ref.weight_decay, 0.1);
  EXPECT_EQ(ref.warmup_steps, 500);
  EXPECT_DOUBLE_EQ(ref.lambda, 0.5);
  EXPECT_EQ(ref.lambda_schedule, LambdaSchedule::diminishing);
  EXPECT_EQ(ref.spurious_pool, "backgrounds");
  EXPECT_EQ(ref.caption_template, "a photo of a {}.");
}
