#include "train/epoch_eval.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <tuple>

#include "common/error.h"
#include "train/checkpoint.h"

namespace starft::train {

namespace fs = std::filesystem;

namespace {

std::string percent(std::optional<double> v) {
  if (!v || std::isnan(*v)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * *v);
  return buf;
}

}  // namespace

EpochEval::EpochEval(const TrainConfig& config, int rank, bool resuming)
    : run_dir_(config.run_dir), every_(config.eval_every), epochs_(config.epochs), rank_(rank) {
  eval::EvalOptions options;
  options.templates = config.eval_templates;
  options.class_names = config.eval_class_names;
  options.batch_size = config.eval_batch_size;
  options.workers = static_cast<int>(config.workers);
  try {
    evaluator_ = std::make_unique<eval::Evaluator>(eval::parse_eval_specs({config.eval_stores}), options);
  } catch (const Error& e) {
    // The evaluator words its errors as `starft eval` options (--store, --batch-size, ...).
    fail("evaluation during training (--eval-stores, --eval-templates, --eval-class-names, --eval-batch-size): ",
         e.what());
  }
  if (!config.best_metric.empty()) {
    best_name_ = config.best_metric;
    std::tie(best_store_, best_metric_) = split_best_metric(best_name_);
    const auto& names = evaluator_->names();
    if (std::find(names.begin(), names.end(), best_store_) == names.end()) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      fail("--best-metric ", config.best_metric, ": no evaluation store is named '", best_store_,
           "'; the --eval-stores are named ", list, " (set a name with DIR:name=NAME)");
    }
    if (resuming) {
      if (auto record = read_best(run_dir_)) {
        check(record->value("metric", "") == best_name_, best_dir(run_dir_), "/best.json records the best by ",
              record->value("metric", "?"), ", not --best-metric ", best_name_,
              "; resume with the run's metric or move best/ away");
        if (record->contains("value") && (*record)["value"].is_number()) best_value_ = (*record)["value"].get<double>();
      }
    }
  }
}

bool EpochEval::due(int64_t epoch) const { return every_ > 0 && ((epoch + 1) % every_ == 0 || epoch + 1 == epochs_); }

EpochEval::Outcome EpochEval::run(clip::CLIP& model, const clip::Tokenizer& tokenizer, distributed::Communicator& comm,
                                  int64_t step, int64_t epoch, const safetensors::TensorMap& head) {
  Outcome out;
  out.results = evaluator_->evaluate(model, tokenizer, comm);  // restores the model's mode
  if (!best_store_.empty()) {
    const double v = out.results.metric(best_store_, best_metric_);
    if (!std::isnan(v)) out.value = v;
    out.new_best = out.value && (!best_value_ || *out.value > *best_value_);
  }
  if (out.new_best) best_value_ = out.value;
  if (rank_ == 0) {
    // eval::Evaluator has logged each store's figures. The log is opened here, not at start-up,
    // so a run refused later in its set-up leaves no file behind.
    if (!log_.is_open()) {
      fs::create_directories(run_dir_);
      log_.open(fs::path(run_dir_) / "eval.jsonl", std::ios::app);
      check(static_cast<bool>(log_), "cannot write ", (fs::path(run_dir_) / "eval.jsonl").string(),
            "; check the permissions of --run-dir");
    }
    nlohmann::json line = {{"step", step}, {"epoch", epoch}, {"results", out.results.to_json()}};
    if (out.value) line["best_metric"] = {{"name", best_name_}, {"value", *out.value}};
    log_ << line.dump() << "\n";
    log_.flush();
    if (out.new_best) {
      nlohmann::json record = {{"metric", best_name_}, {"value", *out.value}, {"step", step}, {"epoch", epoch}};
      const auto dir = write_best(run_dir_, model, head, record);
      spdlog::info("eval after epoch {} (step {}): {} = {}, the best so far: weights kept in {}", epoch + 1, step,
                   best_name_, percent(out.value), dir);
    } else if (out.value) {
      spdlog::info("eval after epoch {} (step {}): {} = {}, best so far {}", epoch + 1, step, best_name_,
                   percent(out.value), percent(best_value_));
    } else {
      spdlog::info("eval after epoch {} (step {}): results appended to {}/eval.jsonl", epoch + 1, step, run_dir_);
    }
  }
  comm.barrier("epoch_eval_written");
  return out;
}

}  // namespace starft::train
