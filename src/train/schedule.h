#pragma once
// The learning-rate schedule of the reference recipe: linear warm-up, lr * (step + 1) / warmup
// for the first `warmup` steps, then cosine decay from lr to min_lr over the remaining steps.
#include <cstdint>

namespace starft::train {

struct LrSchedule {
  double lr = 1e-5;
  double min_lr = 0.0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  // The learning rate of 0-based optimizer step `step`.
  double at(int64_t step) const;
};

}  // namespace starft::train
