// LibTorch-CUDA glue of the NCCL backend: streams, events, tensors -> device pointers.
// Compiled only with a CUDA LibTorch (CMake: *_cuda.cpp).
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <mutex>

#include "common/error.h"
#include "distributed/nccl_communicator.h"
#include "starft/build_config.h"

#if STARFT_NCCL
#include "distributed/nccl_core.h"
#endif

namespace starft::distributed {

torch::Device select_device(int local_rank) {
  const int count = c10::cuda::device_count();
  if (count == 0) return torch::Device(torch::kCPU);
  const auto index = static_cast<c10::DeviceIndex>(local_rank % count);
  c10::cuda::set_device(index);
  return torch::Device(torch::kCUDA, index);
}

#if STARFT_NCCL

namespace {

nccl::DataType nccl_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat:
      return nccl::DataType::Float32;
    case torch::kDouble:
      return nccl::DataType::Float64;
    case torch::kHalf:
      return nccl::DataType::Float16;
    case torch::kBFloat16:
      return nccl::DataType::BFloat16;
    case torch::kInt:
      return nccl::DataType::Int32;
    case torch::kLong:
      return nccl::DataType::Int64;
    case torch::kByte:
      return nccl::DataType::UInt8;
    default:
      fail("NCCL has no datatype for ", t.scalar_type());
  }
}

nccl::RedOp nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return nccl::RedOp::Sum;
    case ReduceOp::Avg:
      return nccl::RedOp::Avg;
    case ReduceOp::Max:
      return nccl::RedOp::Max;
  }
  return nccl::RedOp::Sum;
}

class NcclWork : public Work {
 public:
  NcclWork(std::shared_ptr<at::cuda::CUDAEvent> done, c10::DeviceIndex device, nccl::Comm* core, bool host_sync)
      : done_(std::move(done)), device_(device), core_(core), host_sync_(host_sync) {}
  void wait() override {
    core_->check_async_error();
    if (host_sync_) {
      done_->synchronize();
    } else {
      done_->block(c10::cuda::getCurrentCUDAStream(device_));
    }
  }
  bool completed() override { return done_->query(); }

 private:
  std::shared_ptr<at::cuda::CUDAEvent> done_;
  c10::DeviceIndex device_;
  nccl::Comm* core_;
  bool host_sync_;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(MPI_Comm comm, const torch::Device& device, Watchdog* watchdog, const std::string& channel_name)
      : mpi_comm_(comm),
        device_(device),
        core_(comm, device.index()),
        stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device.index())),
        watchdog_(watchdog) {
    if (watchdog_) channel_ = watchdog_->add_channel(channel_name);
  }
  ~NcclCommunicator() override {
    try {
      stream_.synchronize();
    } catch (...) {
    }
  }

  int rank() const override { return core_.rank(); }
  int size() const override { return core_.size(); }
  std::string backend() const override { return "nccl"; }
  torch::Device device() const override { return device_; }
  std::unique_ptr<Communicator> duplicate(const std::string& name) override {
    // A second NCCL communicator (its own unique id, broadcast over MPI) on its own stream.
    return std::make_unique<NcclCommunicator>(mpi_comm_, device_, watchdog_, name);
  }

  WorkPtr all_reduce_async(const torch::Tensor& tensor, ReduceOp op, const std::string& name) override {
    check_collective_tensor(*this, name, tensor);
    check_reduce_op(*this, name, tensor, op);
    check_device(name, tensor);
    return launch(name, {tensor}, false, [&](nccl::Stream s) {
      core_.all_reduce(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(), nccl_type(tensor), nccl_op(op), s);
    });
  }
  WorkPtr all_gather_async(const torch::Tensor& output, const torch::Tensor& input, const std::string& name) override {
    check_all_gather_shapes(*this, name, output, input);
    check_device(name, input);
    return launch(name, {output, input}, false, [&](nccl::Stream s) {
      core_.all_gather(input.data_ptr(), output.data_ptr(), input.numel(), nccl_type(input), s);
    });
  }
  WorkPtr broadcast_async(const torch::Tensor& tensor, int root, const std::string& name) override {
    check_collective_tensor(*this, name, tensor);
    check_root(*this, name, root);
    check_device(name, tensor);
    return launch(name, {tensor}, false, [&](nccl::Stream s) {
      core_.broadcast(tensor.data_ptr(), tensor.numel(), nccl_type(tensor), root, s);
    });
  }
  WorkPtr barrier_async(const std::string& name) override {
    // A barrier is for the host: its wait() blocks until every rank got there.
    return launch(name, {}, true, [&](nccl::Stream s) { core_.barrier(s); });
  }

 private:
  void check_device(const std::string& name, const torch::Tensor& t) const {
    check(t.device() == device_, name, " (nccl, rank ", rank(), "): the tensor is on ", t.device(),
          " but this rank's NCCL communicator is on ", device_, "; move it there or use --comm-backend mpi");
  }

  WorkPtr launch(const std::string& name, const std::vector<torch::Tensor>& tensors, bool host_sync,
                 const std::function<void(nccl::Stream)>& enqueue) {
    // NCCL needs every rank to issue the same operations in the same order: one issuer at a time.
    std::lock_guard<std::mutex> lock(mutex_);
    c10::cuda::CUDAGuard guard(device_.index());
    // The communication stream waits for whatever the caller's stream has queued on the inputs.
    at::cuda::CUDAEvent inputs_ready;
    inputs_ready.record(c10::cuda::getCurrentCUDAStream(device_.index()));
    inputs_ready.block(stream_);
    enqueue(stream_.stream());
    // The caching allocator must not hand these tensors' memory out before the stream is done.
    for (const auto& t : tensors) c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), stream_);
    auto done = std::make_shared<at::cuda::CUDAEvent>();
    done->record(stream_);
    if (watchdog_) {
      watchdog_->begin(channel_, name, [done] {
        try {
          return done->query();
        } catch (...) {
          return true;  // the error surfaces in wait() through check_async_error()
        }
      });
    }
    return std::make_shared<NcclWork>(done, device_.index(), &core_, host_sync);
  }

  MPI_Comm mpi_comm_;
  torch::Device device_;
  nccl::Comm core_;
  c10::cuda::CUDAStream stream_;
  Watchdog* watchdog_;
  int channel_ = -1;
  std::mutex mutex_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, const torch::Device& device, Watchdog* watchdog) {
  check(device.is_cuda() && device.has_index(), "the NCCL communicator needs a CUDA device with an index, got ",
        device);
  return std::make_unique<NcclCommunicator>(comm, device, watchdog, "nccl");
}

#else  // CUDA LibTorch without NCCL headers

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm, const torch::Device&, Watchdog*) {
  fail(
      "this build has a CUDA LibTorch but no NCCL (nccl.h and libnccl were not found under STARFT_CUDA_ROOT "
      "or NCCL_HOME); reconfigure with them, or use --comm-backend mpi");
}

#endif

}  // namespace starft::distributed
