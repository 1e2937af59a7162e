#include "train/config.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "clip/architecture.h"
#include "clip/model.h"
#include "common/error.h"
#include "common/options.h"
#include "common/precision.h"
#include "data/manifest.h"
#include "data/templates.h"
#include "distributed/device.h"

namespace starft::train {

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace {

std::string format_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  // Prefer the shortest text that reads back to the same double.
  for (int precision = 1; precision <= 17; ++precision) {
    char shorter[64];
    std::snprintf(shorter, sizeof shorter, "%.*g", precision, v);
    if (std::strtod(shorter, nullptr) == v) return shorter;
  }
  return buf;
}

// The one list of fields: options_description, to_ini and the section headings all come from it.
template <typename Visitor>
void visit_fields(TrainConfig& c, Visitor& v) {
  v.section("what to train");
  v.field("mode", c.mode,
          "finetune: StarFT/FLYP/CE from zero-shot --weights; pretrain: contrastive "
          "loss on the store's captions from a random --model");
  v.field("weights", c.weights,
          "zero-shot CLIP weights (.safetensors, OpenAI or Hugging Face naming): "
          "the student's start and the frozen teacher (finetune)");
  v.field("model", c.model,
          "the architecture: finetune: of --weights (needed when no configuration came with "
          "them and they are not OpenAI's); pretrain: of the random model. An open_clip model name "
          "(ViT-B-16, ViT-B-16-quickgelu, ViT-B-32, ViT-L-14, ViT-L-14-336, ViT-H-14, ViT-g-14, "
          "ViT-bigG-14, ...; tiny) or a model-config JSON file (open_clip's, Hugging Face's "
          "config.json, or starft's CLIPConfig keys)");
  v.field("store", c.store, "training store directory (manifest.json + shard-*.h5)");
  v.field("vocab", c.vocab, "CLIP BPE merges file (bpe_simple_vocab_16e6.txt.gz) or Hugging Face vocab.json");
  v.field("run-dir", c.run_dir, "run directory: config.ini, metrics.jsonl, checkpoints/");
  v.section("loss");
  v.field("loss", c.loss, "base loss: flyp (contrastive on captions) or ce (cross-entropy, zero-shot head)");
  v.field("regulariser", c.regulariser, "starft (masked, default), kl (unmasked variant) or none");
  v.field("duplicate-captions", c.duplicate_captions,
          "flyp: samples of the global batch with the same caption are negatives of each other (CLIP's "
          "and FLYP's loss) or positives (UniCL's multi-positive targets; for stores with few distinct "
          "captions)");
  v.field("lambda", c.lambda, "regulariser weight lambda (>= 0)");
  v.field("lambda-schedule", c.lambda_schedule, "constant, or diminishing: lambda * (1 - (epoch + 1) / epochs)");
  v.field("spurious-pool", c.spurious_pool,
          "spurious prompt pool(s): built-in names (backgrounds, textures, quality) or template files, "
          "several joined with ','");
  v.field("caption-template", c.caption_template, "caption of a class; {} is the class name");
  v.field("head-templates", c.head_templates, "ce: template set the zero-shot head is built from");
  v.field("teacher", c.teacher,
          "cache (precomputed by `starft cache-teacher`) or online (frozen model run "
          "on every augmented batch, as the reference code does)");
  v.field("teacher-cache", c.teacher_cache, "teacher cache file (default: <store>/teacher-cache.h5)");
  v.section("optimisation");
  v.field("epochs", c.epochs, "epochs over the store");
  v.field("batch-size", c.batch_size, "global batch size (divided evenly over the ranks)");
  v.field("lr", c.lr, "peak learning rate");
  v.field("min-lr", c.min_lr, "learning rate at the end of the cosine decay");
  v.field("warmup-steps", c.warmup_steps, "linear warm-up steps: lr * (step + 1) / warmup");
  v.field("weight-decay", c.weight_decay, "AdamW weight decay");
  v.field("exclude-gains-biases", c.exclude_gains_biases,
          "no weight decay on gains, biases (1-D parameters) and logit_scale");
  v.field("beta1", c.beta1, "AdamW beta1");
  v.field("beta2", c.beta2, "AdamW beta2");
  v.field("eps", c.eps, "AdamW epsilon");
  v.field("grad-clip", c.grad_clip, "clip the global gradient norm to this value; 0 = off");
  v.field("freeze-text", c.freeze_text, "keep the text tower frozen");
  v.field("train-logit-scale", c.train_logit_scale, "train the logit scale");
  v.section("exact savings and augmentation");
  v.field("truncate", c.truncate, "run the text tower only up to the longest end token (exact)");
  v.field("dedup", c.dedup, "encode identical captions/prompts of a batch once (exact)");
  v.field("augment", c.augment, "train augmentation (RandomResizedCrop); false = the deterministic eval view");
  v.section("runtime");
  v.field("seed", c.seed, "seed of sampling, augmentation, prompt draws and (pretrain) initialisation");
  v.field("device", c.device, "cpu, cuda or cuda:N (each rank uses its local GPU for cuda)");
  v.field("precision", c.precision,
          (std::string("fp32, amp_bf16 (bfloat16 autocast of the forward passes; weights, optimizer, gradients and "
                       "losses stay float32) or auto (") +
           auto_precision_rule() + ")")
              .c_str());
  v.field("workers", c.workers, "augmentation threads per rank");
  v.field("checkpoint-every", c.checkpoint_every,
          "checkpoint every N steps (and at each epoch end); 0 = epoch ends only");
  v.field("keep-checkpoints", c.keep_checkpoints, "keep the last K checkpoints");
  v.field("resume", c.resume,
          "continue from a checkpoint directory, or `latest` in the run directory "
          "(starts fresh when there is none)");
  v.field("stop-after", c.stop_after, "checkpoint and stop after this many steps in total; 0 = run to the end");
  v.field("log-every", c.log_every, "progress line every N steps");
  v.field("bucket-mib", c.bucket_mib, "gradient all-reduce bucket size in MiB");
  v.section("evaluation during training");
  v.field("eval-stores", c.eval_stores,
          "stores scored with zero-shot heads from the model's text tower at epoch ends, in `starft eval "
          "--store` syntax: DIR[:name=N][:templates=T][:class-names=F|store][:class-map=F][:train-store=D], "
          "several joined with ','; results go to <run-dir>/eval.jsonl");
  v.field("eval-every", c.eval_every, "evaluate every N epochs and after the last; 0 = never");
  v.field("eval-templates", c.eval_templates, "default template set of the evaluation heads (built-in name or file)");
  v.field("eval-class-names", c.eval_class_names,
          "default class list file of the evaluation heads; "
          "empty = each store's own classes");
  v.field("eval-batch-size", c.eval_batch_size,
          "global batch when evaluating, as --batch-size: each rank scores ceil(B / ranks) images per forward pass");
  v.field("best-metric", c.best_metric,
          "keep the weights of the best evaluation so far in <run-dir>/best/, by STORE/METRIC (higher is "
          "better), e.g. group-val/worst_group_acc or val/top1; metrics: top1, worst_group_acc, avg_acc, "
          "avg_acc_train_weighted");
}

struct OptionsBuilder {
  po::options_description all{"options (also INI keys: `key = value`)"};
  std::optional<po::options_description> current;
  std::string current_name;
  void flush() {
    if (current) all.add(*current);
  }
  void section(const std::string& name) {
    flush();
    current.emplace(name);
  }
  void field(const char* name, std::string& v, const char* help) {
    current->add_options()(name, po::value(&v)->default_value(v), help);
  }
  void field(const char* name, int64_t& v, const char* help) {
    current->add_options()(name, po::value(&v)->default_value(v), help);
  }
  void field(const char* name, double& v, const char* help) {
    current->add_options()(name, po::value(&v)->default_value(v, format_double(v)), help);
  }
  void field(const char* name, bool& v, const char* help) {
    current->add_options()(name, po::value(&v)->default_value(v, v ? "true" : "false")->implicit_value(true, "true"),
                           help);
  }
  template <typename E, typename = std::enable_if_t<is_named_enum<E>::value>>
  void field(const char* name, E& v, const char* help) {
    current->add_options()(name, po::value(&v)->default_value(v, enum_name(v)), help);
  }
};

struct IniWriter {
  std::ostringstream os;
  void section(const std::string& name) { os << "\n# " << name << "\n"; }
  void field(const char* name, const std::string& v, const char*) { os << name << " = " << v << "\n"; }
  void field(const char* name, int64_t v, const char*) { os << name << " = " << v << "\n"; }
  void field(const char* name, double v, const char*) { os << name << " = " << format_double(v) << "\n"; }
  void field(const char* name, bool v, const char*) { os << name << " = " << (v ? "true" : "false") << "\n"; }
  template <typename E, typename = std::enable_if_t<is_named_enum<E>::value>>
  void field(const char* name, E v, const char*) {
    os << name << " = " << enum_name(v) << "\n";
  }
};

}  // namespace

