// The architecture from configuration (clip/architecture.h): the exact-GELU, 32-wide-head fixture
// in every configuration route within 1e-4 of its reference (fixtures README), the published
// layouts (folders, sharded checkpoints, dtypes), export to Hugging Face and open_clip folders and
// back, and one test per refusal.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "clip/architecture.h"
#include "clip/model.h"
#include "clip/safetensors.h"
#include "clip/weights.h"
#include "common/error.h"
#include "tensor_close.h"
#include "test_util.h"
#include "tiny_clip.h"

using namespace starft;
using starft::testing::error_of;
using starft::testing::fixture;
using starft::testing::read_json;
using starft::testing::TempDir;
using starft::testing::write_file;
using starft::testing::tensors_close;
namespace fs = std::filesystem;

namespace {

const safetensors::TensorMap& gelu_reference() {
  static auto ref = safetensors::load(fixture("clip/tiny_openclip_gelu_reference.safetensors")).tensors;
  return ref;
}

std::string gelu_weights() { return fixture("clip/tiny_openclip_gelu.safetensors"); }
std::string gelu_json() { return fixture("clip/tiny_openclip_gelu.open_clip.json"); }
std::string gelu_hf() { return fixture("clip/tiny_openclip_gelu_hf"); }

clip::LoadOptions with_model(const std::string& model) {
  clip::LoadOptions o;
  o.model = model;
  return o;
}

void check_reference(clip::CLIP model, const std::string& what, double tol = 1e-4) {
  model->eval();
  torch::NoGradGuard no_grad;
  auto img = model->encode_image(gelu_reference().at("images"));
  auto txt = model->encode_text(gelu_reference().at("tokens"));
  EXPECT_TRUE(tensors_close(img, gelu_reference().at("image_features"), tol, 0)) << what + " image_features";
  EXPECT_TRUE(tensors_close(txt, gelu_reference().at("text_features"), tol, 0)) << what + " text_features";
  EXPECT_TRUE(tensors_close(model->logits_per_image(img, txt), gelu_reference().at("logits_per_image"), tol, 0))
      << what + " logits_per_image";
}

void expect_gelu_fixture_config(const clip::CLIPConfig& c) {
  EXPECT_FALSE(c.quick_gelu);
  EXPECT_EQ(c.vision_heads, 4);
  EXPECT_EQ(c.text_heads, 4);
  EXPECT_EQ(c.vision_width, 128);
  EXPECT_EQ(c.embed_dim, 64);
  EXPECT_EQ(c.image_size, 32);
}

nlohmann::json gelu_open_clip_config() { return read_json(gelu_json()); }

// The error of loading `path` with `model` ("" when it loads).
std::string load_error(const std::string& path, const std::string& model = "") {
  return error_of([&] { clip::load_weights(path, with_model(model)); });
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

}  // namespace

// ---- the fixture in every configuration route ------------------------------------------------

TEST(ClipArchitecture, OpenClipModelConfigJsonRouteMatchesReference) {
  auto model = clip::load_weights(gelu_weights(), with_model(gelu_json()));
  expect_gelu_fixture_config(model->config());
  EXPECT_CONTAINS(model->config().sources.at("activation"), "no quick_gelu key");
  EXPECT_CONTAINS(model->config().sources.at("vision_heads"), "head_width 32");
  check_reference(model, "open_clip JSON");
}

TEST(ClipArchitecture, HuggingFaceFolderRouteMatchesReference) {
  auto model = clip::load_weights(gelu_hf());
  expect_gelu_fixture_config(model->config());
  EXPECT_CONTAINS(model->config().sources.at("activation"), "hidden_act \"gelu\"");
  check_reference(model, "Hugging Face folder");
}

TEST(ClipArchitecture, WeightsFileWithConfigJsonBesideMatchesReference) {
  auto model = clip::load_weights(gelu_hf() + "/model.safetensors");
  expect_gelu_fixture_config(model->config());
  check_reference(model, "model.safetensors with config.json beside it");
}

TEST(ClipArchitecture, HuggingFaceConfigJsonAsModelMatchesReference) {
  // The Hugging Face config given as --model for the open_clip-named weights.
  auto model = clip::load_weights(gelu_weights(), with_model(gelu_hf() + "/config.json"));
  expect_gelu_fixture_config(model->config());
  check_reference(model, "--model config.json");
}

TEST(ClipArchitecture, StarftExportRecordsTheArchitectureAndMatchesReference) {
  TempDir dir;
  auto model = clip::load_weights(gelu_weights(), with_model(gelu_json()));
  clip::save_weights(model, dir / "export.safetensors");
  auto meta = safetensors::load(dir / "export.safetensors").metadata;
  EXPECT_CONTAINS(meta.at("starft.config"), "\"quick_gelu\":false");
  EXPECT_CONTAINS(meta.at("starft.config_sources"), "tiny_openclip_gelu.open_clip.json");
  auto back = clip::load_weights(dir / "export.safetensors");  // no --model: starft's metadata
  expect_gelu_fixture_config(back->config());
  EXPECT_CONTAINS(back->config().sources.at("activation"), "recorded in");
  check_reference(back, "starft export");
}

TEST(ClipArchitecture, HuggingFaceExportRoundTrips) {
  TempDir dir;
  auto model = clip::load_weights(gelu_weights(), with_model(gelu_json()));
  clip::save_hf_folder(model, dir / "hf");
  for (const char* f : {"model.safetensors", "config.json", "preprocessor_config.json"})
    EXPECT_TRUE(fs::is_regular_file(dir.path() / "hf" / f)) << f;
  auto cfg = read_json(dir / "hf/config.json");
  EXPECT_EQ(cfg["model_type"], "clip");
  EXPECT_EQ(cfg["architectures"][0], "CLIPModel");
  EXPECT_EQ(cfg["vision_config"]["hidden_act"], "gelu");
  EXPECT_EQ(cfg["vision_config"]["num_attention_heads"], 4);
  EXPECT_EQ(cfg["text_config"]["num_attention_heads"], 4);
  EXPECT_EQ(cfg["projection_dim"], 64);
  auto file = safetensors::load(dir / "hf/model.safetensors");
  EXPECT_EQ(file.metadata.at("format"), "pt");  // transformers refuses safetensors files without it
  // The same names and shapes as the published Hugging Face copy of these weights.
  auto published = safetensors::load(gelu_hf() + "/model.safetensors").tensors;
  for (const auto& [name, t] : published) {
    if (name.find("position_ids") != std::string::npos) continue;
    ASSERT_TRUE(file.tensors.count(name)) << name;
    EXPECT_TRUE(torch::equal(file.tensors[name], t.to(torch::kFloat))) << name;
  }
  check_reference(clip::load_weights(dir / "hf"), "Hugging Face export");
}

TEST(ClipArchitecture, OpenClipExportRoundTrips) {
  TempDir dir;
  auto model = clip::load_weights(gelu_hf());
  clip::save_open_clip_folder(model, dir / "oc");
  auto cfg = read_json(dir / "oc/open_clip_config.json");
  EXPECT_EQ(cfg["model_cfg"]["vision_cfg"]["head_width"], 32);
  EXPECT_EQ(cfg["model_cfg"]["text_cfg"]["heads"], 4);
  EXPECT_FALSE(cfg["model_cfg"].contains("quick_gelu"));  // open_clip: no key, the exact GELU
  EXPECT_EQ(cfg["model_cfg"], gelu_open_clip_config());   // the published model config, key for key
  check_reference(clip::load_weights(dir / "oc"), "open_clip export folder");
  // Its model_cfg, given as --model for the bare weights file, as open_clip users do.
  write_file(dir / "model.json", cfg["model_cfg"].dump());
  auto plain = safetensors::load(dir / "oc/open_clip_model.safetensors").tensors;
  safetensors::save(dir / "bare.safetensors", plain);  // without starft's metadata
  check_reference(clip::load_weights(dir / "bare.safetensors", with_model(dir / "model.json")), "open_clip model_cfg");
}

TEST(ClipArchitecture, MlpRatioOfTheExportGivesOpenClipsWidth) {
  for (const char* name : {"ViT-g-14", "ViT-bigG-14"}) {
    auto c = clip::config_by_name(name);
    auto exported = clip::open_clip_config_json(c);
    auto back = clip::parse_open_clip_config(exported["model_cfg"], "export", exported["preprocess_cfg"]);
    EXPECT_EQ(back.vision_mlp(), c.vision_mlp()) << name;
    EXPECT_EQ(back.vision_heads, c.vision_heads) << name;
  }
}

// ---- published layouts -----------------------------------------------------------------------

TEST(ClipArchitecture, ShardedHuggingFaceCheckpointLoads) {
  TempDir dir;
  auto tensors = safetensors::load(gelu_hf() + "/model.safetensors").tensors;
  safetensors::TensorMap a, b;
  nlohmann::json weight_map = nlohmann::json::object();
  bool first = true;
  for (const auto& [name, t] : tensors) {
    (first ? a : b)[name] = t;
    weight_map[name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    first = name.rfind("text_model.", 0) == 0 ? first : false;  // the text tower in shard 1, the rest in 2
  }
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  safetensors::save(dir / "model-00001-of-00002.safetensors", a, {{"format", "pt"}});
  safetensors::save(dir / "model-00002-of-00002.safetensors", b, {{"format", "pt"}});
  write_file(dir / "model.safetensors.index.json",
             nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump());
  fs::copy_file(gelu_hf() + "/config.json", dir / "config.json");
  check_reference(clip::load_weights(dir.path().string()), "sharded folder");
  check_reference(clip::load_weights(dir / "model.safetensors.index.json"), "sharded index");
}

TEST(ClipArchitecture, FolderWithBothNamingsPrefersOpenClipsFile) {
  TempDir dir;
  fs::create_directories(dir / "m");
  auto model = clip::load_weights(gelu_hf());
  clip::save_open_clip_folder(model, dir / "m");
  clip::save_hf_folder(model, dir / "m");
  auto w = clip::read_weights(dir / "m");
  EXPECT_EQ(fs::path(w.source).filename().string(), "open_clip_model.safetensors");
}

TEST(ClipArchitecture, Float32AndBFloat16WeightsLoad) {
  TempDir dir;
  auto tensors = safetensors::load(gelu_weights()).tensors;
  safetensors::TensorMap f32, bf16;
  for (const auto& [name, t] : tensors) {
    f32[name] = t.to(torch::kFloat);
    bf16[name] = t.to(torch::kBFloat16);
  }
  safetensors::save(dir / "f32.safetensors", f32);
  safetensors::save(dir / "bf16.safetensors", bf16);
  check_reference(clip::load_weights(dir / "f32.safetensors", with_model(gelu_json())), "F32");
  // bfloat16 keeps 8 bits of mantissa: the outputs move by about 1%.
  check_reference(clip::load_weights(dir / "bf16.safetensors", with_model(gelu_json())), "BF16", 0.1);
}

// ---- the built-in table and OpenAI's shapes --------------------------------------------------

TEST(ClipArchitecture, BuiltInTableHasOpenClipsPublishedSettings) {
  auto h = clip::config_by_name("ViT-H-14");
  EXPECT_EQ(h.vision_heads, 16);  // 1280 / head_width 80
  EXPECT_EQ(h.text_heads, 16);
  EXPECT_FALSE(h.quick_gelu);
  auto g = clip::config_by_name("ViT-g-14");
  EXPECT_EQ(g.vision_width / g.vision_heads, 88);
  EXPECT_EQ(g.vision_mlp(), 6144);
  auto big = clip::config_by_name("ViT-bigG-14");
  EXPECT_EQ(big.vision_width / big.vision_heads, 104);
  EXPECT_EQ(big.vision_mlp(), 8192);
  EXPECT_EQ(big.text_heads, 20);
  EXPECT_EQ(big.text_layers, 32);
  EXPECT_EQ(big.embed_dim, 1280);
  EXPECT_FALSE(clip::config_by_name("ViT-B-16").quick_gelu);
  EXPECT_TRUE(clip::config_by_name("ViT-B-16-quickgelu").quick_gelu);
  EXPECT_EQ(clip::config_by_name("ViT-L-14-336").image_size, 336);
  EXPECT_EQ(clip::config_by_name("ViT-B-32").patch_size, 32);
  EXPECT_TRUE(clip::config_by_name("ViT-B/16").quick_gelu);  // OpenAI's
}

TEST(ClipArchitecture, OpenAIShapesGetOpenAIsSettingsAsAnAssumption) {
  for (const auto& [name, openai] :
       std::vector<std::pair<std::string, std::string>>{{"ViT-B-32", "ViT-B/32"},
                                                        {"ViT-B-16", "ViT-B/16"},
                                                        {"ViT-L-14", "ViT-L/14"},
                                                        {"ViT-L-14-336", "ViT-L/14@336px"}}) {
    auto shapes = clip::config_by_name(name);
    EXPECT_EQ(clip::openai_model_with_shapes(shapes), openai) << name;
    auto c = clip::resolve_architecture(shapes, {}, "w.safetensors");
    EXPECT_TRUE(c.quick_gelu) << name;
    EXPECT_EQ(c.vision_heads, c.vision_width / 64) << name;
    EXPECT_EQ(c.text_heads, c.text_width / 64) << name;
    EXPECT_CONTAINS(c.sources.at("activation"), "assumed");
  }
  EXPECT_FALSE(clip::openai_model_with_shapes(clip::config_by_name("ViT-H-14")).has_value());
  EXPECT_FALSE(clip::openai_model_with_shapes(clip::config_by_name("tiny")).has_value());
}

TEST(ClipArchitecture, PreprocessingMeanAndStdComeFromTheConfig) {
  auto hf = read_json(gelu_hf() + "/config.json");
  nlohmann::json pre = {{"image_mean", {0.5, 0.5, 0.5}}, {"image_std", {0.25, 0.25, 0.25}}, {"crop_size", 32}};
  auto c = clip::parse_hf_config(hf, "config.json", pre);
  EXPECT_DOUBLE_EQ(c.image_mean[1], 0.5);
  EXPECT_DOUBLE_EQ(c.image_std[2], 0.25);
  auto oc =
      clip::parse_open_clip_config(gelu_open_clip_config(), "oc.json", {{"mean", {0.1, 0.2, 0.3}}, {"std", {1, 1, 1}}});
  EXPECT_DOUBLE_EQ(oc.image_mean[2], 0.3);
  // Recorded with the weights and read back.
  auto back = clip::CLIPConfig::from_json(c.to_json());
  EXPECT_DOUBLE_EQ(back.image_mean[0], 0.5);
}

// A file whose metadata says format=openai-clip (the tiny_clip fixture, OpenAI's converted
// checkpoints) declares OpenAI's conventions: it loads without --model, with QuickGELU and 64-wide
// heads, and matches its reference; the same settings as --model tiny.
TEST(ClipArchitecture, OpenAIFormatMetadataDeclaresOpenAIConventions) {
  const auto path = fixture("clip/tiny_clip_openai.safetensors");
  auto model = clip::load_weights(path);
  const auto& c = model->config();
  EXPECT_TRUE(c.quick_gelu);
  EXPECT_EQ(c.vision_heads, 2);
  EXPECT_EQ(c.text_heads, 2);
  EXPECT_NE(c.sources.at("activation").find("format=openai-clip"), std::string::npos) << c.sources.at("activation");
  auto ref = safetensors::load(fixture("clip/tiny_clip_reference.safetensors")).tensors;
  model->eval();
  torch::NoGradGuard no_grad;
  auto img = model->encode_image(ref.at("images"));
  auto txt = model->encode_text(ref.at("tokens"));
  EXPECT_TRUE(tensors_close(img, ref.at("image_features"), 1e-4, 0)) << "image_features";
  EXPECT_TRUE(tensors_close(txt, ref.at("text_features"), 1e-4, 0)) << "text_features";
  // --model tiny agrees with what the metadata declares.
  auto with_model = clip::load_weights(path, starft::testing::tiny_options());
  EXPECT_EQ(with_model->config().quick_gelu, c.quick_gelu);
  EXPECT_EQ(with_model->config().vision_heads, c.vision_heads);
}

// ---- refusals: one test each -----------------------------------------------------------------

TEST(ClipArchitecture, RefusesNonOpenAIShapesWithoutConfigurationNamingModel) {
  const auto msg = load_error(gelu_weights());
  EXPECT_CONTAINS(msg, "tiny_openclip_gelu.safetensors");
  EXPECT_CONTAINS(msg, "--model");
  EXPECT_CONTAINS(msg, "ViT-H-14");
}

TEST(ClipArchitecture, RefusesAHuggingFaceFileWhoseConfigIsMissing) {
  TempDir dir;
  fs::copy_file(gelu_hf() + "/model.safetensors", dir / "model.safetensors");
  EXPECT_CONTAINS(load_error(dir / "model.safetensors"), "--model");
}

TEST(ClipArchitecture, RefusesAModelThatDoesNotFitTheShapes) {
  const auto msg = load_error(gelu_weights(), "ViT-B-16");
  EXPECT_CONTAINS(msg, "do not fit");
  EXPECT_CONTAINS(msg, "vision_width");
}

TEST(ClipArchitecture, RefusesConfigurationsThatDisagree) {
  // config.json says GELU with 4 heads; --model tiny says QuickGELU with 2.
  const auto msg = load_error(gelu_hf(), "tiny");
  EXPECT_CONTAINS(msg, "disagree");
  EXPECT_CONTAINS(msg, "quick_gelu");
}

TEST(ClipArchitecture, RefusesAnUnknownModelName) {
  const auto msg = error_of([] { clip::model_config("ViT-Q-99"); });
  EXPECT_CONTAINS(msg, "unknown model name 'ViT-Q-99'");
  EXPECT_CONTAINS(msg, "ViT-bigG-14");
}

struct Refusal {
  const char* tower;  // "" (top level), vision_cfg or text_cfg
  const char* key;
  nlohmann::json value;
};

void PrintTo(const Refusal& r, std::ostream* os) {
  *os << r.tower << (*r.tower ? "." : "") << r.key << " = " << r.value.dump();
}

class OpenClipRefusal : public ::testing::TestWithParam<Refusal> {};

TEST_P(OpenClipRefusal, NamesTheKey) {
  auto cfg = gelu_open_clip_config();
  const Refusal& r = GetParam();
  if (std::string(r.tower).empty())
    cfg[r.key] = r.value;
  else
    cfg[r.tower][r.key] = r.value;
  const auto msg = error_of([&] { clip::parse_open_clip_config(cfg, "m.json"); });
  EXPECT_CONTAINS(msg, r.key);
}

INSTANTIATE_TEST_SUITE_P(
    ClipArchitecture, OpenClipRefusal,
    ::testing::Values(Refusal{"vision_cfg", "pool_type", "avg"}, Refusal{"vision_cfg", "global_average_pool", true},
                      Refusal{"vision_cfg", "act_kwargs", {{"approximate", "tanh"}}},
                      Refusal{"vision_cfg", "ls_init_value", 1e-5}, Refusal{"vision_cfg", "timm_model_name", "vit"},
                      Refusal{"vision_cfg", "attentional_pool", true}, Refusal{"vision_cfg", "no_ln_pre", true},
                      Refusal{"vision_cfg", "layers", {3, 4, 6, 3}}, Refusal{"text_cfg", "hf_model_name", "roberta"},
                      Refusal{"text_cfg", "pool_type", "last"}, Refusal{"text_cfg", "no_causal_mask", true},
                      Refusal{"text_cfg", "embed_cls", true}, Refusal{"text_cfg", "hf_tokenizer_name", "bert"},
                      Refusal{"", "init_logit_bias", -10}, Refusal{"", "custom_text", true},
                      Refusal{"vision_cfg", "some_new_setting", 1}),
    [](const ::testing::TestParamInfo<Refusal>& info) {
      return std::string(info.param.tower).empty() ? std::string(info.param.key)
                                                   : std::string(info.param.tower) + "_" + info.param.key;
    });

TEST(ClipArchitecture, RefusesAnotherHuggingFaceActivation) {
  auto cfg = read_json(gelu_hf() + "/config.json");
  cfg["vision_config"]["hidden_act"] = "gelu_new";
  cfg["text_config"]["hidden_act"] = "gelu_new";
  EXPECT_CONTAINS(error_of([&] { clip::parse_hf_config(cfg, "config.json"); }), "hidden_act 'gelu_new'");
}

TEST(ClipArchitecture, RefusesTowersWithDifferentActivations) {
  auto cfg = read_json(gelu_hf() + "/config.json");
  cfg["vision_config"]["hidden_act"] = "quick_gelu";
  EXPECT_CONTAINS(error_of([&] { clip::parse_hf_config(cfg, "config.json"); }), "hidden_act differ");
}

TEST(ClipArchitecture, RefusesAnotherModelType) {
  auto cfg = read_json(gelu_hf() + "/config.json");
  cfg["model_type"] = "siglip";
  EXPECT_CONTAINS(error_of([&] { clip::parse_hf_config(cfg, "config.json"); }), "model_type 'siglip'");
}

TEST(ClipArchitecture, RefusesTextPoolingAtAnotherToken) {
  auto cfg = read_json(gelu_hf() + "/config.json");
  cfg["text_config"]["eos_token_id"] = 7;
  EXPECT_CONTAINS(error_of([&] { clip::parse_hf_config(cfg, "config.json"); }), "eos_token_id 7");
}

TEST(ClipArchitecture, RefusesAPreprocessorOfAnotherSize) {
  auto cfg = read_json(gelu_hf() + "/config.json");
  EXPECT_CONTAINS(error_of([&] { clip::parse_hf_config(cfg, "config.json", {{"crop_size", 224}}); }), "crop_size");
}

TEST(ClipArchitecture, RefusesAGitLfsPointerNamingGitLfsPull) {
  TempDir dir;
  write_file(
      dir / "model.safetensors",
      "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146e1d3c5a8f0b9e6a3c2d1f0e9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3\nsize 14349010\n");
  const auto msg = error_of([&] { safetensors::load(dir / "model.safetensors"); });
  EXPECT_CONTAINS(msg, "Git LFS pointer");
  EXPECT_CONTAINS(msg, "git lfs pull");
  EXPECT_CONTAINS(msg, "14349010");
}

// A Hugging Face config.json beside the weights, or a --model JSON file, that is a Git LFS pointer
// once read as "not valid JSON"; now named as a pointer with `git lfs pull`.
TEST(ClipArchitecture, AConfigJsonThatIsAGitLfsPointerNamesTheFileAndGitLfsPull) {
  TempDir dir;
  const std::string pointer =
      "version https://git-lfs.github.com/spec/v1\n"
      "oid sha256:4d7a2146e1d3c5a8f0b9e6a3c2d1f0e9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3\n"
      "size 4519\n";
  std::filesystem::copy_file(gelu_hf() + "/model.safetensors", dir / "model.safetensors");
  write_file(dir / "config.json", pointer);
  auto msg = error_of([&] { clip::read_weights(dir.path().string()); });
  EXPECT_NE(msg.find(dir / "config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("git lfs pull --include \"config.json\""), std::string::npos) << msg;
  write_file(dir / "model.json", pointer);
  msg = error_of([&] { clip::model_config(dir / "model.json"); });
  EXPECT_NE(msg.find(dir / "model.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("git lfs pull --include \"model.json\""), std::string::npos) << msg;
}

TEST(ClipArchitecture, RefusesAPyTorchPickleWithTheConversionCommand) {
  TempDir dir;
  write_file(dir / "pytorch_model.bin", std::string("\x80\x02}q\x00.", 6));
  const auto msg = load_error(dir / "pytorch_model.bin");
  EXPECT_CONTAINS(msg, "PyTorch pickle");
  EXPECT_CONTAINS(msg, "safetensors.torch");
  EXPECT_CONTAINS(msg, "model.safetensors");  // Hugging Face's name for the converted file
}

TEST(ClipArchitecture, RefusesAFolderHoldingOnlyAPickle) {
  TempDir dir;
  write_file(dir / "open_clip_pytorch_model.bin", "PK\x03\x04 not really");
  const auto msg = load_error(dir.path().string());
  EXPECT_CONTAINS(msg, "open_clip_pytorch_model.bin");
  EXPECT_CONTAINS(msg, "open_clip_model.safetensors");
}

TEST(ClipArchitecture, RefusesAZipArchiveNamedSafetensors) {
  TempDir dir;
  write_file(dir / "w.safetensors", std::string("PK\x03\x04\x14\x00\x00\x00\x08\x00", 10) + std::string(64, 'x'));
  const auto msg = error_of([&] { safetensors::load(dir / "w.safetensors"); });
  EXPECT_CONTAINS(msg, "zip archive");
  EXPECT_CONTAINS(msg, "python3 -c");
}

// ---- the commands ----------------------------------------------------------------------------

TEST(ClipArchitecture, EncodeAndExportCommandsTakeModel) {
  TempDir dir;
  safetensors::save(dir / "in.safetensors",
                    {{"images", gelu_reference().at("images")}, {"tokens", gelu_reference().at("tokens")}});
  const std::string bin = starft::testing::starft_binary();
  std::string out;
  // Without configuration: refused, naming --model; nothing written.
  EXPECT_NE(starft::testing::run_command(bin + " encode --weights " + gelu_weights() + " --inputs " +
                                             (dir / "in.safetensors") + " --out " + (dir / "none.safetensors"),
                                         &out),
            0);
  EXPECT_CONTAINS(out, "--model");
  EXPECT_FALSE(fs::exists(dir / "none.safetensors"));
  // With --model FILE.json: the reference.
  ASSERT_EQ(
      starft::testing::run_command(bin + " encode --weights " + gelu_weights() + " --model " + gelu_json() +
                                       " --inputs " + (dir / "in.safetensors") + " --out " + (dir / "out.safetensors"),
                                   &out),
      0)
      << out;
  EXPECT_CONTAINS(out, "exact GELU");  // the log says which architecture was used
  auto res = safetensors::load(dir / "out.safetensors").tensors;
  EXPECT_TRUE(tensors_close(res.at("image_features"), gelu_reference().at("image_features"), 1e-4, 0))
      << "encode image_features";
  EXPECT_TRUE(tensors_close(res.at("text_features"), gelu_reference().at("text_features"), 1e-4, 0))
      << "encode text_features";
  // export --weights --format hf: a folder that loads with no further configuration.
  ASSERT_EQ(starft::testing::run_command(bin + " export --weights " + gelu_weights() + " --model " + gelu_json() +
                                             " --format hf --out " + (dir / "hf"),
                                         &out),
            0)
      << out;
  check_reference(clip::load_weights(dir / "hf"), "export --format hf");
}
