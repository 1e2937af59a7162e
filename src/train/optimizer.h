#pragma once
// AdamW over the trainable parameters, with optional parameter groups that exclude gains,
// biases (1-D parameters) and logit_scale from weight decay, and its state as named tensors
// (for checkpoints): per parameter `<name>.exp_avg`, `<name>.exp_avg_sq` and `<name>.step`.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "clip/safetensors.h"

namespace starft::train {

// Trainable parameters by name, in a fixed order (the model's registration order).
using NamedParams = std::vector<std::pair<std::string, torch::Tensor>>;

struct AdamWSettings {
  double lr = 1e-5;
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool exclude_gains_biases = false;
};

// True for parameters that get no weight decay when gains and biases are excluded.
bool is_gain_or_bias(const std::string& name, const torch::Tensor& param);

// torch::optim::AdamW with the update of each contiguous float32 CPU parameter done in one pass
// over its memory (parameter, gradient and both moments read once, written once) instead of
// LibTorch 1.13's nine tensor operations with a temporary (about 23 passes). The update is
// LibTorch's / PyTorch's AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"),
// operation for operation, with the same state (AdamWParamState: step, exp_avg, exp_avg_sq), so
// checkpoints and optimizer_state() are unchanged:
//   p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Results agree with torch::optim::AdamW to float32 rounding (tests: 1e-6 relative after 20
// steps); other parameters (CUDA, other dtypes, non-contiguous) take LibTorch's path; amsgrad is
// refused like LibTorch does.
//
// Row-sparse gradients: a sparse COO gradient [rows, width] (Embedding with sparse=true: the rows
// of the batch's tokens, some 60 of CLIP's 49408) on a parameter for which
// takes_row_sparse_gradient() holds gets the same update as its dense equivalent, to the float,
// without the dense passes. A row whose gradient and moments are all zero (one never used since
// the state began) only decays, p *= 1 - lr wd, which is exactly what the dense update does to
// it; every other row (in this gradient, or with nonzero moments from earlier steps) gets the
// full update with its gradient (zero where absent). The rows with nonzero moments are tracked
// per parameter and found again from the moments after a checkpoint load or a dense step.
// LibTorch's AdamW refuses sparse gradients; so does this class on any other parameter.
// Why by hand: LibTorch 1.13 has no fused or foreach CPU AdamW (PyTorch added `fused=True` for
// CPU in 2.4), and on the demo's model the optimizer pass over the 49408 x 128 token embedding
// was a large part of each step (bench/adamw_bench.cpp measures both side by side).
class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;

  // True when step() takes a row-sparse gradient for `param`: a contiguous 2-D float32 CPU tensor.
  static bool takes_row_sparse_gradient(const torch::Tensor& param);

 private:
  struct ActiveRows {
    const void* exp_avg = nullptr;  // the state these rows describe (a reloaded state has other tensors)
    std::vector<uint8_t> rows;      // 1: the row's moments may be nonzero
  };
  std::unordered_map<std::string, ActiveRows> active_rows_;  // by LibTorch's state key
};

// torch.nn.utils.clip_grad_norm_ (PyTorch, L2): when the L2 norm of all gradients together exceeds
// max_norm (> 0), scales every gradient by max_norm / (norm + 1e-6). Returns the norm before
// clipping. Parameters without a gradient are skipped. A row-sparse gradient counts each row once
// and is scaled in place. Why not LibTorch's: in 1.13 its clip_grad_norm_ measures a sparse
// gradient wrongly and leaves it unscaled (it scales a `.data()` copy); dense results are the same.
double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

// Group 0: decayed parameters; group 1 (only with exclude_gains_biases): the others, decay 0.
// Returns a FusedAdamW.
std::unique_ptr<torch::optim::AdamW> make_adamw(const NamedParams& params, const AdamWSettings& settings);

// Sets the learning rate of every parameter group.
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

// The optimizer state of each parameter that has one (parameters not yet stepped have none).
safetensors::TensorMap optimizer_state(const torch::optim::AdamW& optimizer, const NamedParams& params);

// Restores what optimizer_state wrote, exactly. Throws naming `source` and the tensor when the
// state does not fit the parameters (unknown name, wrong shape, missing part).
void load_optimizer_state(torch::optim::AdamW& optimizer, const NamedParams& params,
                          const safetensors::TensorMap& state, const std::string& source);

}  // namespace starft::train