std::string TrainConfig::teacher_cache_path() const {
  if (!teacher_cache.empty()) return teacher_cache;
  return (fs::path(store) / "teacher-cache.h5").string();
}

const std::vector<RenamedOption>& renamed_train_options() {
  static const std::vector<RenamedOption> renamed{{"eval-classnames", "eval-class-names", ""}};
  return renamed;
}

po::options_description train_options(TrainConfig& config) {
  OptionsBuilder b;
  visit_fields(config, b);
  b.flush();
  return b.all;
}

TrainConfig parse_train_args(const std::vector<std::string>& args) {
  TrainConfig config;
  auto fields = train_options(config);
  po::options_description all;
  add_config_option(all);
  all.add(fields);
  all.add(renamed_options(renamed_train_options()));
  std::vector<const char*> argv{"starft train"};
  for (const auto& a : args) argv.push_back(a.c_str());
  po::variables_map vm;
  try {
    auto parsed =
        po::command_line_parser(static_cast<int>(argv.size()), const_cast<char**>(argv.data())).options(all).run();
    refuse_renamed(parsed, renamed_train_options());
    po::store(parsed, vm);
  } catch (const po::error& e) {
    fail("starft train: ", e.what(), " (see `starft train --help`)");
  }
  load_config_files(vm, fields, "starft train", renamed_train_options());
  return config;
}

