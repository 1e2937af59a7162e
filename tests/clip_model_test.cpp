// CLIP model parity with the reference implementation, weight import/export, causal truncation.
// Tolerance (fixtures README): features and logits within 1e-4 of the largest magnitude.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "clip/model.h"
#include "clip/safetensors.h"
#include "clip/weights.h"
#include "common/error.h"
#include "tensor_close.h"
#include "test_util.h"
#include "tiny_clip.h"

using namespace starft;
using starft::testing::fixture;
using starft::testing::TempDir;
using starft::testing::tensors_close;

namespace {

const safetensors::TensorMap& reference() {
  static auto ref = safetensors::load(fixture("clip/tiny_clip_reference.safetensors")).tensors;
  return ref;
}

void check_parity(const std::string& weights) {
  auto model = clip::load_weights(fixture(weights), starft::testing::tiny_options());
  model->eval();
  torch::NoGradGuard no_grad;
  auto img = model->encode_image(reference().at("images"));
  auto txt = model->encode_text(reference().at("tokens"));
  EXPECT_TRUE(tensors_close(img, reference().at("image_features"), 1e-4, 0)) << weights + " image_features";
  EXPECT_TRUE(tensors_close(txt, reference().at("text_features"), 1e-4, 0)) << weights + " text_features";
  EXPECT_TRUE(tensors_close(model->logits_per_image(img, txt), reference().at("logits_per_image"), 1e-4, 0))
      << weights + " logits_per_image";
}

}  // namespace

TEST(ClipModel, InferredConfigMatchesFixtureShapes) {
  auto model = clip::load_weights(fixture("clip/tiny_clip_openai.safetensors"), starft::testing::tiny_options());
  const auto& c = model->config();
  EXPECT_EQ(c.image_size, 32);
  EXPECT_EQ(c.patch_size, 8);
  EXPECT_EQ(c.vision_width, 128);
  EXPECT_EQ(c.vision_layers, 2);
  EXPECT_EQ(c.vision_heads, 2);
  EXPECT_EQ(c.text_width, 128);
  EXPECT_EQ(c.text_layers, 2);
  EXPECT_EQ(c.text_heads, 2);
  EXPECT_EQ(c.context_length, 77);
  EXPECT_EQ(c.vocab_size, 49408);
  EXPECT_EQ(c.embed_dim, 64);
}

TEST(ClipModel, OpenAINamingReproducesReference) { check_parity("clip/tiny_clip_openai.safetensors"); }

TEST(ClipModel, HuggingFaceNamingReproducesReference) { check_parity("clip/tiny_clip_hf.safetensors"); }

TEST(ClipModel, ParameterNamesMapOneToOneOntoOpenAIStateDict) {
  auto file = safetensors::load(fixture("clip/tiny_clip_openai.safetensors")).tensors;
  auto model = clip::load_weights(fixture("clip/tiny_clip_openai.safetensors"), starft::testing::tiny_options());
  auto params = model->named_parameters();
  EXPECT_EQ(params.size(), file.size());
  for (const auto& kv : file) EXPECT_TRUE(params.contains(kv.first)) << kv.first;
}

TEST(ClipModel, CausalTruncationGivesIdenticalFeaturesAndGradients) {
  auto tokens = reference().at("tokens");
  auto run = [&](bool truncate) {
    auto model = clip::load_weights(fixture("clip/tiny_clip_openai.safetensors"), starft::testing::tiny_options());
    auto feats = model->encode_text(tokens, truncate);
    (feats * torch::linspace(-1, 1, feats.numel()).view(feats.sizes())).sum().backward();
    std::map<std::string, torch::Tensor> grads;
    for (const auto& p : model->named_parameters()) {
      if (p.value().grad().defined()) grads[p.key()] = p.value().grad().clone();
    }
    return std::make_pair(feats.detach(), grads);
  };
  auto [full, full_grads] = run(false);
  auto [trunc, trunc_grads] = run(true);
  // Same maths in a different shape: equal up to float32 summation order.
  EXPECT_TRUE(tensors_close(trunc, full, 1e-5, 0)) << "truncated text features";
  ASSERT_FALSE(full_grads.empty());
  for (const auto& [name, g] : full_grads) {
    ASSERT_TRUE(trunc_grads.count(name)) << name;
    EXPECT_TRUE(tensors_close(trunc_grads[name], g, 1e-5)) << name;
  }
}

TEST(ClipModel, GradientsReachEveryParameter) {
  auto model = clip::load_weights(fixture("clip/tiny_clip_openai.safetensors"), starft::testing::tiny_options());
  auto img = model->encode_image(reference().at("images"));
  auto txt = model->encode_text(reference().at("tokens"), /*truncate=*/false);
  auto logits = model->logits_per_image(img, txt);
  auto labels = torch::arange(4);
  torch::nn::functional::cross_entropy(logits, labels).backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}

TEST(ClipModel, ExportRoundTripsInOpenAINaming) {
  TempDir dir;
  auto model = clip::load_weights(fixture("clip/tiny_clip_hf.safetensors"), starft::testing::tiny_options());
  clip::save_weights(model, dir / "export.safetensors");
  auto exported = safetensors::load(dir / "export.safetensors");
  auto openai = safetensors::load(fixture("clip/tiny_clip_openai.safetensors")).tensors;
  ASSERT_EQ(exported.tensors.size(), openai.size());
  for (const auto& [name, t] : openai) {
    ASSERT_TRUE(exported.tensors.count(name)) << name;
    EXPECT_EQ(exported.tensors[name].scalar_type(), torch::kFloat) << name;
    EXPECT_TRUE(torch::equal(exported.tensors[name], t.to(torch::kFloat))) << name;
  }
  EXPECT_EQ(exported.metadata.at("format"), "openai-clip");
  auto reloaded = clip::load_weights(dir / "export.safetensors");
  EXPECT_EQ(reloaded->config().to_json(), model->config().to_json());
}

