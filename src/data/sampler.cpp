#include "data/sampler.h"

#include <numeric>

#include "common/error.h"
#include "data/rng.h"

namespace starft::data {

// Keeps the permutation's random stream apart from other uses of the same seed.
static constexpr uint64_t kPermutationStream = 0x7065726d;  // "perm"

Tail parse_tail(const std::string& name) {
  if (name == "pad") return Tail::pad;
  if (name == "drop") return Tail::drop;
  if (name == "uneven") return Tail::uneven;
  fail("unknown sampler tail '", name, "' (expected pad, drop or uneven)");
}

std::string tail_name(Tail tail) {
  switch (tail) {
    case Tail::pad:
      return "pad";
    case Tail::drop:
      return "drop";
    case Tail::uneven:
      return "uneven";
  }
  return "?";
}

nlohmann::json SamplerState::to_json() const {
  return {{"epoch", epoch},
          {"step", step},
          {"seed", seed},
          {"world_size", world_size},
          {"batch_size", batch_size},
          {"num_samples", num_samples}};
}

SamplerState SamplerState::from_json(const nlohmann::json& j) {
  SamplerState s;
  try {
    s.epoch = j.at("epoch").get<int64_t>();
    s.step = j.at("step").get<int64_t>();
    s.seed = j.at("seed").get<uint64_t>();
    s.world_size = j.at("world_size").get<int>();
    s.batch_size = j.at("batch_size").get<int64_t>();
    s.num_samples = j.at("num_samples").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("malformed sampler state ", j.dump(), ": ", e.what());
  }
  check(s.epoch >= 0 && s.step >= 0, "sampler state ", j.dump(), ": epoch and step must be >= 0");
  return s;
}

bool SamplerState::operator==(const SamplerState& o) const {
  return epoch == o.epoch && step == o.step && seed == o.seed && world_size == o.world_size &&
         batch_size == o.batch_size && num_samples == o.num_samples;
}

DistributedSampler::DistributedSampler(SamplerOptions options) : options_(options) {
  check(options_.num_samples > 0, "sampler: the store is empty");
  check(options_.world_size > 0, "sampler: world size ", options_.world_size, " must be positive");
  check(options_.rank >= 0 && options_.rank < options_.world_size, "sampler: rank ", options_.rank, " is outside 0..",
        options_.world_size - 1);
  check(options_.batch_size > 0, "sampler: batch size ", options_.batch_size, " must be positive");
  check(options_.tail != Tail::drop || options_.num_samples >= options_.world_size, "sampler: ", options_.num_samples,
        " samples cannot be split over ", options_.world_size, " ranks with tail 'drop'");
}

std::vector<int64_t> DistributedSampler::permutation(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> p(n);
  std::iota(p.begin(), p.end(), int64_t{0});
  Rng rng({kPermutationStream, seed, static_cast<uint64_t>(epoch)});
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[rng.below(static_cast<uint64_t>(i) + 1)]);
  return p;
}

int64_t DistributedSampler::num_local() const {
  const int64_t n = options_.num_samples, w = options_.world_size;
  switch (options_.tail) {
    case Tail::pad:
      return (n + w - 1) / w;
    case Tail::drop:
      return n / w;
    case Tail::uneven:
      return n / w + (options_.rank < n % w ? 1 : 0);
  }
  return 0;
}

int64_t DistributedSampler::steps_per_epoch() const {
  const int64_t local = num_local(), b = options_.batch_size;
  return options_.drop_last_batch ? local / b : (local + b - 1) / b;
}

std::vector<int64_t> DistributedSampler::indices(int64_t epoch) const {
  check(epoch >= 0, "sampler: epoch ", epoch, " must be >= 0");
  const int64_t n = options_.num_samples, w = options_.world_size;
  std::vector<int64_t> order;
  if (options_.shuffle) {
    order = permutation(n, options_.seed, epoch);
  } else {
    order.resize(n);
    std::iota(order.begin(), order.end(), int64_t{0});
  }
  const int64_t local = num_local();
  std::vector<int64_t> mine;
  mine.reserve(local);
  // Position k of the (wrapped) global order goes to rank k % w.
  for (int64_t i = 0; i < local; ++i) mine.push_back(order[(options_.rank + i * w) % n]);
  return mine;
}

SamplerState DistributedSampler::state(int64_t epoch, int64_t step) const {
  return {epoch, step, options_.seed, options_.world_size, options_.batch_size, options_.num_samples};
}

void DistributedSampler::check_resumable(const SamplerState& s) const {
  auto differs = [&](const char* what, auto saved, auto now) {
    if (saved != now)
      fail("cannot resume the data position: the saved ", what, " is ", saved, " but this run has ", now,
           "; resume with the same ", what, " or start a new run");
  };
  differs("seed", s.seed, options_.seed);
  differs("world size", s.world_size, options_.world_size);
  differs("per-rank batch size", s.batch_size, options_.batch_size);
  differs("store sample count", s.num_samples, options_.num_samples);
  check(s.step <= steps_per_epoch(), "cannot resume at step ", s.step, ": an epoch has ", steps_per_epoch(), " steps");
}

}  // namespace starft::data
