#pragma once
// The StarFT training loop, data-parallel over the ranks of a communicator.
//
// Per step, on each rank: its slice of the global batch -> student image features; captions
// c_i (class captions, or the store's captions in pre-training) and spurious prompts
// p_i = apply_template(draw_template(...), c_i) -> student text features (deduplicated,
// truncated); features all-gathered with gradient; loss = flyp_loss (or ce_loss)
// + lambda_e * starft_regulariser (teacher from the cache, or the frozen model online);
// backward with gradient buckets all-reduced as they fill; optional clipping; AdamW; schedule.
// Rank 0 logs progress, appends metrics.jsonl and writes checkpoints.
#include <torch/torch.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "clip/model.h"
#include "clip/tokenizer.h"
#include "data/loader.h"
#include "data/store.h"
#include "distributed/communicator.h"
#include "distributed/grad_sync.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/epoch_eval.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/teacher_cache.h"
#include "train/text_encoder.h"

namespace starft::train {

// One step's loss and its parts (this rank's share; see losses.h).
struct StepLoss {
  torch::Tensor loss;         // L_c + lambda_e * R, with gradient
  torch::Tensor contrastive;  // L_c (detached)
  torch::Tensor regulariser;  // R (detached; 0 without a regulariser)
  double lambda = 0;
};

// Averages over ranks of one optimizer step.
struct StepMetrics {
  double loss = 0, contrastive = 0, regulariser = 0, lambda = 0, lr = 0;
};

// Where one optimizer step's wall time went on this rank, in seconds (std::chrono::steady_clock).
// step runs from the end of the previous step (or the run's start, or the end of a checkpoint or
// an evaluation) to the end of this step's optimizer update; the parts are measured separately
// and add up to it but for a few unmeasured statements (microseconds):
//   data          waiting for the loader's batch (and starting the epoch's loader);
//   forward       the loss, without its blocking collectives (feature all-gathers);
//   backward      loss.backward(), while gradient buckets are all-reduced beside it (this
//                 includes the backward of the all-gathered features, an all-reduce inside autograd);
//   comm_exposed  communication not hidden behind computation: the wait for the gradient
//                 buckets after backward, the forward's all-gathers, the loss all-reduce and the
//                 collectives between steps (stop check, step-time exchange);
//   optimizer     zero_grad, clipping, AdamW and the logit-scale clamp;
//   other         the rest between two steps (metrics line, progress log).
struct StepTimes {
  double data = 0, forward = 0, backward = 0, comm_exposed = 0, optimizer = 0, other = 0, step = 0;
  // The sum of the parts (step minus what no timer covered).
  double parts() const { return data + forward + backward + comm_exposed + optimizer + other; }
};

// The rank whose step kept the others waiting: the largest step time not spent waiting for
// communication (step - comm_exposed), learnt with one all-gather of two doubles per step.
struct SlowestRank {
  int rank = 0;
  double step_s = 0, busy_s = 0;
};

class Trainer {
 public:
  enum class Outcome { finished, stopped };

  // Validates the configuration and sets everything up (model, teacher, optimizer, loader,
  // resume), before any training work; throws starft::Error on a bad configuration or a
  // mismatching teacher cache. Collective over `comm`.
  Trainer(TrainConfig config, distributed::Communicator& comm, torch::Device device = torch::kCPU);
  ~Trainer();

  // Trains to the end of the last epoch, or until --stop-after or a stop signal (then a
  // checkpoint is written and `stopped` returned).
  Outcome run();

  // The loss of one batch at (epoch, step in epoch), without backward. Collective.
  StepLoss compute_loss(const data::Batch& batch, int64_t epoch, int64_t step);
  // Backward of `loss` and the gradient synchronisation: afterwards every trainable parameter's
  // grad holds the average over ranks. Collective.
  void backward(const StepLoss& loss);
  // One optimizer step on `batch`: compute_loss, backward, gradient sync, clipping, AdamW.
  // Throws when the loss is NaN or Inf on any rank (before the parameters change). Collective.
  StepMetrics train_step(const data::Batch& batch, int64_t epoch, int64_t step);
  // Writes a checkpoint of the current state (rank 0 writes, all ranks wait). Collective.
  std::string save_checkpoint();
  // Evaluates the model now on --eval-stores (see train/epoch_eval.h); run() calls it at the end
  // of every --eval-every'th epoch. Throws without --eval-stores. Collective.
  EpochEval::Outcome evaluate(int64_t epoch);

  clip::CLIP& model() { return model_; }
  const TrainConfig& config() const { return config_; }
  const TrainState& state() const { return state_; }
  data::Loader& loader() { return *loader_; }
  int64_t steps_per_epoch() const { return loader_->steps_per_epoch(); }
  int64_t total_steps() const { return schedule_.total_steps; }
  double teacher_scale() const { return teacher_scale_; }
  // Trainable parameters by name (the model's, then the CE head's).
  const NamedParams& parameters() const { return params_; }
  // The last step's time breakdown on this rank (filled by run(); train_step() alone fills the
  // forward, backward, comm_exposed and optimizer parts).
  const StepTimes& step_times() const { return times_; }

 private:
  void setup_model();
  void setup_teacher();
  void setup_head();
  void resume_or_start();
  std::vector<std::string> captions(const data::Batch& batch) const;
  torch::Tensor gather(const torch::Tensor& x, bool with_grad, const std::string& name);
  void log_progress(const StepMetrics& m, int64_t epoch, int64_t step_in_epoch);
  void append_metrics(const StepMetrics& m, int64_t epoch, const SlowestRank& slowest);
  SlowestRank share_step_times();               // collective: every rank's step and busy time
  safetensors::TensorMap head_tensors() const;  // the CE head (empty without one), on the CPU

  TrainConfig config_;
  distributed::Communicator& comm_;
  torch::Device device_;
  Precision precision_ = Precision::fp32;  // config_.precision resolved for device_
  int rank_ = 0, world_ = 1;
  std::unique_ptr<data::Store> store_;
  std::unique_ptr<clip::Tokenizer> tokenizer_;
  clip::CLIP model_{nullptr};
  clip::CLIP teacher_{nullptr};  // online teacher only
  std::unique_ptr<TeacherCache> cache_;
  std::optional<CacheFingerprint> fingerprint_;
  double teacher_scale_ = 0;
  std::vector<std::string> pool_;
  std::vector<std::string> class_captions_;
  torch::Tensor head_weight_, head_bias_;  // CE head
  NamedParams params_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::unique_ptr<distributed::GradSync> grad_sync_;
  std::unique_ptr<data::Loader> loader_;
  std::unique_ptr<TextEncoder> student_text_, teacher_text_;
  std::unique_ptr<EpochEval> epoch_eval_;  // with --eval-stores
  // The checkpoint --resume names, resolved once (its files' CRC-32s are read in full); empty when
  // starting from the beginning.
  std::optional<std::string> resume_from_;
  LrSchedule schedule_;
  TrainState state_;
  std::ofstream metrics_;
  double run_start_s_ = 0;
  int64_t steps_this_run_ = 0;
  StepTimes times_;            // this step's breakdown, filled as it runs
  double forward_comm_s_ = 0;  // blocking collectives inside compute_loss (all-gathers)
  double pending_comm_s_ = 0;  // collectives between steps, counted into the next step
  double share_cost_s_ = 0;    // time in the step-time all-gathers of this run
};

}  // namespace starft::train
