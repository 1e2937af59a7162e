// `starft export`: the fine-tuned weights of a checkpoint alone, in the OpenAI naming, for use in
// other tools (open_clip, the OpenAI loader, Hugging Face conversion scripts).
#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "clip/weights.h"
#include "common/error.h"
#include "train/checkpoint.h"

namespace starft::cli {
namespace {

int run_export(int argc, char** argv) {
  po::options_description opts("options");
  opts.add_options()
      ("checkpoint", po::value<std::string>()->default_value("latest"),
       "checkpoint directory, or `latest` (the newest in --run-dir)")
      ("run-dir", po::value<std::string>(), "run directory of `starft train`, to resolve `latest`")
      ("out", po::value<std::string>()->required(), "output .safetensors (OpenAI naming, float32)");
  auto vm = parse(argc, argv, opts,
                  "usage: starft export --run-dir RUN [--checkpoint latest|DIR] --out W.safetensors\n"
                  "Writes a checkpoint's model weights alone (no optimizer state), OpenAI naming, float32.");
  if (!vm) return 0;
  const auto spec = (*vm)["checkpoint"].as<std::string>();
  check(spec != "latest" || vm->count("run-dir"), "--checkpoint latest needs --run-dir (the run to look in)");
  const auto run_dir = vm->count("run-dir") ? (*vm)["run-dir"].as<std::string>() : std::string();
  const auto dir = train::resolve_checkpoint(spec, run_dir);
  check(dir.has_value(), "--run-dir ", run_dir, ": no checkpoint there yet (", train::checkpoints_dir(run_dir),
        " holds no complete step-* directory)");
  const auto state = train::read_train_state(*dir);
  auto model = clip::load_weights(train::weights_path(*dir));
  const auto out = (*vm)["out"].as<std::string>();
  clip::save_weights(model, out, {{"starft.step", std::to_string(state.step)}, {"starft.checkpoint", *dir}});
  spdlog::info("export: wrote the weights of {} (step {}) to {}", *dir, state.step, out);
  return 0;
}

Registration reg("export", "write a checkpoint's fine-tuned weights alone (.safetensors, OpenAI naming)", run_export);

}  // namespace
}  // namespace starft::cli
