// Mixed precision (--precision amp_bf16) and the processor/BLAS detection behind it.
//
// Tolerances, with their reasons: bfloat16 keeps 8 significant bits (relative step 2^-8 = 3.9e-3).
// The matrix products of each block round their inputs and outputs to it while the residual
// stream, layer norms and losses stay float32, so normalised features of the fixture model (2 + 2
// layers) are expected within a few steps: max |amp - fp32| <= 2e-2 and cosine >= 0.999 per row.
// Losses (averages over the batch) within 1e-2 relative; gradients as stated at GRAD_COSINE; a
// 12-step run's losses within 3% of fp32's at every step.
#include <gtest/gtest.h>

#include <ATen/autocast_mode.h>

#include <cmath>
#include <fstream>

#include "clip/safetensors.h"
#include "clip/tokenizer.h"
#include "clip/weights.h"
#include "common/error.h"
#include "common/hardware.h"
#include "common/precision.h"
#include "data/store.h"
#include "distributed/thread_communicator.h"
#include "starft/build_config.h"
#include "tensor_close.h"
#include "test_util.h"
#include "tiny_clip.h"
#include "data/templates.h"
#include "train/teacher_cache.h"
#include "train/teacher_cache_build.h"
#include "train/trainer.h"
#include "train_test_store.h"

using namespace starft;
using starft::testing::dense_gradient;
using starft::testing::error_of;
using starft::testing::fixture;
using starft::testing::run_command;
using starft::testing::TempDir;
namespace F = torch::nn::functional;

namespace {

// Gradients: cosine of the whole gradient >= 0.995 and every tensor within 20% relative L2 (measured
// here, AMD EPYC without native bfloat16: cosine 0.9984 / 0.9988, worst tensor 9.0% / 7.2%, for amp
// vs fp32 and for 2 ranks vs 1 in amp). The logits are s * cosine with s = 100 (the fixture's scale),
// so a 1e-2 feature error moves probabilities by percents, and the gradients through them alike.
constexpr double GRAD_COSINE = 0.995, GRAD_L2 = 0.2;

torch::Tensor normalized(const torch::Tensor& x) { return F::normalize(x, F::NormalizeFuncOptions().dim(-1)); }

void expect_features_close(const torch::Tensor& amp, const torch::Tensor& fp32, const std::string& what) {
  ASSERT_EQ(amp.scalar_type(), torch::kFloat) << what << " must come back as float32";
  const auto a = normalized(amp), b = normalized(fp32);
  const double max_diff = (a - b).abs().max().item<double>();
  const double min_cos = (a * b).sum(-1).min().item<double>();
  EXPECT_LE(max_diff, 2e-2) << what;
  EXPECT_GE(min_cos, 0.999) << what;
  EXPECT_GT(max_diff, 0) << what << ": identical to fp32, so autocast did not run";
  std::printf("[ %s: max |amp_bf16 - fp32| %.2e, min cosine %.6f ]\n", what.c_str(), max_diff, min_cos);
}

void build_precision_cache(const train::TrainConfig& c) {
  clip::LoadOptions lo;
  lo.precision = parse_precision(c.precision, false);
  lo.model = c.model;
  auto teacher = clip::load_weights(c.weights, lo);
  teacher->eval();
  data::Store store(c.store);
  auto tokenizer = clip::Tokenizer::load(c.vocab);
  train::CacheBuildOptions o;
  o.caption_template = c.caption_template;
  o.batch_size = 8;
  o.workers = 1;
  distributed::ThreadGroup group(1);
  train::build_teacher_cache(c.teacher_cache_path(), teacher, store, tokenizer, data::load_templates(c.spurious_pool),
                             o, group.comm(0));
}

// How close two gradient lists are: the worst per-tensor relative L2 error ||a - b|| / ||b|| and
// the cosine between the concatenated gradients.
struct GradientAgreement {
  double worst_l2 = 0, cosine = 0;
};
GradientAgreement agreement(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  GradientAgreement g;
  std::vector<torch::Tensor> fa, fb;
  for (size_t i = 0; i < a.size(); ++i) {
    const double nb = b[i].norm().item<double>();
    if (nb > 0) g.worst_l2 = std::max(g.worst_l2, (a[i] - b[i]).norm().item<double>() / nb);
    fa.push_back(a[i].flatten());
    fb.push_back(b[i].flatten());
  }
  auto va = torch::cat(fa).to(torch::kDouble), vb = torch::cat(fb).to(torch::kDouble);
  g.cosine = (va.dot(vb) / (va.norm() * vb.norm())).item<double>();
  return g;
}

std::vector<double> losses_of(const std::string& run_dir) {
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::vector<double> out;
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line)["loss"].get<double>());
  return out;
}

}  // namespace

