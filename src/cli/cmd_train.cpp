// `starft train`: fine-tunes (StarFT / FLYP / CE) or pre-trains a CLIP model over the MPI ranks
// of the job. Every option is also an INI key of `--config` files (configs/*.ini).
#include <spdlog/spdlog.h>

#include "cli/command.h"
#include "cli/train_options.h"
#include "common/error.h"
#include "distributed/device.h"
#include "distributed/runtime.h"
#include "train/config.h"
#include "train/trainer.h"

namespace starft::cli {
namespace {

int run_train(int argc, char** argv) {
  train::TrainConfig config;
  auto vm = parse_train_command(
      argc, argv, config, po::options_description(),
      "usage: starft train --config configs/X.ini [--key value ...]   (under mpirun/srun for N ranks)\n"
      "Fine-tunes CLIP with FLYP + the StarFT regulariser from zero-shot --weights (mode finetune), or\n"
      "pre-trains one from random initialisation with the contrastive loss on the store's captions\n"
      "(mode pretrain). Every option below is also an INI key: `batch-size = 512`.");
  if (!vm) return 0;
  distributed::ScopedRuntime rt(distributed::runtime_options(*vm));
  const torch::Device device = distributed::run_device(config.device, &*rt);
  train::Trainer trainer(config, rt->comm_for(device), device);
  trainer.run();
  return 0;
}

Registration train_command("train", "fine-tune CLIP with StarFT (or pre-train one) over the MPI ranks of the job",
                           run_train);

}  // namespace
}  // namespace starft::cli
