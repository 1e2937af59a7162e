#pragma once
// Training checkpoints: <run-dir>/checkpoints/step-NNNNNNNNN/ holding
//   weights.safetensors    the model in the OpenAI naming (clip::save_weights)
//   head.safetensors       the CE head (`head.weight`, `head.bias`), only with --loss ce
//   optimizer.safetensors  AdamW state per parameter (train/optimizer.h)
//   state.json             step, epoch, sampler position, RNG states, counters, config, cache fingerprint,
//                          and `checksums`: {file name: "crc32:xxxxxxxx"} of the files above (zlib's
//                          CRC-32, as the store manifest's), so data changed after writing is found
// Written by rank 0 into a temporary directory, every file flushed, state.json last, then renamed:
// a directory named step-* is always complete. The newest K are kept. Checkpoints written before
// checksums were recorded have none in state.json; they load, with a note that they are unverified.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "clip/model.h"
#include "clip/safetensors.h"
#include "data/sampler.h"

namespace starft::train {

struct TrainState {
  int64_t step = 0;            // optimizer steps done in total
  int64_t epoch = 0;           // epoch of the sampler position
  data::SamplerState sampler;  // position after the last batch trained on
  std::string torch_rng;       // the CPU generator state, hex
  int64_t images_seen = 0;     // counters of our own
  double last_loss = 0;
  std::string config_ini;                        // the effective configuration (to_ini)
  nlohmann::json teacher_fingerprint = nullptr;  // null without a teacher cache

  nlohmann::json to_json() const;
  static TrainState from_json(const nlohmann::json& j, const std::string& where);
};

// Hex of the default CPU generator's state, and its restoration.
std::string capture_torch_rng();
void restore_torch_rng(const std::string& hex, const std::string& where);

std::string checkpoints_dir(const std::string& run_dir);
std::string checkpoint_name(int64_t step);  // "step-000000042"

struct CheckpointContents {
  const clip::CLIP* model = nullptr;
  safetensors::TensorMap head;  // empty without a CE head
  safetensors::TensorMap optimizer;
  TrainState state;
};

// Writes the checkpoint of state.step atomically and keeps the newest `keep`. Returns its path.
std::string write_checkpoint(const std::string& run_dir, const CheckpointContents& contents, int64_t keep);

// Complete checkpoints of a run, oldest first.
std::vector<std::string> list_checkpoints(const std::string& run_dir);
// The newest complete checkpoint of a run, if any.
std::optional<std::string> latest_checkpoint(const std::string& run_dir);
// Why checkpoint `dir` cannot be resumed from ("" when it can): state.json unreadable or invalid,
// a .safetensors file missing, cut short or with a malformed header, or (read whole) whose CRC-32
// differs from the one state.json recorded ("weights.safetensors: checksum mismatch, ...").
std::string checkpoint_problem(const std::string& dir);
// The newest checkpoint that checkpoint_problem passes, warning (once) about each newer one it
// skips and why; nullopt when the run has none. Throws starft::Error listing them when every
// checkpoint is damaged.
std::optional<std::string> latest_complete_checkpoint(const std::string& run_dir);
// `spec` is a checkpoint directory or `latest` (latest_complete_checkpoint in run_dir; nullopt
// when there is none). A directory named explicitly that checkpoint_problem finds damaged is a
// starft::Error naming the file and why.
std::optional<std::string> resolve_checkpoint(const std::string& spec, const std::string& run_dir);

// <run-dir>/best/: the weights of the best evaluation so far (train/epoch_eval.h):
//   weights.safetensors, head.safetensors (CE head only), best.json {metric, value, step, epoch, ...}.
// Written whole into a temporary directory, then swapped in: best/ is always complete.
std::string best_dir(const std::string& run_dir);
std::string write_best(const std::string& run_dir, const clip::CLIP& model, const safetensors::TensorMap& head,
                       const nlohmann::json& record);
// best/best.json, or nullopt when the run has no best checkpoint yet.
std::optional<nlohmann::json> read_best(const std::string& run_dir);

TrainState read_train_state(const std::string& checkpoint_dir);
safetensors::TensorMap read_optimizer_state(const std::string& checkpoint_dir);
// The CE head, or an empty map when the checkpoint has none.
safetensors::TensorMap read_head(const std::string& checkpoint_dir);
std::string weights_path(const std::string& checkpoint_dir);

}  // namespace starft::train
