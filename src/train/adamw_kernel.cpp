// Compiled with -fno-math-errno and without the precompiled header (CMakeLists.txt): the loop
// vectorises only when sqrt need not set errno (its inputs are >= 0), and this file needs no
// LibTorch header.
#include "train/adamw_kernel.h"

#include <cmath>

namespace starft::train {

// One pass of the AdamW update over [begin, end) of contiguous float32 arrays. The operations and
// their order are LibTorch's (torch/csrc/api/src/optim/adamw.cpp, 1.13): float arithmetic with
// the scalars rounded to float as TensorIterator does.
void adamw_update(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
                  int64_t begin, int64_t end, float decay_factor, bool decay, float beta1, float one_minus_beta1,
                  float beta2, float one_minus_beta2, float sqrt_bias_correction2, float eps, float neg_step_size) {
  for (int64_t i = begin; i < end; ++i) {
    float pi = decay ? p[i] * decay_factor : p[i];
    const float gi = g[i];
    const float mi = m[i] * beta1 + one_minus_beta1 * gi;
    const float vi = v[i] * beta2 + one_minus_beta2 * (gi * gi);
    const float denom = std::sqrt(vi) / sqrt_bias_correction2 + eps;
    pi = pi + neg_step_size * (mi / denom);
    m[i] = mi;
    v[i] = vi;
    p[i] = pi;
  }
}

void adamw_decay_only(float* __restrict p, int64_t begin, int64_t end, float decay_factor) {
  for (int64_t i = begin; i < end; ++i) p[i] = p[i] * decay_factor;
}

}  // namespace starft::train
