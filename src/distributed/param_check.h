#pragma once
// A cheap cross-rank check that every rank holds the same parameters: a float64 checksum per
// rank (sum and sum of squares over all parameters), all-gathered and compared with rank 0's.
// Divergence throws on every rank with a message naming the ranks that differ, so the job ends.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "distributed/communicator.h"

namespace starft::distributed {

// {sum, sum of squares} over every element of `params`, in float64, on the params' device.
torch::Tensor parameter_checksum(const std::vector<torch::Tensor>& params);

// Collective. `when` says where in the run the check is made (e.g. "step 200").
void check_parameters_in_sync(const std::vector<torch::Tensor>& params, Communicator& comm, const std::string& when);

}  // namespace starft::distributed
