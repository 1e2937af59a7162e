#pragma once
// The configuration of `starft train`: one struct, bound to Boost.Program_options so every field
// is a command-line option and an INI key of the same name (`--batch-size 64` = `batch-size = 64`).
// Precedence: command line, then the `--config` file(s) in order, then the defaults
// (common/options.h, the loader every command uses).
#include <boost/program_options.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/enum_names.h"
#include "common/options.h"

namespace starft::train {

// The fixed sets of TrainConfig's choices (names: EnumNames below, as on the command line).
enum class Mode { finetune, pretrain };                 // --mode
enum class Loss { flyp, ce };                           // --loss
enum class Regulariser { starft, kl, none };            // --regulariser
enum class DuplicateCaptions { negatives, positives };  // --duplicate-captions
enum class LambdaSchedule { constant, diminishing };    // --lambda-schedule
enum class TeacherSource { cache, online };             // --teacher
using starft::validate;  // Boost.Program_options reads the enums above through it (common/enum_names.h)

struct TrainConfig {
  // --- what to train, on what
  Mode mode = Mode::finetune;  // finetune (StarFT/FLYP/CE from zero-shot weights) | pretrain
  std::string weights;         // finetune: zero-shot weights = student start and teacher
  std::string model;           // pretrain: architecture name (tiny, ViT-B-16, ...) or JSON file
  std::string store;           // training store directory
  std::string vocab;           // CLIP BPE merges file
  std::string run_dir;         // checkpoints, metrics.jsonl, config.ini
  // --- loss
  Loss loss = Loss::flyp;                         // flyp | ce
  Regulariser regulariser = Regulariser::starft;  // starft | kl | none
  DuplicateCaptions duplicate_captions =
      DuplicateCaptions::negatives;  // negatives (CLIP, FLYP) | positives (UniCL's targets)
  double lambda = 0.5;
  LambdaSchedule lambda_schedule = LambdaSchedule::diminishing;  // constant | diminishing
  std::string spurious_pool = "backgrounds";                     // pool names or files, joined with ','
  std::string caption_template = "a photo of a {}.";
  std::string head_templates = "imagenet";       // ce: template set of the zero-shot head
  TeacherSource teacher = TeacherSource::cache;  // cache | online
  std::string teacher_cache;                     // default: <store>/teacher-cache.h5
  // --- optimisation
  int64_t epochs = 10;
  int64_t batch_size = 512;  // global: per-rank batch x ranks
  double lr = 1e-5;
  double min_lr = 0.0;
  int64_t warmup_steps = 500;
  double weight_decay = 0.1;
  bool exclude_gains_biases = false;  // no weight decay on 1-D parameters and logit_scale
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double grad_clip = 0.0;  // max global gradient norm; 0 = off
  bool freeze_text = false;
  bool train_logit_scale = true;
  // --- exact savings and augmentation
  bool truncate = true;
  bool dedup = true;
  bool augment = true;
  // --- runtime
  int64_t seed = 0;
  std::string device = "cpu";
  std::string precision = "fp32";  // fp32 | amp_bf16 | auto (common/precision.h)
  int64_t workers = 2;
  int64_t checkpoint_every = 0;  // steps; 0 = at epoch ends only
  int64_t keep_checkpoints = 3;
  std::string resume;      // "" | latest | checkpoint directory
  int64_t stop_after = 0;  // checkpoint and stop after this many steps in total; 0 = never
  int64_t log_every = 10;
  double bucket_mib = 25.0;
  // --- evaluation during training (train/epoch_eval.h)
  std::string eval_stores;  // `starft eval --store` specs joined with ','; "" = none
  int64_t eval_every = 1;   // epochs; also after the last epoch; 0 = never
  std::string eval_templates = "imagenet";
  std::string eval_class_names;  // "" = each store's own classes
  int64_t eval_batch_size = 64;  // global, as batch_size: ceil(B / ranks) images per forward pass per rank
  std::string best_metric;       // STORE/METRIC kept in <run-dir>/best/; "" = none

  // The run's teacher cache path (teacher_cache, or its default beside the store).
  std::string teacher_cache_path() const;
  bool pretrain() const { return mode == Mode::pretrain; }
  bool uses_regulariser() const { return !pretrain() && regulariser != Regulariser::none; }
  bool evaluates() const { return !eval_stores.empty() && eval_every > 0; }
};

// All options, bound to `config`'s fields, with help text and defaults taken from `config`.
boost::program_options::options_description train_options(TrainConfig& config);

// Former option names (command line and INI keys), refused naming the new ones:
// eval-classnames -> eval-class-names.
const std::vector<RenamedOption>& renamed_train_options();

// The whole parse without --help handling (for tests and tools): `args` are the arguments after
// the program name.
TrainConfig parse_train_args(const std::vector<std::string>& args);

// Checks everything that can be checked before any work, for a job of `world_size` ranks: files
// that must exist, names that must be known, numeric ranges, divisibility. Throws starft::Error
// naming the option and what to do. (The teacher cache fingerprint is checked by the trainer.)
void validate(const TrainConfig& config, int world_size);

// --best-metric "STORE/METRIC" as its two parts; throws naming the value when it is malformed or
// names an unknown metric.
std::pair<std::string, std::string> split_best_metric(const std::string& text);

// The effective configuration as INI text that parse_train_config reads back identically.
std::string to_ini(const TrainConfig& config);

// Parses INI text (as written by to_ini, now or before a rename: upgrade_ini) into a config;
// `where` names the source in errors.
TrainConfig from_ini(const std::string& text, const std::string& where);

// INI text written by to_ini of an earlier starft (a run's config.ini, a checkpoint's state.json)
// with the keys renamed since (renamed_train_options) given their new names, so run directories
// written before a rename still load and resume. Other lines are unchanged.
std::string upgrade_ini(const std::string& text);

}  // namespace starft::train

namespace starft {
template <>
struct EnumNames<train::Mode> {
  static constexpr const char* option = "mode";
  static constexpr std::pair<train::Mode, const char*> values[] = {{train::Mode::finetune, "finetune"},
                                                                   {train::Mode::pretrain, "pretrain"}};
};
template <>
struct EnumNames<train::Loss> {
  static constexpr const char* option = "loss";
  static constexpr std::pair<train::Loss, const char*> values[] = {{train::Loss::flyp, "flyp"},
                                                                   {train::Loss::ce, "ce"}};
};
template <>
struct EnumNames<train::Regulariser> {
  static constexpr const char* option = "regulariser";
  static constexpr std::pair<train::Regulariser, const char*> values[] = {
      {train::Regulariser::starft, "starft"}, {train::Regulariser::kl, "kl"}, {train::Regulariser::none, "none"}};
};
template <>
struct EnumNames<train::DuplicateCaptions> {
  static constexpr const char* option = "duplicate-captions";
  static constexpr std::pair<train::DuplicateCaptions, const char*> values[] = {
      {train::DuplicateCaptions::negatives, "negatives"}, {train::DuplicateCaptions::positives, "positives"}};
};
template <>
struct EnumNames<train::LambdaSchedule> {
  static constexpr const char* option = "lambda-schedule";
  static constexpr std::pair<train::LambdaSchedule, const char*> values[] = {
      {train::LambdaSchedule::constant, "constant"}, {train::LambdaSchedule::diminishing, "diminishing"}};
};
template <>
struct EnumNames<train::TeacherSource> {
  static constexpr const char* option = "teacher";
  static constexpr std::pair<train::TeacherSource, const char*> values[] = {{train::TeacherSource::cache, "cache"},
                                                                            {train::TeacherSource::online, "online"}};
};
}  // namespace starft