TEST(Precision, ParsesOpenClipNamesAndRefusesTheOthersNamingTheOption) {
  EXPECT_EQ(parse_precision("fp32", false), Precision::fp32);
  EXPECT_EQ(parse_precision("amp_bf16", false), Precision::amp_bf16);
  EXPECT_EQ(parse_precision("amp_bfloat16", true), Precision::amp_bf16);
  EXPECT_EQ(parse_precision("auto", true), Precision::amp_bf16);
  EXPECT_EQ(parse_precision("auto", false), auto_precision(false, cpu_features()));
  EXPECT_STREQ(precision_name(Precision::amp_bf16), "amp_bf16");
  auto msg = error_of([] { parse_precision("bf17", false, "precision (config.ini)"); });
  EXPECT_NE(msg.find("precision (config.ini)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("amp_bf16"), std::string::npos) << msg;
  msg = error_of([] { check_precision_text("amp"); });
  EXPECT_NE(msg.find("not supported"), std::string::npos) << msg;
  msg = error_of([] { check_precision_text("pure_bf16"); });
  EXPECT_NE(msg.find("--precision"), std::string::npos) << msg;
}

TEST(Hardware, ReadsMatrixFeaturesFromCpuinfo) {
  const std::string emerald =
      "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 207\n"
      "model name\t: INTEL(R) XEON(R) PLATINUM 8581C CPU @ 2.10GHz\n"
      "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16 amx_bf16 amx_tile\n"
      "\nprocessor\t: 1\nflags\t\t: fpu\n";
  auto f = parse_cpuinfo(emerald);
  EXPECT_EQ(f.vendor, "GenuineIntel");
  EXPECT_EQ(f.family, 6);
  EXPECT_EQ(f.model, 207);
  EXPECT_TRUE(f.avx512_core());
  EXPECT_TRUE(f.amx_bf16);
  EXPECT_TRUE(f.native_bf16_matmul());
  EXPECT_TRUE(f.amp_bf16_faster());
  EXPECT_EQ(auto_precision(false, f), Precision::amp_bf16);
  // The same processor as a virtual machine shows it without AMX: AVX512-BF16 alone on Intel, where
  // amp_bf16 measured slower than fp32, so auto keeps fp32 (CUDA still gets amp_bf16).
  const std::string no_amx = emerald.substr(0, emerald.find(" amx_bf16")) + "\n";
  auto v = parse_cpuinfo(no_amx);
  EXPECT_TRUE(v.avx512_bf16);
  EXPECT_FALSE(v.amx_bf16);
  EXPECT_TRUE(v.native_bf16_matmul());
  EXPECT_FALSE(v.amp_bf16_faster());
  EXPECT_EQ(auto_precision(false, v), Precision::fp32);
  EXPECT_EQ(auto_precision(true, v), Precision::amp_bf16);
  EXPECT_NE(f.flags_text().find("amx_bf16"), std::string::npos);
  const std::string milan =
      "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n"
      "flags\t\t: fpu sse2 avx avx2 fma bmi2\n";
  auto g = parse_cpuinfo(milan);
  EXPECT_TRUE(g.avx2);
  EXPECT_FALSE(g.avx512f);
  EXPECT_FALSE(g.native_bf16_matmul());
  EXPECT_EQ(auto_precision(false, g), Precision::fp32);
  EXPECT_FALSE(parse_cpuinfo("").avx2);
  // A Zen 5 EPYC (this file's flags are those of family 26 model 2): AVX512-BF16 without AMX, where
  // amp_bf16 measured 1.28x (demo model) and 2.73x (ViT-B/16 / 4) fp32's speed, so auto picks it.
  const std::string turin =
      "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n"
      "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl avx_vnni avx512_bf16 avx512_vnni\n";
  auto z = parse_cpuinfo(turin);
  EXPECT_TRUE(z.avx512_bf16);
  EXPECT_FALSE(z.amx_bf16);
  EXPECT_TRUE(z.amp_bf16_faster());
  EXPECT_EQ(auto_precision(false, z), Precision::amp_bf16);
  EXPECT_NE(z.bf16_matrix_summary().find("AMD"), std::string::npos);
  // One description of each kind of bfloat16 support, naming the instructions it found.
  EXPECT_NE(f.bf16_matrix_summary().find("AMX-BF16 tiles"), std::string::npos);
  EXPECT_NE(v.bf16_matrix_summary().find("without AMX-BF16"), std::string::npos);
  EXPECT_NE(g.bf16_matrix_summary().find("slow fallback"), std::string::npos);
}

TEST(Hardware, RecommendsAKernelOnlyForAGenericFallbackTheProcessorCanBeat) {
  starft::CpuFeatures xeon;
  xeon.vendor = "GenuineIntel";
  xeon.avx2 = xeon.fma = xeon.avx512f = xeon.avx512bw = xeon.avx512vl = xeon.avx512dq = true;
  EXPECT_EQ(recommended_openblas_coretype(xeon, "Prescott"), "SkylakeX");
  EXPECT_EQ(recommended_openblas_coretype(xeon, "SkylakeX"), "");
  EXPECT_EQ(recommended_openblas_coretype(xeon, "Haswell"), "");
  EXPECT_EQ(recommended_openblas_coretype(xeon, ""), "");  // not OpenBLAS
  starft::CpuFeatures haswell;
  haswell.vendor = "GenuineIntel";
  haswell.avx2 = haswell.fma = true;
  EXPECT_EQ(recommended_openblas_coretype(haswell, "Nehalem"), "Haswell");
  starft::CpuFeatures zen = haswell;
  zen.vendor = "AuthenticAMD";
  EXPECT_EQ(recommended_openblas_coretype(zen, "Barcelona"), "Zen");
  EXPECT_EQ(recommended_openblas_coretype(zen, "Zen"), "");
  starft::CpuFeatures old;  // no AVX2: nothing better to offer
  EXPECT_EQ(recommended_openblas_coretype(old, "Prescott"), "");
  EXPECT_TRUE(is_generic_openblas_core("Prescott"));
  EXPECT_FALSE(is_generic_openblas_core("Cooperlake"));
}

// The kernels the launchers would choose (and every other fast one this processor supports)
// compute correct float32 products; `starft hardware --check-gemm` checks against float64.
TEST(Hardware, TheChosenBlasKernelsComputeCorrectProducts) {
  const std::string bin = starft::testing::starft_binary();
  std::string out;
  ASSERT_EQ(run_command("env -u OPENBLAS_CORETYPE " + bin + " hardware --openblas-coretype", &out), 0) << out;
  std::string chosen = out.substr(0, out.find('\n'));
  std::vector<std::string> kernels{""};  // as OpenBLAS starts
  if (!chosen.empty()) kernels.push_back(chosen);
  const auto& cpu = cpu_features();
  if (cpu.avx2 && cpu.fma) kernels.push_back("Haswell");
  if (cpu.avx512_core()) kernels.push_back("SkylakeX");
  for (const auto& k : kernels) {
    const std::string env = k.empty() ? "env -u OPENBLAS_CORETYPE " : "env OPENBLAS_CORETYPE=" + k + " ";
    ASSERT_EQ(run_command(env + bin + " hardware --check-gemm", &out), 0) << k << "\n" << out;
    EXPECT_NE(out.find("float32 GEMM check"), std::string::npos) << out;
    EXPECT_NE(out.find(": ok"), std::string::npos) << k << "\n" << out;
    if (!k.empty()) {
      EXPECT_NE(out.find("OPENBLAS_CORETYPE=" + k), std::string::npos) << out;
    }
  }
}

TEST(Autocast, GuardTurnsBfloat16OnForItsScopeAndRestores) {
  const bool before = at::autocast::is_cpu_enabled();
  auto a = torch::randn({4, 4}), b = torch::randn({4, 4});
  {
    clip::AutocastGuard outer(Precision::amp_bf16, torch::kCPU);
    EXPECT_TRUE(at::autocast::is_cpu_enabled());
    EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
    {
      clip::AutocastGuard inner(Precision::amp_bf16, torch::kCPU);
      EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
    }
    EXPECT_TRUE(at::autocast::is_cpu_enabled()) << "the inner guard ended the outer scope";
    clip::AutocastGuard off(Precision::fp32, torch::kCPU);
    EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16) << "an fp32 guard is a no-op";
  }
  EXPECT_EQ(at::autocast::is_cpu_enabled(), before);
  EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kFloat);
}

