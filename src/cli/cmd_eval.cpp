// `starft eval`: zero-shot evaluation of a checkpoint on a list of stores over the MPI ranks of
// the job (alone, or under mpirun / srun), optionally for several WiSE-FT mixing coefficients.
// Rank 0 writes results.json and results.md to --out and prints the Markdown table.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "clip/weights.h"
#include "common/error.h"
#include "common/precision.h"
#include "distributed/device.h"
#include "distributed/runtime.h"
#include "eval/evaluate.h"
#include "eval/report.h"
#include "eval/wise.h"
#include "train/checkpoint.h"

namespace starft::cli {
namespace {

namespace fs = std::filesystem;

// A weights file or folder (a training checkpoint directory: its weights.safetensors; a model
// folder as clip::read_weights reads it).
std::string resolve_weights(const std::string& path, const char* option) {
  check(fs::exists(path), option, " ", path, ": no such file or directory");
  if (!fs::is_directory(path)) return path;
  const auto file = train::weights_path(path);
  return fs::is_regular_file(file) ? file : path;
}

std::string row_label(const std::string& weights_arg) {
  fs::path p(weights_arg);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();
  return fs::is_directory(p) ? p.filename().string() : p.stem().string();
}

int run_eval(int argc, char** argv) {
  po::options_description opts("options");
  opts.add_options()(
      "weights", po::value<std::string>()->required(),
      "CLIP weights to evaluate: .safetensors (OpenAI/open_clip or Hugging Face naming), a model folder, a "
      "model.safetensors.index.json or a training checkpoint directory")(
      "model", po::value<std::string>()->default_value(""),
      (std::string(kModelHelp) + "; the same for --zeroshot-weights").c_str())(
      "store", po::value<std::vector<std::string>>()->required()->composing(),
      "evaluation stores, comma-separated or repeated: DIR[:key=value]... with keys name (table label), templates, "
      "class-names (a class list file, or `store` for the store's own classes), class-map, train-store")(
      "vocab", po::value<std::string>()->required(),
      "CLIP BPE merges file (bpe_simple_vocab_16e6.txt.gz) or Hugging Face vocab.json")(
      "templates", po::value<std::string>()->default_value("imagenet"),
      "zero-shot template set of the heads: a built-in name (imagenet, simple, waterbirds, fashion) or a file")(
      "class-names", po::value<std::string>(),
      "class list the heads are built from (one class per line: `name`, `id<TAB>name` or `wnid name, alias` as in "
      "LOC_synset_mapping.txt); default: each store's own classes from its manifest")(
      "class-map", po::value<std::string>(),
      "class map for stores scored against --class-names (one line per store class: "
      "`store_class<TAB>head_class[<TAB>...]`; logit = max over the head classes)")(
      "train-store", po::value<std::string>(),
      "training store whose group proportions weight avg_acc_train_weighted of group stores (Waterbirds convention)")(
      "wise-alphas", po::value<std::string>(),
      "WiSE-FT: evaluate (1-alpha)*zero-shot + alpha*fine-tuned for each alpha, e.g. 0,0.5,1 (needs --zeroshot-weights)")(
      "zeroshot-weights", po::value<std::string>(),
      "WiSE-FT: the zero-shot weights the fine-tuned --weights started from")(
      "batch-size", po::value<int64_t>()->default_value(64),
      "global batch: images per step over all ranks, as in train (each rank scores ceil(B / ranks) per forward "
      "pass); results do not depend on it")("text-batch-size", po::value<int64_t>()->default_value(256),
                                            "texts per forward pass when building the heads")(
      "workers", po::value<int>()->default_value(1), "image preprocessing threads per rank (plus one reader thread)")(
      "device", po::value<std::string>()->default_value("cpu"),
      "device to run on: cpu, cuda (each rank its local GPU) or cuda:N")(
      "precision", po::value<std::string>()->default_value("fp32"),
      (std::string("fp32, amp_bf16 (bfloat16 autocast of the towers; scores and counts stay float32/int64) or auto (") +
       auto_precision_rule() + ")")
          .c_str())("out", po::value<std::string>()->default_value("eval"),
                    "directory for results.json and results.md (rank 0)");
  po::options_description runtime("distributed runtime");
  distributed::add_runtime_options(runtime);
  opts.add(runtime);
  auto vm =
      parse(argc, argv, opts,
            "usage: starft eval --weights W --store S1,S2,... --vocab BPE [options]   (alone, or under mpirun/srun)\n"
            "Zero-shot evaluation: a head per store from the model's text tower, every rank scores its slice of\n"
            "each store, counts are summed on all ranks, rank 0 writes --out/results.{json,md} and prints the table.",
            nullptr, {{"classnames", "class-names", "", true}});
  if (!vm) return 0;

  // Everything about the request is checked before any model runs.
  const auto weights_arg = (*vm)["weights"].as<std::string>();
  const auto specs = eval::parse_eval_specs((*vm)["store"].as<std::vector<std::string>>());
  eval::EvalOptions options;
  options.templates = (*vm)["templates"].as<std::string>();
  if (vm->count("class-names")) options.class_names = (*vm)["class-names"].as<std::string>();
  if (vm->count("class-map")) options.class_map = (*vm)["class-map"].as<std::string>();
  if (vm->count("train-store")) options.train_store = (*vm)["train-store"].as<std::string>();
  options.batch_size = (*vm)["batch-size"].as<int64_t>();
  options.text_batch_size = (*vm)["text-batch-size"].as<int64_t>();
  options.workers = (*vm)["workers"].as<int>();
  std::vector<double> alphas;
  const bool wise = vm->count("wise-alphas") > 0;
  check(wise == (vm->count("zeroshot-weights") > 0),
        wise ? "--wise-alphas needs --zeroshot-weights (the zero-shot weights the fine-tuned --weights started from)"
             : "--zeroshot-weights is only used with --wise-alphas (e.g. --wise-alphas 0,0.5,1)");
  if (wise) alphas = eval::parse_alphas((*vm)["wise-alphas"].as<std::string>());
  const auto vocab = (*vm)["vocab"].as<std::string>();
  check(fs::is_regular_file(vocab), "--vocab ", vocab, ": no such file");
  const auto out = (*vm)["out"].as<std::string>();
  check(!fs::exists(out) || fs::is_directory(out), "--out ", out, ": exists and is not a directory");
  check_precision_text((*vm)["precision"].as<std::string>());
  distributed::parse_device((*vm)["device"].as<std::string>());  // throws for a bad value

  distributed::ScopedRuntime rt(distributed::runtime_options(*vm));
  const torch::Device device = distributed::run_device((*vm)["device"].as<std::string>(), &*rt);
  auto& comm = rt->comm_for(device);

  eval::Evaluator evaluator(specs, options);
  const auto tokenizer = clip::Tokenizer::load(vocab);
  const auto weights = resolve_weights(weights_arg, "--weights");
  clip::LoadOptions load;
  load.device = device;
  load.precision = parse_precision((*vm)["precision"].as<std::string>(), device.is_cuda());
  load.model = (*vm)["model"].as<std::string>();
  auto model = clip::load_weights(weights, load);

  nlohmann::json run{{"weights", weights},
                     {"vocab", vocab},
                     {"templates", options.templates},
                     {"ranks", comm.size()},
                     {"batch_size", options.batch_size},
                     {"precision", precision_name(load.precision)}};
  std::vector<eval::ReportRow> rows;
  if (!wise) {
    rows.push_back({row_label(weights_arg), weights, std::nullopt, evaluator.evaluate(model, tokenizer, comm)});
  } else {
    const auto zs_weights = resolve_weights((*vm)["zeroshot-weights"].as<std::string>(), "--zeroshot-weights");
    run["zeroshot_weights"] = zs_weights;
    run["wise_alphas"] = alphas;
    safetensors::TensorMap zeroshot;
    {
      auto zs_model = clip::load_weights(zs_weights, load);
      eval::check_same_architecture(zs_model, zs_weights, model, weights);
      zeroshot = clip::state_dict(zs_model);
    }
    // state_dict() shares storage with the model's parameters, which load_state_dict overwrites
    // for every alpha: keep a copy of the fine-tuned weights.
    safetensors::TensorMap finetuned;
    for (const auto& [name, t] : clip::state_dict(model)) finetuned[name] = t.clone();
    for (double alpha : alphas) {
      const auto label = eval::alpha_label(alpha);
      spdlog::info("eval: WiSE-FT {}", label);
      clip::load_state_dict(model, eval::interpolate(zeroshot, finetuned, alpha), label);
      rows.push_back({label, zs_weights + " + " + weights, alpha, evaluator.evaluate(model, tokenizer, comm)});
    }
  }
  if (comm.rank() == 0) {
    const auto md = eval::write_report(out, rows, run);
    std::cout << md << std::flush;
    spdlog::info("eval: wrote {}/results.json and {}/results.md", out, out);
  }
  return 0;
}

Registration eval_command("eval",
                          "zero-shot evaluation on stores over the ranks of the job (groups, class maps, WiSE-FT)",
                          run_eval);

}  // namespace
}  // namespace starft::cli
