// `starft cache-teacher`: precomputes the frozen zero-shot teacher's image embeddings (every
// training sample, eval view) and prompt embeddings (every class x pool template) into the
// teacher cache that `starft train --teacher cache` reads. Takes the training run's options, so
// the same --config gives a cache that fits the run.
#include <spdlog/spdlog.h>

#include <filesystem>

#include "cli/command.h"
#include "cli/train_options.h"
#include "clip/tokenizer.h"
#include "clip/weights.h"
#include "common/error.h"
#include "common/precision.h"
#include "data/store.h"
#include "distributed/device.h"
#include "distributed/runtime.h"
#include "train/config.h"
#include "data/templates.h"
#include "train/teacher_cache_build.h"

namespace starft::cli {
namespace {

int run_cache_teacher(int argc, char** argv) {
  train::TrainConfig config;
  po::options_description cache("teacher cache");
  cache.add_options()("float16", po::value<bool>()->default_value(false, "false")->implicit_value(true, "true"),
                      "store the embeddings as float16 (half the size; training reads them as float32)")(
      "cache-batch-size", po::value<int64_t>()->default_value(128), "images or texts per teacher forward, per rank")(
      "overwrite", po::value<bool>()->default_value(false, "false")->implicit_value(true, "true"),
      "replace an existing cache file");
  auto vm = parse_train_command(
      argc, argv, config, cache,
      "usage: starft cache-teacher --config configs/X.ini [--float16]   (under mpirun/srun for N ranks)\n"
      "Builds the teacher cache of a training run: takes the run's options (only weights, store, vocab,\n"
      "spurious-pool, caption-template, teacher-cache, truncate, device, precision and workers matter here)\n"
      "and writes <teacher-cache> (default <store>/teacher-cache.h5). All ranks encode their own slice.");
  if (!vm) return 0;
  check(!config.weights.empty(), "--weights is required: the zero-shot model that serves as the teacher");
  check(std::filesystem::exists(config.weights), "--weights ", config.weights, ": no such file");
  check(!config.store.empty(), "--store is required: the training store");
  check(!config.vocab.empty(), "--vocab is required: the CLIP BPE merges file");
  const int64_t batch = (*vm)["cache-batch-size"].as<int64_t>();
  check(batch > 0, "--cache-batch-size must be positive, got ", batch);
  check(config.workers >= 1, "--workers must be at least 1, got ", config.workers);
  const auto path = config.teacher_cache_path();
  check((*vm)["overwrite"].as<bool>() || !std::filesystem::exists(path), "teacher cache ", path,
        " exists already; pass --overwrite to rebuild it, or --teacher-cache for another file");
  const auto pool = data::load_templates(config.spurious_pool);
  data::Store store(config.store);
  auto tokenizer = clip::Tokenizer::load(config.vocab);

  distributed::ScopedRuntime rt(distributed::runtime_options(*vm));
  const torch::Device device = distributed::run_device(config.device, &*rt);
  clip::LoadOptions lo;
  lo.device = device;
  lo.precision = parse_precision(config.precision, device.is_cuda());
  lo.model = config.model;
  auto teacher = clip::load_weights(config.weights, lo);
  teacher->eval();
  train::CacheBuildOptions options;
  options.caption_template = config.caption_template;
  options.float16 = (*vm)["float16"].as<bool>();
  options.batch_size = batch;
  options.workers = static_cast<int>(config.workers);
  options.truncate = config.truncate;
  spdlog::info("cache-teacher: {} samples, {} classes x {} templates, {} ranks, {} -> {}", store.size(),
               store.manifest().class_names.size(), pool.size(), rt->size(), precision_name(lo.precision), path);
  train::build_teacher_cache(path, teacher, store, tokenizer, pool, options, rt->mpi());
  spdlog::info("cache-teacher: wrote {}", path);
  return 0;
}

Registration cache_teacher_command("cache-teacher", "precompute the frozen teacher's embeddings for StarFT training",
                                   run_cache_teacher);

}  // namespace
}  // namespace starft::cli
