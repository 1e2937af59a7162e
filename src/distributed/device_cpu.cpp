// Without a CUDA LibTorch the device is the CPU and there is no NCCL communicator.
#include "starft/build_config.h"

#if !STARFT_TORCH_CUDA
#include "common/error.h"
#include "distributed/nccl_communicator.h"

namespace starft::distributed {

torch::Device select_device(int) { return torch::Device(torch::kCPU); }

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm, const torch::Device& device, Watchdog*) {
  fail("the NCCL backend was asked for (tensors on ", device,
       " or --comm-backend nccl), but this build's "
       "LibTorch has no CUDA. Rebuild against a CUDA LibTorch (-DCMAKE_PREFIX_PATH=/path/to/libtorch) or use "
       "--comm-backend mpi.");
}

}  // namespace starft::distributed
#endif
