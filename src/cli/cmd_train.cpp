// `starft train`: fine-tunes (StarFT / FLYP / CE) or pre-trains a CLIP model over the MPI ranks
// of the job. Every option is also an INI key of `--config` files (configs/*.ini).
#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "common/error.h"
#include "dist/runtime.h"
#include "train/config.h"
#include "train/trainer.h"

namespace starft::cli {
namespace {

int run_train(int argc, char** argv) {
  train::TrainConfig config;
  auto fields = train::train_options(config);
  po::options_description runtime("distributed runtime");
  dist::add_runtime_options(runtime);
  fields.add(runtime);
  po::options_description all;
  train::add_config_option(all);
  all.add(fields);
  auto vm = parse(argc, argv, all,
                  "usage: starft train --config configs/X.ini [--key value ...]   (under mpirun/srun for N ranks)\n"
                  "Fine-tunes CLIP with FLYP + the StarFT regulariser from zero-shot --weights (mode finetune), or\n"
                  "pre-trains one from random initialisation with the contrastive loss on the store's captions\n"
                  "(mode pretrain). Every option below is also an INI key: `batch-size = 512`.");
  if (!vm) return 0;
  train::load_config_files(*vm, fields);
  dist::ScopedRuntime rt(dist::runtime_options(*vm));
  torch::Device device(torch::kCPU);
  if (config.device != "cpu") {
    check(rt->device().is_cuda(), "--device ", config.device, ": this rank has no CUDA device (LibTorch ",
          torch::cuda::is_available() ? "sees one but the runtime chose the CPU" : "was built without CUDA or sees no GPU",
          "); use --device cpu");
    device = config.device == "cuda" ? rt->device() : torch::Device(config.device);
  }
  train::Trainer trainer(config, rt->comm_for(device), device);
  trainer.run();
  return 0;
}

Registration reg("train", "fine-tune CLIP with StarFT (or pre-train one) over the MPI ranks of the job", run_train);

}  // namespace
}  // namespace starft::cli
