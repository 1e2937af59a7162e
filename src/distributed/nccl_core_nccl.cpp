#include <cuda_runtime.h>
#include <nccl.h>

#include "common/error.h"
#include "distributed/nccl_core.h"

namespace starft::distributed::nccl {

namespace {

void check_cuda(cudaError_t rc, const char* what, int rank) {
  if (rc != cudaSuccess) fail("CUDA ", what, " failed on rank ", rank, ": ", cudaGetErrorString(rc));
}

void check_nccl(ncclResult_t rc, const char* what, int rank, ncclComm_t comm = nullptr) {
  if (rc == ncclSuccess || rc == ncclInProgress) return;
  const char* detail = comm ? ncclGetLastError(comm) : ncclGetLastError(nullptr);
  fail("NCCL ", what, " failed on rank ", rank, ": ", ncclGetErrorString(rc),
       detail && *detail ? std::string(" (") + detail + ")" : std::string(),
       ". Set NCCL_DEBUG=INFO for NCCL's own account.");
}

ncclDataType_t to_nccl(DataType type) {
  switch (type) {
    case DataType::Float32:
      return ncclFloat32;
    case DataType::Float64:
      return ncclFloat64;
    case DataType::Float16:
      return ncclFloat16;
    case DataType::BFloat16:
      return ncclBfloat16;
    case DataType::Int32:
      return ncclInt32;
    case DataType::Int64:
      return ncclInt64;
    case DataType::UInt8:
      return ncclUint8;
  }
  return ncclFloat32;
}

ncclRedOp_t to_nccl(RedOp op) {
  switch (op) {
    case RedOp::Sum:
      return ncclSum;
    case RedOp::Avg:
      return ncclAvg;
    case RedOp::Max:
      return ncclMax;
  }
  return ncclSum;
}

}  // namespace

std::string version() {
  int v = 0;
  check_nccl(ncclGetVersion(&v), "ncclGetVersion", 0);
  // NCCL >= 2.9 encodes major * 10000 + minor * 100 + patch.
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

Comm::Comm(MPI_Comm mpi_comm, int device) : device_(device) {
  MPI_Comm_rank(mpi_comm, &rank_);
  MPI_Comm_size(mpi_comm, &size_);
  check_cuda(cudaSetDevice(device), "cudaSetDevice", rank_);
  ncclUniqueId id;
  if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId", rank_);
  check(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, mpi_comm) == MPI_SUCCESS,
        "MPI_Bcast of the NCCL unique id failed on rank ", rank_);
  check_nccl(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank", rank_);
  check_cuda(cudaMalloc(reinterpret_cast<void**>(&scratch_), sizeof(float)), "cudaMalloc", rank_);
}

Comm::~Comm() {
  if (scratch_) cudaFree(scratch_);
  if (comm_) ncclCommDestroy(comm_);
}

void Comm::all_reduce(const void* send, void* recv, size_t count, DataType type, RedOp op, Stream stream) {
  check_nccl(ncclAllReduce(send, recv, count, to_nccl(type), to_nccl(op), comm_, stream), "ncclAllReduce", rank_,
             comm_);
}

void Comm::all_gather(const void* send, void* recv, size_t count, DataType type, Stream stream) {
  check_nccl(ncclAllGather(send, recv, count, to_nccl(type), comm_, stream), "ncclAllGather", rank_, comm_);
}

void Comm::broadcast(void* buffer, size_t count, DataType type, int root, Stream stream) {
  check_nccl(ncclBroadcast(buffer, buffer, count, to_nccl(type), root, comm_, stream), "ncclBroadcast", rank_, comm_);
}

void Comm::barrier(Stream stream) {
  check_nccl(ncclAllReduce(scratch_, scratch_, 1, ncclFloat32, ncclSum, comm_, stream), "ncclAllReduce (barrier)",
             rank_, comm_);
}

void Comm::check_async_error() {
  ncclResult_t async = ncclSuccess;
  check_nccl(ncclCommGetAsyncError(comm_, &async), "ncclCommGetAsyncError", rank_, comm_);
  check_nccl(async, "an asynchronous operation", rank_, comm_);
}

void Comm::abort() {
  if (comm_) ncclCommAbort(comm_);
  comm_ = nullptr;
}

}  // namespace starft::distributed::nccl