TEST(AmpBf16, FixtureFeaturesAreCloseToFp32AndFloat32) {
  auto ref = safetensors::load(fixture("clip/tiny_clip_reference.safetensors")).tensors;
  torch::NoGradGuard no_grad;
  auto fp32 = clip::load_weights(fixture("clip/tiny_clip_openai.safetensors"), starft::testing::tiny_options());
  clip::LoadOptions lo;
  lo.precision = Precision::amp_bf16;
  auto amp = clip::load_weights(fixture("clip/tiny_clip_openai.safetensors"), starft::testing::tiny_options(lo));
  fp32->eval();
  amp->eval();
  EXPECT_EQ(amp->precision(), Precision::amp_bf16);
  for (const auto& p : amp->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat) << "master weights stay float32";
  expect_features_close(amp->encode_image(ref.at("images")), fp32->encode_image(ref.at("images")), "image features");
  expect_features_close(amp->encode_text(ref.at("tokens")), fp32->encode_text(ref.at("tokens")), "text features");
  // fp32 is untouched by the other model's autocast: still the reference within 1e-4.
  const auto img = fp32->encode_image(ref.at("images"));
  EXPECT_TRUE(starft::testing::tensors_close(img, ref.at("image_features"), 1e-4, 0));
}

TEST(AmpBf16, LossesAndGradientsAreCloseToFp32) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store");
  distributed::ThreadGroup group(1);
  struct Out {
    train::StepLoss loss;
    std::vector<torch::Tensor> grads;
  };
  auto step = [&](const std::string& precision) {
    auto c = starft::testing::tiny_config(tmp / "store", tmp / ("run-" + precision));
    c.precision = precision;
    c.teacher_cache = tmp / ("cache-" + precision + ".h5");
    build_precision_cache(c);
    train::Trainer t(c, group.comm(0));
    t.loader().start(0, 0);
    auto batch = t.loader().next();
    Out o;
    o.loss = t.compute_loss(*batch, 0, 0);
    t.backward(o.loss);
    for (const auto& [name, p] : t.parameters()) {
      EXPECT_EQ(p.scalar_type(), torch::kFloat) << name;
      EXPECT_TRUE(p.grad().defined()) << name;
      if (p.grad().defined()) {
        EXPECT_EQ(p.grad().scalar_type(), torch::kFloat) << name << ": gradients stay float32";
        o.grads.push_back(dense_gradient(p));
      }
    }
    EXPECT_EQ(o.loss.loss.scalar_type(), torch::kFloat);
    return o;
  };
  const auto fp32 = step("fp32");
  const auto amp = step("amp_bf16");
  auto rel = [](const torch::Tensor& a, const torch::Tensor& b) {
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
  };
  EXPECT_LE(rel(amp.loss.contrastive, fp32.loss.contrastive), 1e-2);
  // R is a small KL between near-equal distributions (here 1e-3 of L_c): its error is that of the
  // logits, s0 * cosine with s0 = 100, not of R itself, so it is bounded against L_c.
  EXPECT_LE((amp.loss.regulariser - fp32.loss.regulariser).abs().item<double>(),
            1e-2 * fp32.loss.contrastive.item<double>());
  EXPECT_LE(rel(amp.loss.loss, fp32.loss.loss), 1e-2);
  ASSERT_EQ(amp.grads.size(), fp32.grads.size());
  const auto g = agreement(amp.grads, fp32.grads);
  EXPECT_GE(g.cosine, GRAD_COSINE);
  EXPECT_LE(g.worst_l2, GRAD_L2);
  std::printf("[ loss fp32 %.6f amp_bf16 %.6f; gradients: cosine %.5f, worst relative L2 %.3g ]\n",
              fp32.loss.loss.item<double>(), amp.loss.loss.item<double>(), g.cosine, g.worst_l2);
}

