#pragma once
// Evaluation during training: at the end of every --eval-every'th epoch (and of the last) the
// trainer scores the model on --eval-stores with eval::Evaluator, the same code as `starft eval`,
// distributed over the ranks. Rank 0
//   - logs one line per store (top-1, and worst-group / average accuracy for stores with groups),
//   - appends {"step", "epoch", "results": <EvalResults json>} to <run-dir>/eval.jsonl,
//   - with --best-metric STORE/METRIC, writes <run-dir>/best/ (train/checkpoint.h) whenever the
//     metric beats the best value so far (higher is better; the first evaluation always counts).
// The stores, heads, class maps and the metric's store are all checked at construction, before
// any training. On --resume the best value so far is read back from best/best.json.
#include <torch/torch.h>

#include <cstdint>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "clip/model.h"
#include "clip/safetensors.h"
#include "clip/tokenizer.h"
#include "distributed/communicator.h"
#include "eval/evaluate.h"
#include "train/config.h"

namespace starft::train {

class EpochEval {
 public:
  // Opens and checks the evaluation stores; reads best/best.json when resuming. Throws
  // starft::Error naming the option on a bad request. Writes nothing.
  EpochEval(const TrainConfig& config, int rank, bool resuming);

  // Whether the end of `epoch` (0-based) is an evaluation point.
  bool due(int64_t epoch) const;

  struct Outcome {
    eval::EvalResults results;
    std::optional<double> value;  // the --best-metric value of this evaluation
    bool new_best = false;        // best/ was rewritten
  };
  // Evaluates `model` (collective over `comm`), then reports and keeps the best on rank 0 (see
  // above); `head` is the CE head saved beside the best weights (empty without one).
  Outcome run(clip::CLIP& model, const clip::Tokenizer& tokenizer, distributed::Communicator& comm, int64_t step,
              int64_t epoch, const safetensors::TensorMap& head);

  std::optional<double> best_value() const { return best_value_; }

 private:
  std::string run_dir_;
  int64_t every_ = 0, epochs_ = 0;
  int rank_;
  std::unique_ptr<eval::Evaluator> evaluator_;
  std::string best_name_, best_store_, best_metric_;  // --best-metric, and its two parts
  std::optional<double> best_value_;
  std::ofstream log_;
};

}  // namespace starft::train
