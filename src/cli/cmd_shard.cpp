// `starft shard --from KIND --input PATH --out DIR`: converts a dataset into a store (or one store
// per split). Under `mpirun -np K` the ranks write disjoint shards in parallel; the result does
// not depend on K.
#include <spdlog/spdlog.h>

#include <filesystem>

#include "cli/command.h"
#include "common/error.h"
#include "common/options.h"
#include "distributed/runtime.h"
#include "sharding/convert.h"
#include "sharding/shard_comm.h"
#include "sharding/sources.h"
#include "sharding/spurious_fashion.h"

namespace starft::cli {

namespace fs = std::filesystem;

// shard's decode threads were --threads, which every computing command uses for LibTorch's
// intra-op threads (distributed/runtime.h); they are --workers, as in train and eval.
// Published scripts (and ../shared/cases) still pass `shard --threads N`: it is read as --workers
// with a warning rather than refused.
static const std::vector<RenamedOption> kRenamed{
    {"threads", "workers",
     "decode threads per rank; --threads is the LibTorch threads of train, eval and cache-teacher", true}};

static int run_shard(int argc, char** argv) {
  po::options_description options("options");
  std::string kind, input, out, class_names, image_root, dataset, split;
  int image_size = 256, compression = 0, workers = 0;
  int64_t shard_size = 1024;
  options.add_options()("from", po::value(&kind)->required(),
                        "source kind: folder, csv, waterbirds, fashion-mnist or spurious-fashion (the generator of "
                        "datasets/spurious_fashion.md)")(
      "input", po::value(&input),
      "folder: directory with one sub-folder per class; csv: the tab-separated file; waterbirds: the folder "
      "holding metadata.csv; fashion-mnist, spurious-fashion: the folder of IDX files (default "
      "/usr/share/datasets/fashion-mnist)")(
      "out", po::value(&out)->required(),
      "store directory; waterbirds, fashion-mnist and spurious-fashion write one store per split into OUT/<split>")(
      "class-names", po::value(&class_names),
      "class list, one class per line: `wnid name, alias` (ImageNet's LOC_synset_mapping.txt), `id<TAB>name` or "
      "`name` (datasets/classnames/README.md); --from folder needs the ids (the folders' names)")(
      "image-root", po::value(&image_root), "csv: directory that relative file paths start from (default: the csv's)")(
      "dataset", po::value(&dataset), "dataset name recorded in the manifest (default: from the source)")(
      "split", po::value(&split),
      "folder, csv: the split name recorded (default: the input folder's name, or 'train'); waterbirds, "
      "fashion-mnist, spurious-fashion: write only this split")(
      "image-size", po::value(&image_size)->default_value(256),
      "stored image side S: shorter side resized to S (antialiased), centre crop S x S (spurious-fashion: "
      "the side images are drawn at, default 32)")("shard-size", po::value(&shard_size)->default_value(1024),
                                                   "input images per shard file")(
      "compression", po::value(&compression)->default_value(0),
      "gzip level 1-9 for the image chunks, 0 = none (see src/data/README.md: it does not pay for photos)")(
      "workers", po::value(&workers)->default_value(0), "decode threads per rank (0: cores / ranks on the node)")(
      "strict", po::bool_switch(), "stop at the first unreadable or corrupt image instead of skipping it")(
      "overwrite", po::bool_switch(), "replace the store in a non-empty --out");
  distributed::add_comm_timeout_option(options);
  sharding::SpuriousFashionConfig generator;
  const auto generator_options = sharding::spurious_fashion_options(generator);
  options.add(generator_options);
  // Every option is also an INI key of the --config files (e.g. configs/spurious_fashion.ini).
  po::options_description all;
  add_config_option(all);
  all.add(options);
  auto vm = parse(argc, argv, all,
                  "usage: starft shard --from folder|csv|waterbirds|fashion-mnist --input PATH --out DIR [options]\n"
                  "       starft shard --from spurious-fashion --config configs/spurious_fashion.ini --out DIR\n"
                  "       (under `mpirun -np K` the K ranks convert in parallel)",
                  nullptr, kRenamed);
  if (!vm) return 0;
  load_config_files(*vm, options, argv[0], kRenamed);
  if (kind == "spurious-fashion") {
    if (vm->at("image-size").defaulted()) image_size = generator.image_size;
    generator.image_size = image_size;
  } else {
    for (const auto& option : generator_options.options())
      check(vm->at(option->long_name()).defaulted(), "--", option->long_name(),
            " applies to --from spurious-fashion only");
  }
  check(image_size > 0 && image_size <= 4096, "--image-size ", image_size, " must be in 1..4096");
  check(shard_size > 0, "--shard-size ", shard_size, " must be positive");
  check(compression >= 0 && compression <= 9, "--compression ", compression, " must be in 0..9");
  check(workers >= 0, "--workers ", workers, " must be >= 0");
  const bool multi = kind == "waterbirds" || kind == "fashion-mnist" || kind == "spurious-fashion";
  if (input.empty()) {
    check(kind == "fashion-mnist" || kind == "spurious-fashion", "--input is required for --from ", kind);
    input = sharding::kFashionMnistDir;
  }
  check(class_names.empty() || kind == "folder" || kind == "csv", "--class-names applies to --from folder or csv");
  check(image_root.empty() || kind == "csv", "--image-root applies to --from csv only");

  // The distributed runtime first, as in every command: it checks the world size against Slurm's
  // task count before anything is read or written (under srun without PMIx every task would
  // start as a one-rank world and all of them would write the same shard files into --out), and
  // its watchdog ends the job when a rank stops answering. MPI backend only: the conversion has
  // no tensors for NCCL. No stop handlers: SIGTERM ends a conversion at once, as before (a
  // killed conversion leaves no manifest, and a rerun removes its leftovers).
  distributed::RuntimeOptions runtime_options = distributed::runtime_options(*vm);
  runtime_options.comm_backend = "mpi";
  runtime_options.handle_signals = false;
  distributed::ScopedRuntime runtime(runtime_options);
  auto comm = sharding::communicator_comm(runtime->mpi(), runtime->local_size());

  std::vector<sharding::Source> sources;
  if (kind == "folder") {
    fs::path dir = fs::path(input).lexically_normal();
    if (dir.filename().empty()) dir = dir.parent_path();  // "a/b/" -> "a/b"
    if (split.empty()) split = dir.filename().string();
    sources.push_back(sharding::folder_source(input, class_names, split));
  } else if (kind == "csv") {
    sources.push_back(sharding::csv_source(input, image_root, class_names, split.empty() ? "train" : split));
  } else if (kind == "waterbirds") {
    sources = sharding::waterbirds_sources(input);
  } else if (kind == "fashion-mnist") {
    sources = sharding::fashion_mnist_sources(input);
  } else if (kind == "spurious-fashion") {
    sources = sharding::spurious_fashion_sources(input, generator);
  } else {
    fail("--from '", kind, "' is not a known source (folder, csv, waterbirds, fashion-mnist, spurious-fashion)");
  }
  if (multi && !split.empty()) {
    std::vector<sharding::Source> chosen;
    std::string known;
    for (auto& s : sources) {
      known += (known.empty() ? "" : ", ") + s.layout.split;
      if (s.layout.split == split) chosen.push_back(std::move(s));
    }
    check(!chosen.empty(), "--split '", split, "' is not one of ", kind, "'s splits (", known, ")");
    sources = std::move(chosen);
  }

  for (auto& source : sources) {
    sharding::ConvertOptions opt;
    opt.layout = source.layout;
    if (!dataset.empty()) opt.layout.dataset = dataset;
    opt.layout.image_size = image_size;
    opt.layout.shard_size = shard_size;
    opt.layout.compression = compression;
    opt.out = multi ? (fs::path(out) / source.layout.split).string() : out;
    opt.overwrite = vm->at("overwrite").as<bool>();
    opt.strict = vm->at("strict").as<bool>();
    opt.workers = workers;
    if (source.items.empty()) {
      if (comm->rank() == 0)
        spdlog::warn("shard: split '{}' of {} has no images; no store written", source.layout.split, input);
      continue;
    }
    auto summary = sharding::convert(source.items, opt, *comm);
    if (comm->rank() == 0 && summary.skipped > 0) {
      spdlog::warn(
          "shard: {} image(s) could not be read and were skipped (listed under \"skipped\" in {}/manifest.json)",
          summary.skipped, opt.out);
    }
  }
  return 0;
}

static Registration shard_command("shard",
                                  "convert images (folders, csv, Waterbirds, Fashion-MNIST) into an HDF5 store",
                                  run_shard);

}  // namespace starft::cli
