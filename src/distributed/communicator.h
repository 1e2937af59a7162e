#pragma once
// The one narrow interface every distributed piece talks to: all-reduce, all-gather of equal
// blocks, broadcast and barrier, each with an asynchronous form that returns a Work handle.
// Backends: MPI (CPU tensors; src/distributed/mpi_communicator.h), NCCL (CUDA tensors;
// src/distributed/nccl_communicator.h) and in-process threads (src/distributed/thread_communicator.h, for tests).
//
// Every rank must issue the same collectives in the same order (as with MPI and NCCL); the
// `name` of an operation appears in timeout messages, so name what the operation is for.
#include <torch/torch.h>

#include <memory>
#include <string>

namespace starft::distributed {

enum class ReduceOp { Sum, Avg, Max };
const char* to_string(ReduceOp op);

// Handle of an operation in flight. For CPU backends wait() blocks until the operation has
// completed; for CUDA tensors it orders the caller's current stream after the operation
// (the host does not block), as torch.distributed does. wait() rethrows the operation's error.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool completed() = 0;
};
using WorkPtr = std::shared_ptr<Work>;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "mpi", "nccl" or "thread".
  virtual std::string backend() const = 0;
  // Where this communicator's tensors live (the CPU, or the CUDA device of an NCCL communicator;
  // the MPI backend also accepts CUDA tensors, staged through host memory).
  virtual torch::Device device() const { return torch::Device(torch::kCPU); }

  // In place on `tensor` (dense, contiguous). Avg is only defined for floating-point tensors.
  virtual WorkPtr all_reduce_async(const torch::Tensor& tensor, ReduceOp op,
                                   const std::string& name = "all_reduce") = 0;
  // `output` holds size() blocks of input.numel() elements, block r from rank r.
  virtual WorkPtr all_gather_async(const torch::Tensor& output, const torch::Tensor& input,
                                   const std::string& name = "all_gather") = 0;
  // In place: every rank ends with root's values.
  virtual WorkPtr broadcast_async(const torch::Tensor& tensor, int root, const std::string& name = "broadcast") = 0;
  virtual WorkPtr barrier_async(const std::string& name = "barrier") = 0;

  // A new communicator over the same ranks whose operations are ordered independently of this
  // one's (its own MPI communicator and thread, or NCCL communicator and stream). Collective:
  // every rank calls it at the same point. Gradient buckets use one, so that ranks may launch
  // them at different moments relative to other collectives (such as the all-gather's
  // backward) without the two sequences crossing.
  virtual std::unique_ptr<Communicator> duplicate(const std::string& name) = 0;

  // Synchronous forms.
  void all_reduce(const torch::Tensor& tensor, ReduceOp op = ReduceOp::Sum, const std::string& name = "all_reduce");
  // Concatenates every rank's `input` along dim 0 (rank order): shape [size * d0, d1, ...].
  torch::Tensor all_gather(const torch::Tensor& input, const std::string& name = "all_gather");
  void broadcast(const torch::Tensor& tensor, int root = 0, const std::string& name = "broadcast");
  void barrier(const std::string& name = "barrier");
};

// A Work that is already complete (for operations that needed no communication).
WorkPtr completed_work();

// Checks what every backend requires of its arguments; they throw naming the operation,
// the backend and this rank.
void check_collective_tensor(const Communicator& comm, const std::string& op_name, const torch::Tensor& tensor);
void check_reduce_op(const Communicator& comm, const std::string& op_name, const torch::Tensor& tensor, ReduceOp op);
void check_all_gather_shapes(const Communicator& comm, const std::string& op_name, const torch::Tensor& output,
                             const torch::Tensor& input);
void check_root(const Communicator& comm, const std::string& op_name, int root);

}  // namespace starft::distributed
