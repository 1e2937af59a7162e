#include "distributed/all_gather.h"

#include <torch/csrc/autograd/custom_function.h>

#include "common/error.h"

namespace starft::distributed {

namespace {

class AllGatherFunction : public torch::autograd::Function<AllGatherFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, Communicator* comm,
                               const std::string& name) {
    // The communicator travels to backward through the context as an address.
    ctx->saved_data["comm"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(comm));
    ctx->saved_data["name"] = name;
    ctx->saved_data["rows"] = x.size(0);
    return comm->all_gather(x.contiguous(), name);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* comm = reinterpret_cast<Communicator*>(static_cast<intptr_t>(ctx->saved_data["comm"].toInt()));
    const int64_t rows = ctx->saved_data["rows"].toInt();
    auto grad = grads[0].contiguous().clone();
    comm->all_reduce(grad, ReduceOp::Sum, ctx->saved_data["name"].toStringRef() + ".backward");
    return {grad.narrow(0, comm->rank() * rows, rows), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor all_gather_with_grad(const torch::Tensor& x, Communicator& comm, const std::string& name) {
  check(x.dim() >= 1, "all_gather_with_grad '", name, "' on rank ", comm.rank(),
        ": needs a tensor with a row dimension, got a scalar");
  return AllGatherFunction::apply(x, &comm, name);
}

}  // namespace starft::distributed
