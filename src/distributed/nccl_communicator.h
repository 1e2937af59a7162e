#pragma once
// CUDA device selection and the NCCL backend for CUDA tensors. Defined in
// nccl_communicator_cuda.cpp with a CUDA LibTorch, else in device_cpu.cpp (CPU only: the device is
// the CPU and asking for NCCL fails with an explanation).
#include <mpi.h>

#include <memory>

#include "distributed/communicator.h"
#include "distributed/watchdog.h"

namespace starft::distributed {

// This rank's device: CUDA device (local_rank mod visible devices), made current, when this
// build's LibTorch has CUDA and a GPU is visible; the CPU otherwise.
torch::Device select_device(int local_rank);

// Collective over `comm`: the NCCL unique id is made on rank 0 and broadcast over MPI. The
// communicator runs on its own CUDA stream, ordered after the caller's current stream with an
// event at each operation; Work::wait() orders the caller's current stream after the operation.
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, const torch::Device& device, Watchdog* watchdog);

}  // namespace starft::distributed
