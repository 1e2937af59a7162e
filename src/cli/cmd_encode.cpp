// `starft encode`: runs the CLIP towers on tensors from a .safetensors file, for checking the
// model against another implementation from outside the tests.
#include <torch/torch.h>

#include <cstdio>

#include "cli/command.h"
#include "clip/safetensors.h"
#include "clip/tokenizer.h"
#include "clip/weights.h"
#include "common/error.h"
#include "common/lfs_pointer.h"
#include "common/precision.h"
#include "distributed/device.h"

namespace starft::cli {
namespace {

// Rows: images; columns: texts (labelled T0.. and listed below when their text is known).
void print_table(const torch::Tensor& logits, const std::vector<std::string>& labels) {
  auto probs = torch::softmax(logits, 1);
  std::printf("logits_per_image (softmax over texts in brackets)\n%-8s", "");
  for (int64_t c = 0; c < logits.size(1); ++c) std::printf("%16s", ("T" + std::to_string(c)).c_str());
  std::printf("\n");
  for (int64_t r = 0; r < logits.size(0); ++r) {
    std::printf("%-8s", ("image " + std::to_string(r)).c_str());
    for (int64_t c = 0; c < logits.size(1); ++c) {
      std::printf("%9.3f (%3.0f%%)", logits[r][c].item<double>(), 100 * probs[r][c].item<double>());
    }
    std::printf("\n");
  }
  for (size_t c = 0; c < labels.size(); ++c) std::printf("T%zu = \"%s\"\n", c, labels[c].c_str());
}

int run_encode(int argc, char** argv) {
  po::options_description opts("options");
  opts.add_options()("weights", po::value<std::string>()->required(),
                     "CLIP weights: .safetensors (OpenAI/open_clip or Hugging Face naming), a model folder or a "
                     "model.safetensors.index.json")("model", po::value<std::string>()->default_value(""), kModelHelp)(
      "inputs", po::value<std::string>()->required(),
      "input .safetensors with `images` [N,3,H,W] f32 and/or `tokens` [M,L] i64")(
      "out", po::value<std::string>()->required(),
      "output .safetensors: image_features, text_features, logits_per_image")(
      "device", po::value<std::string>()->default_value("cpu"),
      "device to run on: cpu, cuda (the current GPU) or cuda:N")(
      "precision", po::value<std::string>()->default_value("fp32"),
      "fp32, amp_bf16 (bfloat16 autocast; the features written are float32) or auto")(
      "batch-size", po::value<int64_t>()->default_value(256), "samples per forward pass")(
      "no-truncate", po::bool_switch(), "run the text tower on all context positions (default: causal truncation)")(
      "print", po::bool_switch(), "also print logits_per_image as a table (rows: images, columns: texts)")(
      "vocab", po::value<std::string>(), "BPE vocabulary; with --print, label the columns with the decoded texts");
  auto vm = parse(argc, argv, opts,
                  "usage: starft encode --weights W.safetensors --inputs IN.safetensors --out OUT.safetensors\n"
                  "Writes the encoder outputs (before L2 normalisation) and, when both images and tokens are\n"
                  "given, logits_per_image = exp(logit_scale) * norm(image) @ norm(text)^T.");
  if (!vm) return 0;
  const auto inputs_path = (*vm)["inputs"].as<std::string>();
  // Before the model loads: a Git LFS pointer is named as the inputs, not as weights.
  refuse_lfs_pointer_file(inputs_path, "--inputs " + inputs_path, "the input tensors");
  const int64_t batch = (*vm)["batch-size"].as<int64_t>();
  check(batch > 0, "--batch-size must be positive, got ", batch);
  const torch::Device device = distributed::run_device((*vm)["device"].as<std::string>(), nullptr);
  clip::LoadOptions load;
  load.device = device;
  load.precision = parse_precision((*vm)["precision"].as<std::string>(), device.is_cuda());
  load.model = (*vm)["model"].as<std::string>();
  auto model = clip::load_weights((*vm)["weights"].as<std::string>(), load);
  model->eval();
  auto inputs = safetensors::load(inputs_path).tensors;
  auto images = inputs.find("images");
  auto tokens = inputs.find("tokens");
  check(images != inputs.end() || tokens != inputs.end(), inputs_path,
        ": has neither `images` nor `tokens`; nothing to encode");
  torch::NoGradGuard no_grad;
  auto batched = [&](const torch::Tensor& x, auto&& fn) {
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < x.size(0); i += batch)
      parts.push_back(fn(x.narrow(0, i, std::min(batch, x.size(0) - i))).cpu());
    return parts.empty() ? torch::empty({0, model->config().embed_dim}) : torch::cat(parts);
  };
  safetensors::TensorMap out;
  if (images != inputs.end()) {
    check(images->second.dim() == 4, inputs_path, ": `images` must be [N,3,H,W], got ", images->second.sizes());
    out["image_features"] =
        batched(images->second.to(torch::kFloat), [&](const torch::Tensor& x) { return model->encode_image(x); });
  }
  if (tokens != inputs.end()) {
    check(tokens->second.dim() == 2, inputs_path, ": `tokens` must be [M,L], got ", tokens->second.sizes());
    const bool truncate = !(*vm)["no-truncate"].as<bool>();
    out["text_features"] =
        batched(tokens->second, [&](const torch::Tensor& x) { return model->encode_text(x, truncate); });
  }
  if (out.count("image_features") && out.count("text_features")) {
    out["logits_per_image"] =
        model->logits_per_image(out["image_features"].to(device), out["text_features"].to(device)).cpu();
  }
  safetensors::save((*vm)["out"].as<std::string>(), out);
  if ((*vm)["print"].as<bool>() && out.count("logits_per_image")) {
    std::vector<std::string> labels;
    if (vm->count("vocab")) {
      auto tokenizer = clip::Tokenizer::load((*vm)["vocab"].as<std::string>());
      auto t = tokens->second.to(torch::kLong).contiguous();
      for (int64_t r = 0; r < t.size(0); ++r) {
        std::vector<int64_t> ids;
        for (int64_t c = 0; c < t.size(1); ++c) {
          int64_t id = t[r][c].item<int64_t>();
          if (id == tokenizer.sot() || id == 0) continue;
          if (id == tokenizer.eot()) break;
          ids.push_back(id);
        }
        labels.push_back(tokenizer.decode(ids));
      }
    }
    print_table(out["logits_per_image"], labels);
  }
  spdlog::info("encode: wrote {} tensors to {}", out.size(), (*vm)["out"].as<std::string>());
  return 0;
}

Registration encode_command("encode", "run the CLIP towers on images/tokens from a .safetensors file", run_encode);

}  // namespace
}  // namespace starft::cli
