#pragma once
// A portable random generator: the same numbers on every platform and standard library
// (std::shuffle and std::uniform_*_distribution are implementation-defined). A stream is keyed
// by a tuple such as (seed, epoch, sample index), so any sample's randomness can be recreated
// without replaying a sequence: results do not depend on thread count or order.
#include <cstdint>
#include <initializer_list>

namespace starft::data {

// SplitMix64's finaliser: a bijective 64-bit mix.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class Rng {
 public:
  // The stream for a key tuple, e.g. Rng({seed, epoch, index}).
  Rng(std::initializer_list<uint64_t> key) {
    uint64_t h = 0x243f6a8885a308d3ULL;
    for (uint64_t k : key) h = mix64(h ^ mix64(k + 0x9e3779b97f4a7c15ULL));
    state_ = h;
  }
  // SplitMix64 step.
  uint64_t next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return mix64(state_);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), n > 0, without modulo bias (rejection sampling).
  uint64_t below(uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = next();
    while (x >= limit);
    return x % n;
  }

 private:
  uint64_t state_;
};

}  // namespace starft::data
