#pragma once
// The AdamW update of one contiguous float32 range, in one pass (train/optimizer.h's FusedAdamW).
#include <cstdint>

namespace starft::train {

// For i in [begin, end): p[i] *= decay_factor (when decay); m[i] = beta1 m[i] + one_minus_beta1 g[i];
// v[i] = beta2 v[i] + one_minus_beta2 g[i]^2; p[i] += neg_step_size * m[i] / (sqrt(v[i]) /
// sqrt_bias_correction2 + eps). The arrays must not overlap. Operations and their order follow
// LibTorch 1.13's AdamW (torch/csrc/api/src/optim/adamw.cpp) with the scalars rounded to float.
void adamw_update(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
                  int64_t begin, int64_t end, float decay_factor, bool decay, float beta1, float one_minus_beta1,
                  float beta2, float one_minus_beta2, float sqrt_bias_correction2, float eps, float neg_step_size);

// For i in [begin, end): p[i] *= decay_factor, the whole update of an element whose gradient and
// moments are zero (adamw_update then leaves m and v at 0 and adds neg_step_size * 0 / eps = 0), so
// the same float result in one read and one write instead of four arrays.
void adamw_decay_only(float* __restrict p, int64_t begin, int64_t end, float decay_factor);

}  // namespace starft::train
