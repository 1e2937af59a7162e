#pragma once
// The tests' one measure of how close two tensors are, with the tolerance stated at each use
// (llm.c's habit; the fixtures README calls it the "relative" tolerance): the largest
// |actual - expected| over the tensor, against the largest |expected|. Both are read as float64,
// so float32, bfloat16 and float64 tensors compare alike.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

namespace starft::testing {

// max |actual - expected| / max(max |expected|, floor). Shapes must broadcast.
inline double relative_difference(const torch::Tensor& actual, const torch::Tensor& expected, double floor = 1e-12) {
  const auto a = actual.to(torch::kDouble), b = expected.to(torch::kDouble);
  return (a - b).abs().max().item<double>() / std::max(b.abs().max().item<double>(), floor);
}

// A parameter's gradient as a dense copy, or an undefined tensor when it has none. The trainer's
// token embedding gets a row-sparse gradient on CPUs (train/optimizer.h: FusedAdamW).
inline torch::Tensor dense_gradient(const torch::Tensor& param) {
  const auto& g = param.grad();
  if (!g.defined()) return {};
  return g.is_sparse() ? g.to_dense() : g.clone();
}

// Holds when the shapes are equal and max |actual - expected| <= rtol * max |expected| + atol.
// The failure message gives the error, the scale and the flat index of the worst element.
//   EXPECT_TRUE(tensors_close(got, want, 1e-5)) << "what";
inline ::testing::AssertionResult tensors_close(const torch::Tensor& actual, const torch::Tensor& expected, double rtol,
                                                double atol = 1e-12) {
  if (!actual.defined()) return ::testing::AssertionFailure() << "undefined tensor (no gradient reached it?)";
  if (actual.sizes() != expected.sizes())
    return ::testing::AssertionFailure() << "shape " << actual.sizes() << " vs " << expected.sizes();
  if (actual.numel() == 0) return ::testing::AssertionSuccess();
  const auto want = expected.to(torch::kDouble);
  const auto diff = (actual.to(torch::kDouble) - want).abs().flatten();
  const int64_t worst = diff.argmax().item<int64_t>();
  const double err = diff[worst].item<double>();
  const double scale = want.abs().max().item<double>();
  if (err <= rtol * scale + atol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max error " << err << " (flat index " << worst << ") > " << rtol << " * "
                                       << scale << " + " << atol;
}

}  // namespace starft::testing
