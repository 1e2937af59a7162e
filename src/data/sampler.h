#pragma once
// Distributed sampler: which samples each rank visits in each epoch, and in what order.
//
// Every rank computes the same global permutation from (seed, epoch) and takes the positions
// r, r + W, r + 2W, ... of it, as PyTorch's DistributedSampler does. With Tail::pad the
// permutation is extended by wrapping around so all ranks get ceil(N / W) samples; with
// Tail::drop it is cut to floor(N / W) * W; Tail::uneven keeps every sample exactly once (ranks
// may differ by one; meant for evaluation, where duplicates would be counted twice).
// Each rank's slice is cut into batches of batch_size; the position (epoch, step) is a
// SamplerState that can be saved to JSON and restored exactly.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace starft::data {

enum class Tail { pad, drop, uneven };

Tail parse_tail(const std::string& name);  // "pad", "drop", "uneven"
std::string tail_name(Tail tail);

struct SamplerOptions {
  int64_t num_samples = 0;
  int world_size = 1;
  int rank = 0;
  int64_t batch_size = 1;  // samples per rank per step
  bool shuffle = true;     // false: samples in store order (evaluation)
  uint64_t seed = 0;
  Tail tail = Tail::pad;
  bool drop_last_batch = false;  // drop this rank's final partial batch
};

// Where a run is in the data, and what it must agree with to resume.
struct SamplerState {
  int64_t epoch = 0;
  int64_t step = 0;  // batches of this epoch already delivered
  uint64_t seed = 0;
  int world_size = 1;
  int64_t batch_size = 1;
  int64_t num_samples = 0;

  nlohmann::json to_json() const;
  static SamplerState from_json(const nlohmann::json& j);
  bool operator==(const SamplerState& o) const;
};

class DistributedSampler {
 public:
  explicit DistributedSampler(SamplerOptions options);

  const SamplerOptions& options() const { return options_; }

  // A permutation of 0..n-1 that depends only on (seed, epoch) (Fisher-Yates over Rng).
  static std::vector<int64_t> permutation(int64_t n, uint64_t seed, int64_t epoch);

  // This rank's samples for `epoch`, in visiting order.
  std::vector<int64_t> indices(int64_t epoch) const;
  // Length of indices() (the same on every rank except with Tail::uneven).
  int64_t num_local() const;
  int64_t steps_per_epoch() const;

  // The state at (epoch, step), and a check that a saved state fits this sampler (same seed,
  // world size, batch size and sample count); throws starft::Error saying which differs.
  SamplerState state(int64_t epoch, int64_t step) const;
  void check_resumable(const SamplerState& state) const;

 private:
  SamplerOptions options_;
};

}  // namespace starft::data
