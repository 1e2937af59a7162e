// `starft export`: a model's weights alone, for use in other tools: the weights of a training
// checkpoint (or any weights starft reads), as starft's .safetensors (OpenAI naming, the default),
// a Hugging Face model folder (transformers' CLIPModel.from_pretrained) or an open_clip model folder.
#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "clip/weights.h"
#include "common/error.h"
#include "train/checkpoint.h"

namespace starft::cli {
namespace {

int run_export(int argc, char** argv) {
  po::options_description opts("options");
  opts.add_options()("checkpoint", po::value<std::string>()->default_value("latest"),
                     "checkpoint directory, or `latest` (the newest in --run-dir)")(
      "run-dir", po::value<std::string>(), "run directory of `starft train`, to resolve `latest`")(
      "weights", po::value<std::string>(),
      "instead of a checkpoint: any CLIP weights starft reads (a .safetensors file, a model folder, an index), "
      "to convert them")("model", po::value<std::string>()->default_value(""), kModelHelp)(
      "format", po::value<std::string>()->default_value("starft"),
      "starft: one .safetensors file (OpenAI naming, float32, starft's config in the metadata); hf: a Hugging Face "
      "model folder (model.safetensors, config.json, preprocessor_config.json) for "
      "transformers.CLIPModel.from_pretrained; open_clip: an open_clip model folder (open_clip_model.safetensors, "
      "open_clip_config.json)")("out", po::value<std::string>()->required(),
                                "output: the .safetensors file (--format starft) or the folder (hf, open_clip)");
  auto vm =
      parse(argc, argv, opts,
            "usage: starft export --run-dir RUN [--checkpoint latest|DIR] [--format starft|hf|open_clip] --out OUT\n"
            "       starft export --weights W [--model M] --format hf|open_clip|starft --out OUT\n"
            "Writes a model's weights alone (no optimizer state), float32, with its architecture recorded.");
  if (!vm) return 0;
  const auto format = (*vm)["format"].as<std::string>();
  check(format == "starft" || format == "hf" || format == "open_clip", "--format ", format,
        ": expected starft, hf or open_clip");
  std::string from;
  safetensors::Metadata metadata;
  clip::LoadOptions load;
  load.model = (*vm)["model"].as<std::string>();
  if (vm->count("weights")) {
    check(vm->count("run-dir") == 0 && (*vm)["checkpoint"].defaulted(),
          "--weights exports those weights; drop --run-dir / --checkpoint (or drop --weights to export a checkpoint)");
    from = (*vm)["weights"].as<std::string>();
    metadata["starft.exported_from"] = from;
  } else {
    const auto spec = (*vm)["checkpoint"].as<std::string>();
    check(spec != "latest" || vm->count("run-dir"), "--checkpoint latest needs --run-dir (the run to look in)");
    const auto run_dir = vm->count("run-dir") ? (*vm)["run-dir"].as<std::string>() : std::string();
    const auto dir = train::resolve_checkpoint(spec, run_dir);
    check(dir.has_value(), "--run-dir ", run_dir, ": no checkpoint there yet (", train::checkpoints_dir(run_dir),
          " holds no complete step-* directory)");
    const auto state = train::read_train_state(*dir);
    from = train::weights_path(*dir);
    metadata["starft.step"] = std::to_string(state.step);
    metadata["starft.checkpoint"] = *dir;
  }
  auto model = clip::load_weights(from, load);
  const auto out = (*vm)["out"].as<std::string>();
  if (format == "hf") {
    clip::save_hf_folder(model, out, metadata);
  } else if (format == "open_clip") {
    clip::save_open_clip_folder(model, out, metadata);
  } else {
    clip::save_weights(model, out, metadata);
  }
  spdlog::info("export: wrote the weights of {} to {} ({} format)", from, out, format);
  return 0;
}

Registration export_command(
    "export", "write a model's weights alone: starft's .safetensors, or a Hugging Face / open_clip folder", run_export);

}  // namespace
}  // namespace starft::cli