std::string to_ini(const TrainConfig& config) {
  IniWriter w;
  w.os << "# starft train: effective configuration (command line > config files > defaults)\n";
  TrainConfig copy = config;
  visit_fields(copy, w);
  return w.os.str();
}

std::string upgrade_ini(const std::string& text) {
  std::istringstream in(text);
  std::string out, line;
  while (std::getline(in, line)) {
    for (const auto& r : renamed_train_options()) {
      const auto rest = line.find_first_not_of(' ', r.old_name.size());
      if (line.rfind(r.old_name, 0) == 0 && rest != std::string::npos && line[rest] == '=') {
        line = r.new_name + line.substr(r.old_name.size());
      }
    }
    out += line + "\n";
  }
  if (!text.empty() && text.back() != '\n') out.pop_back();
  return out;
}

TrainConfig from_ini(const std::string& text, const std::string& where) {
  TrainConfig config;
  auto desc = train_options(config);
  po::variables_map vm;
  std::istringstream in(upgrade_ini(text));
  try {
    po::store(po::parse_config_file(in, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    fail(where, ": ", e.what());
  }
  return config;
}

std::pair<std::string, std::string> split_best_metric(const std::string& text) {
  static const char* const kMetrics[] = {"top1", "worst_group_acc", "avg_acc", "avg_acc_train_weighted"};
  const auto slash = text.rfind('/');
  check(slash != std::string::npos && slash > 0 && slash + 1 < text.size(), "--best-metric '", text,
        "' is not STORE/METRIC (e.g. group-val/worst_group_acc): STORE is an evaluation store's name");
  const std::string store = text.substr(0, slash), metric = text.substr(slash + 1);
  bool known = false;
  for (const char* m : kMetrics) known = known || metric == m;
  check(known, "--best-metric '", text, "': unknown metric '", metric,
        "'; choose top1, worst_group_acc, avg_acc or avg_acc_train_weighted");
  return {store, metric};
}

void validate(const TrainConfig& c, int world_size) {
  check_precision_text(c.precision, "--precision");

  check(!c.run_dir.empty(), "--run-dir is required: where checkpoints, metrics and config.ini go");
  check(!c.store.empty(), "--store is required: the training store directory (see `starft shard`)");
  check(fs::exists(fs::path(c.store) / data::kManifestName), "--store ", c.store, ": no ", data::kManifestName,
        " there; give a store written by `starft shard` (a store without a manifest is incomplete)");
  const auto manifest = data::Manifest::read(c.store);
  check(manifest.count() > 0, "--store ", c.store, ": the store has no samples");
  check(!c.vocab.empty(), "--vocab is required: the CLIP BPE merges file (bpe_simple_vocab_16e6.txt.gz)");
  check(fs::exists(c.vocab), "--vocab ", c.vocab, ": no such file");

  if (c.pretrain()) {
    check(c.weights.empty(),
          "--weights is for finetune mode; pretrain starts from random initialisation "
          "of --model (drop one of them)");
    check(!c.model.empty(),
          "--model is required in pretrain mode: an architecture name (tiny, ViT-B-16, ...) "
          "or a JSON config file");
    clip::model_config(c.model);  // throws for an unknown name or a bad file
    check(manifest.has_captions, "--store ", c.store,
          ": pretrain mode needs per-image captions but the store "
          "has none (has_captions is false in its manifest)");
    check(c.loss == Loss::flyp, "--loss ", enum_name(c.loss), ": pretrain mode uses the contrastive loss (flyp) only");
  } else {
    check(!c.weights.empty(), "--weights is required in finetune mode: the zero-shot CLIP weights");
    check(fs::exists(c.weights), "--weights ", c.weights, ": no such file");
    if (!c.model.empty()) clip::model_config(c.model);  // throws for an unknown name or a bad file
    check(!manifest.class_names.empty(), "--store ", c.store, ": the manifest lists no class names");
    check(c.caption_template.find("{}") != std::string::npos, "--caption-template '", c.caption_template,
          "' has no {} where the class name goes");
    if (c.uses_regulariser()) data::load_templates(c.spurious_pool);  // throws for an unknown pool or a bad file
  }

  check(c.epochs >= 1, "--epochs must be at least 1, got ", c.epochs);
  check(c.batch_size >= 1, "--batch-size must be at least 1, got ", c.batch_size);
  check(world_size >= 1 && c.batch_size % world_size == 0, "--batch-size ", c.batch_size, " is not divisible by the ",
        world_size,
        " ranks of this job; the global batch is split evenly, "
        "so choose a multiple of ",
        world_size);
  check(c.batch_size / world_size <= manifest.count(), "--batch-size ", c.batch_size, ": the per-rank batch (",
        c.batch_size / world_size, ") is larger than the store (", manifest.count(), " samples)");
  auto finite_nonneg = [](const char* key, double v) {
    check(std::isfinite(v) && v >= 0, "--", key, " must be a finite number >= 0, got ", v);
  };
  finite_nonneg("lr", c.lr);
  check(c.lr > 0, "--lr must be positive, got ", c.lr);
  finite_nonneg("min-lr", c.min_lr);
  check(c.min_lr <= c.lr, "--min-lr ", c.min_lr, " is above --lr ", c.lr);
  finite_nonneg("lambda", c.lambda);
  finite_nonneg("weight-decay", c.weight_decay);
  finite_nonneg("grad-clip", c.grad_clip);
  finite_nonneg("bucket-mib", c.bucket_mib);
  check(c.bucket_mib > 0, "--bucket-mib must be positive, got ", c.bucket_mib);
  check(c.warmup_steps >= 0, "--warmup-steps must be >= 0, got ", c.warmup_steps);
  check(c.beta1 >= 0 && c.beta1 < 1, "--beta1 must be in [0, 1), got ", c.beta1);
  check(c.beta2 >= 0 && c.beta2 < 1, "--beta2 must be in [0, 1), got ", c.beta2);
  check(std::isfinite(c.eps) && c.eps > 0, "--eps must be positive, got ", c.eps);
  check(c.workers >= 1, "--workers must be at least 1, got ", c.workers);
  check(c.checkpoint_every >= 0, "--checkpoint-every must be >= 0 (0 = epoch ends only), got ", c.checkpoint_every);
  check(c.keep_checkpoints >= 1, "--keep-checkpoints must be at least 1, got ", c.keep_checkpoints);
  check(c.stop_after >= 0, "--stop-after must be >= 0 (0 = never), got ", c.stop_after);
  check(c.log_every >= 1, "--log-every must be at least 1, got ", c.log_every);
  check(c.seed >= 0, "--seed must be >= 0, got ", c.seed);
  check(c.eval_every >= 0, "--eval-every must be >= 0 (0 = never), got ", c.eval_every);
  check(c.eval_batch_size >= 1, "--eval-batch-size must be at least 1, got ", c.eval_batch_size);
  if (!c.best_metric.empty()) {
    check(c.evaluates(), "--best-metric ", c.best_metric,
          " needs evaluation during training: give --eval-stores "
          "(and --eval-every >= 1)");
    split_best_metric(c.best_metric);  // throws for a malformed value
  }
  distributed::parse_device(c.device);  // throws for a bad value
  if (!c.resume.empty() && c.resume != "latest") {
    check(fs::is_directory(c.resume), "--resume ", c.resume,
          ": no such checkpoint directory (give one under <run-dir>/checkpoints, or `latest`)");
  }
}

}  // namespace starft::train