TEST(AmpBf16, ShortRunLossCurveStaysWithinThreePercentOfFp32) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store", 32);
  distributed::ThreadGroup group(1);
  std::vector<double> curves[2];
  const char* names[2] = {"fp32", "amp_bf16"};
  for (int k = 0; k < 2; ++k) {
    auto c = starft::testing::tiny_config(tmp / "store", tmp / (std::string("run-") + names[k]));
    c.precision = names[k];
    c.teacher = train::TeacherSource::online;
    c.epochs = 3;
    c.lr = 3e-4;
    train::Trainer t(c, group.comm(0));
    EXPECT_EQ(t.run(), train::Trainer::Outcome::finished);
    curves[k] = losses_of(c.run_dir);
  }
  ASSERT_EQ(curves[0].size(), 12u);
  ASSERT_EQ(curves[1].size(), 12u);
  for (size_t s = 0; s < 12; ++s) {
    EXPECT_NEAR(curves[1][s], curves[0][s], 0.03 * std::abs(curves[0][s])) << "step " << s + 1;
  }
  EXPECT_LT(curves[1].back(), curves[1].front()) << "amp_bf16 training does not learn";
}

TEST(AmpBf16, TwoRanksMatchOneRankOnTheFirstStep) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store");
  auto c = starft::testing::tiny_config(tmp / "store", tmp / "run");
  c.precision = "amp_bf16";
  build_precision_cache(c);
  auto grads_of = [&](int ranks) {
    distributed::ThreadGroup group(ranks);
    std::vector<torch::Tensor> grads;
    auto cfg = c;
    cfg.run_dir = tmp / ("run" + std::to_string(ranks));
    group.run([&](distributed::Communicator& comm) {
      train::Trainer t(cfg, comm);
      t.loader().start(0, 0);
      t.backward(t.compute_loss(*t.loader().next(), 0, 0));
      if (comm.rank() != 0) return;
      for (const auto& [name, p] : t.parameters()) grads.push_back(dense_gradient(p));
    });
    return grads;
  };
  const auto one = grads_of(1), two = grads_of(2);
  ASSERT_EQ(one.size(), two.size());
  // Per-rank bfloat16 rounding of the weight gradients (see dist_equivalence_test).
  const auto g = agreement(two, one);
  EXPECT_GE(g.cosine, GRAD_COSINE);
  EXPECT_LE(g.worst_l2, GRAD_L2);
  std::printf("[ 2 ranks vs 1 in amp_bf16: gradients cosine %.5f, worst relative L2 %.3g ]\n", g.cosine, g.worst_l2);
}

