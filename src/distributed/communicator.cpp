#include "distributed/communicator.h"

#include "common/error.h"

namespace starft::distributed {

const char* to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return "sum";
    case ReduceOp::Avg:
      return "avg";
    case ReduceOp::Max:
      return "max";
  }
  return "?";
}

void Communicator::all_reduce(const torch::Tensor& tensor, ReduceOp op, const std::string& name) {
  all_reduce_async(tensor, op, name)->wait();
}

torch::Tensor Communicator::all_gather(const torch::Tensor& input, const std::string& name) {
  check(input.dim() >= 1, "all-gather '", name, "' on rank ", rank(),
        ": the input needs at least one dimension (got a scalar); use reshape({1})");
  auto in = input.contiguous();
  auto sizes = in.sizes().vec();
  sizes[0] *= size();
  auto out = torch::empty(sizes, in.options());
  all_gather_async(out, in, name)->wait();
  return out;
}

void Communicator::broadcast(const torch::Tensor& tensor, int root, const std::string& name) {
  broadcast_async(tensor, root, name)->wait();
}

void Communicator::barrier(const std::string& name) { barrier_async(name)->wait(); }

namespace {
class CompletedWork : public Work {
 public:
  void wait() override {}
  bool completed() override { return true; }
};
}  // namespace

WorkPtr completed_work() { return std::make_shared<CompletedWork>(); }

void check_collective_tensor(const Communicator& comm, const std::string& op_name, const torch::Tensor& tensor) {
  const auto where = [&] { return op_name + " (" + comm.backend() + ", rank " + std::to_string(comm.rank()) + ")"; };
  check(tensor.defined(), where(), ": the tensor is undefined");
  check(tensor.layout() == torch::kStrided, where(), ": only dense tensors can be communicated, got ", tensor.layout());
  check(tensor.is_contiguous(), where(), ": the tensor must be contiguous (call .contiguous() and ",
        "copy the result back)");
  switch (tensor.scalar_type()) {
    case torch::kFloat:
    case torch::kDouble:
    case torch::kInt:
    case torch::kLong:
    case torch::kByte:
      break;
    case torch::kHalf:
    case torch::kBFloat16:
      check(comm.backend() == "nccl", where(), ": ", tensor.scalar_type(),
            " is only supported by the NCCL backend; convert to float32 for ", comm.backend());
      break;
    default:
      fail(where(), ": unsupported dtype ", tensor.scalar_type(),
           " (supported: float32, float64, int32, int64, uint8; float16/bfloat16 on NCCL)");
  }
}

void check_reduce_op(const Communicator& comm, const std::string& op_name, const torch::Tensor& tensor, ReduceOp op) {
  check(op != ReduceOp::Avg || torch::isFloatingType(tensor.scalar_type()), op_name, " (", comm.backend(), ", rank ",
        comm.rank(), "): average is only defined for floating-point tensors, got ", tensor.scalar_type(), "; use sum");
}

void check_all_gather_shapes(const Communicator& comm, const std::string& op_name, const torch::Tensor& output,
                             const torch::Tensor& input) {
  check_collective_tensor(comm, op_name, input);
  check_collective_tensor(comm, op_name, output);
  check(output.scalar_type() == input.scalar_type() && output.device() == input.device(), op_name, " (", comm.backend(),
        ", rank ", comm.rank(), "): output is ", output.scalar_type(), " on ", output.device(), " but input is ",
        input.scalar_type(), " on ", input.device());
  check(output.numel() == input.numel() * comm.size(), op_name, " (", comm.backend(), ", rank ", comm.rank(),
        "): output has ", output.numel(), " elements, expected ", comm.size(), " blocks of ", input.numel());
}

void check_root(const Communicator& comm, const std::string& op_name, int root) {
  check(root >= 0 && root < comm.size(), op_name, " (", comm.backend(), ", rank ", comm.rank(), "): root ", root,
        " is not a rank of a group of ", comm.size());
}

}  // namespace starft::distributed