// A model trained from scratch starts at CLIP's temperature 0.07 (Radford et al. 2021, sec. 2.5;
// open_clip's init_logit_scale = log(1 / 0.07)), not at the clamp's ceiling of 100.
TEST(ClipModel, RandomInitialisationStartsAtTemperatureOf0_07) {
  auto cfg = clip::config_by_name("tiny");
  EXPECT_NEAR(cfg.init_logit_scale, std::log(1 / 0.07), 1e-12);
  clip::CLIP model(cfg);
  clip::init_parameters(model, 7);
  EXPECT_NEAR(model->logit_scale.exp().item<double>(), 1 / 0.07, 1e-4);
}

TEST(ClipModel, StoredConfigKeepsNonDefaultHeads) {
  TempDir dir;
  auto cfg = clip::config_by_name("tiny");
  cfg.vision_heads = 4;  // not width / 64
  cfg.quick_gelu = false;
  clip::CLIP model(cfg);
  clip::init_parameters(model, 7);
  clip::save_weights(model, dir / "m.safetensors");
  auto back = clip::load_weights(dir / "m.safetensors");
  EXPECT_EQ(back->config().vision_heads, 4);
  EXPECT_FALSE(back->config().quick_gelu);
  torch::NoGradGuard no_grad;
  auto images = reference().at("images");
  EXPECT_TRUE(torch::allclose(back->encode_image(images), model->encode_image(images)));
}

TEST(ClipModel, MismatchedWeightsListEveryProblemAtOnce) {
  TempDir dir;
  auto w = safetensors::load(fixture("clip/tiny_clip_openai.safetensors")).tensors;
  w.erase("ln_final.bias");
  w.erase("visual.ln_post.weight");
  w["transformer.resblocks.0.mlp.c_fc.bias"] = torch::zeros({7});
  w["extra.tensor"] = torch::zeros({3});
  safetensors::save(dir / "bad.safetensors", w);
  try {
    clip::load_weights(dir / "bad.safetensors", starft::testing::tiny_options());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("ln_final.bias"), std::string::npos) << msg;
    EXPECT_NE(msg.find("visual.ln_post.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("transformer.resblocks.0.mlp.c_fc.bias"), std::string::npos) << msg;
    EXPECT_NE(msg.find("extra.tensor"), std::string::npos) << msg;
  }
}

TEST(ClipModel, HuggingFaceWeightsMissingAProjectionAreRefused) {
  TempDir dir;
  auto w = safetensors::load(fixture("clip/tiny_clip_hf.safetensors")).tensors;
  w.erase("text_model.encoder.layers.1.self_attn.k_proj.weight");
  safetensors::save(dir / "hf.safetensors", w);
  try {
    clip::load_weights(dir / "hf.safetensors", starft::testing::tiny_options());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("transformer.resblocks.1.k_proj.weight"), std::string::npos) << e.what();
  }
}

TEST(ClipModel, WrongImageSizeIsAClearError) {
  auto model = clip::load_weights(fixture("clip/tiny_clip_openai.safetensors"), starft::testing::tiny_options());
  torch::NoGradGuard no_grad;
  EXPECT_THROW(model->encode_image(torch::zeros({1, 3, 64, 64})), Error);
}

TEST(ClipModel, EncodeCommandWritesReferenceOutputs) {
  TempDir dir;
  safetensors::save(dir / "in.safetensors",
                    {{"images", reference().at("images")}, {"tokens", reference().at("tokens")}});
  std::string out;
  int rc = starft::testing::run_command(starft::testing::starft_binary() + " encode --model tiny --weights " +
                                            fixture("clip/tiny_clip_hf.safetensors") + " --inputs " +
                                            (dir / "in.safetensors") + " --out " + (dir / "out.safetensors"),
                                        &out);
  ASSERT_EQ(rc, 0) << out;
  auto res = safetensors::load(dir / "out.safetensors").tensors;
  EXPECT_TRUE(tensors_close(res.at("image_features"), reference().at("image_features"), 1e-4, 0))
      << "encode image_features";
  EXPECT_TRUE(tensors_close(res.at("text_features"), reference().at("text_features"), 1e-4, 0))
      << "encode text_features";
  EXPECT_TRUE(tensors_close(res.at("logits_per_image"), reference().at("logits_per_image"), 1e-4, 0))
      << "encode logits";
}

TEST(ClipModel, EncodeCommandRejectsMissingInputs) {
  TempDir dir;
  safetensors::save(dir / "in.safetensors", {{"other", torch::zeros({2})}});
  std::string out;
  int rc = starft::testing::run_command(starft::testing::starft_binary() + " encode --model tiny --weights " +
                                            fixture("clip/tiny_clip_openai.safetensors") + " --inputs " +
                                            (dir / "in.safetensors") + " --out " + (dir / "out.safetensors"),
                                        &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("neither `images` nor `tokens`"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir / "out.safetensors"));
}
