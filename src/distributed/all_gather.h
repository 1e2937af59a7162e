#pragma once
// Differentiable all-gather (open_clip's --gather-with-grad). Forward: every rank's block of
// rows, concatenated in rank order. Backward: each rank receives the sum over ranks of the
// gradient for its own block (an all-reduce of the gathered gradient, then this rank's rows).
//
// With it a loss computed as local rows against global columns, averaged over ranks by the
// gradient synchronisation, has exactly the gradient of the single-process loss over the global
// batch. Every rank must call it (and run backward) in the same order; `comm` must outlive the
// backward pass.
#include <torch/torch.h>

#include "distributed/communicator.h"

namespace starft::distributed {

// `x`: [n, ...] with the same shape on every rank. Returns [size * n, ...].
torch::Tensor all_gather_with_grad(const torch::Tensor& x, Communicator& comm,
                                   const std::string& name = "all_gather_features");

}  // namespace starft::distributed
