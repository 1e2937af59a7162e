#pragma once
// The NCCL backend's core: needs only nccl.h and the CUDA runtime (compiled wherever they are
// found, even with a CPU-only LibTorch, where it cannot run). Raw device pointers and streams;
// the LibTorch glue (current stream, events, tensors) is nccl_communicator_cuda.cpp.
// Only available when starft/build_config.h says STARFT_NCCL.
#include <mpi.h>

#include <cstddef>
#include <string>

struct CUstream_st;  // cudaStream_t is CUstream_st*
struct ncclComm;     // ncclComm_t is ncclComm*

namespace starft::distributed::nccl {

using Stream = CUstream_st*;

enum class DataType { Float32, Float64, Float16, BFloat16, Int32, Int64, UInt8 };
enum class RedOp { Sum, Avg, Max };

// The NCCL library's version, e.g. "2.28.3".
std::string version();
// CUDA devices visible to this process; 0 when there is no driver or no GPU.
int device_count();

class Comm {
 public:
  // Collective over `mpi_comm`: rank 0 creates the NCCL unique id, MPI broadcasts it, and
  // every rank joins the NCCL communicator on CUDA device `device`.
  Comm(MPI_Comm mpi_comm, int device);
  ~Comm();
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int device() const { return device_; }

  // Enqueued on `stream`; `send` may equal `recv` (in place).
  void all_reduce(const void* send, void* recv, size_t count, DataType type, RedOp op, Stream stream);
  // `recv` holds size() blocks of `count` elements.
  void all_gather(const void* send, void* recv, size_t count, DataType type, Stream stream);
  void broadcast(void* buffer, size_t count, DataType type, int root, Stream stream);
  // NCCL has no barrier: a one-element all-reduce on a scratch buffer of this communicator.
  void barrier(Stream stream);
  // Throws if NCCL reported an asynchronous error (a peer failed, a network error).
  void check_async_error();
  // Unblocks and destroys the communicator after a failure or timeout (ncclCommAbort).
  void abort();

 private:
  ncclComm* comm_ = nullptr;
  int rank_ = 0, size_ = 1, device_ = 0;
  float* scratch_ = nullptr;  // one float on the device, for barrier()
};

}  // namespace starft::distributed::nccl