TEST(TeacherCache, RefusesACacheOfAnotherPrecisionAndReadsOldCachesAsFp32) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store");
  auto c = starft::testing::tiny_config(tmp / "store", tmp / "run");
  c.precision = "amp_bf16";
  build_precision_cache(c);
  {
    train::TeacherCache cache(c.teacher_cache_path());
    EXPECT_EQ(cache.fingerprint().precision, "amp_bf16");
  }
  c.precision = "fp32";
  distributed::ThreadGroup group(1);
  const auto msg = error_of([&] { train::Trainer t(c, group.comm(0)); });
  EXPECT_NE(msg.find("precision differs (cache amp_bf16, now fp32"), std::string::npos) << msg;
  EXPECT_FALSE(std::filesystem::exists(tmp / "run/checkpoints")) << "a refused run leaves nothing";
  // A fingerprint written before precision was recorded.
  const auto old = train::CacheFingerprint::from_json(
      {{"weights", "crc32:1"}, {"prompts", "crc32:2"}, {"store", "crc32:3"}, {"preprocessing", "eval"}}, "old");
  EXPECT_EQ(old.precision, "fp32");
}

// The commands: cache-teacher and train in amp_bf16 (cache and online teacher, stop and resume,
// pre-training), eval and encode with the flag, bad values refused before any work.
TEST(AmpBf16, CommandsTrainResumeEvalAndEncode) {
  TempDir tmp;
  starft::testing::make_train_store(tmp / "store");
  starft::testing::make_train_store(tmp / "captions", 16, /*captions=*/true);
  const std::string bin = starft::testing::starft_binary();
  const std::string weights = fixture("clip/tiny_clip_openai.safetensors");
  const std::string vocab = fixture("clip/bpe_simple_vocab_16e6.txt.gz");
  const std::string common = " --config " + std::string(STARFT_SOURCE_DIR) + "/configs/tiny.ini --weights " + weights +
                             " --vocab " + vocab + " --store " + (tmp / "store");
  const std::string inputs = common + " --precision amp_bf16";
  std::string out;
  ASSERT_EQ(run_command(bin + " cache-teacher" + inputs, &out), 0) << out;
  EXPECT_NE(out.find("amp_bf16"), std::string::npos) << out;
  const std::string train = bin + " train" + inputs + " --run-dir " + (tmp / "run");
  ASSERT_EQ(run_command(train + " --stop-after 3", &out), 0) << out;
  EXPECT_NE(out.find("precision: amp_bf16"), std::string::npos) << out;
  ASSERT_EQ(run_command(train + " --resume latest", &out), 0) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  EXPECT_EQ(train::read_train_state(*train::latest_checkpoint(tmp / "run")).step, 6);
  // The resumed run kept the precision in its config.ini.
  EXPECT_NE(train::read_train_state(*train::latest_checkpoint(tmp / "run")).config_ini.find("precision = amp_bf16"),
            std::string::npos);
  ASSERT_EQ(
      run_command(bin + " train" + inputs + " --teacher online --stop-after 2 --run-dir " + (tmp / "online"), &out), 0)
      << out;
  ASSERT_EQ(run_command(bin +
                            " train --mode pretrain --model tiny --regulariser none --epochs 1 --batch-size 8 "
                            "--workers 1 --precision amp_bf16 --vocab " +
                            vocab + " --store " + (tmp / "captions") + " --run-dir " + (tmp / "pretrain"),
                        &out),
            0)
      << out;
  // Under mpirun, two ranks.
  ASSERT_EQ(run_command(std::string(STARFT_SOURCE_DIR) + "/launch/mpirun.sh -n 2 -- " + bin + " train" + inputs +
                            " --teacher online --stop-after 2 --run-dir " + (tmp / "mpirun"),
                        &out),
            0)
      << out;
  // eval and encode.
  ASSERT_EQ(run_command(bin + " eval --model tiny --weights " + weights + " --vocab " + vocab + " --store " +
                            (tmp / "store") + " --templates simple --precision amp_bf16 --out " + (tmp / "eval"),
                        &out),
            0)
      << out;
  std::ifstream results(tmp / "eval/results.json");
  EXPECT_EQ(nlohmann::json::parse(results)["run"]["precision"], "amp_bf16");
  auto ref = safetensors::load(fixture("clip/tiny_clip_reference.safetensors")).tensors;
  safetensors::save(tmp / "in.safetensors", {{"images", ref.at("images")}, {"tokens", ref.at("tokens")}});
  ASSERT_EQ(run_command(bin + " encode --model tiny --weights " + weights + " --inputs " + (tmp / "in.safetensors") +
                            " --out " + (tmp / "amp.safetensors") + " --precision amp_bf16",
                        &out),
            0)
      << out;
  auto amp = safetensors::load(tmp / "amp.safetensors").tensors;
  expect_features_close(amp.at("image_features"), ref.at("image_features"), "encode image features");
  // Bad values: refused before any work, naming the option.
  EXPECT_NE(run_command(bin + " train" + common + " --precision fp16 --run-dir " + (tmp / "bad"), &out), 0);
  EXPECT_NE(out.find("--precision fp16: not supported"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(tmp / "bad"));
  EXPECT_NE(run_command(bin + " eval --model tiny --weights " + weights + " --vocab " + vocab + " --store " +
                            (tmp / "store") + " --precision half --out " + (tmp / "eval2"),
                        &out),
            0);
  EXPECT_NE(out.find("--precision 'half'"), std::string::npos) << out;
}
