// The NCCL backend's core is compiled and linked wherever nccl.h and the CUDA runtime are found,
// even with a CPU-only LibTorch. On a machine with a GPU it also runs a one-rank NCCL all-reduce.
#include <gtest/gtest.h>

#include "starft/build_config.h"

#if STARFT_NCCL
#include <cuda_runtime.h>
#include <mpi.h>

#include <vector>

#include "distributed/nccl_core.h"

using namespace starft::distributed;

TEST(NcclCore, IsLinkedAndReportsItsVersion) {
  auto version = nccl::version();
  std::printf("[ NCCL %s, %d CUDA device(s) ]\n", version.c_str(), nccl::device_count());
  EXPECT_EQ(version.rfind("2.", 0), 0u) << version;
}

TEST(NcclCore, OneRankAllReduceAndAllGatherOnTheGpu) {
  if (nccl::device_count() == 0) GTEST_SKIP() << "no CUDA device here";
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) MPI_Init(nullptr, nullptr);
  {
    nccl::Comm comm(MPI_COMM_SELF, 0);
    std::vector<float> host{1, 2, 3, 4};
    float* dev = nullptr;
    float* gathered = nullptr;
    ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&dev), 4 * sizeof(float)), cudaSuccess);
    ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&gathered), 4 * sizeof(float)), cudaSuccess);
    cudaStream_t stream;
    ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
    cudaMemcpy(dev, host.data(), 4 * sizeof(float), cudaMemcpyHostToDevice);
    comm.all_reduce(dev, dev, 4, nccl::DataType::Float32, nccl::RedOp::Avg, stream);
    comm.all_gather(dev, gathered, 4, nccl::DataType::Float32, stream);
    comm.barrier(stream);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    comm.check_async_error();
    std::vector<float> out(4);
    cudaMemcpy(out.data(), gathered, 4 * sizeof(float), cudaMemcpyDeviceToHost);
    EXPECT_EQ(out, host);
    cudaStreamDestroy(stream);
    cudaFree(dev);
    cudaFree(gathered);
  }
  MPI_Finalize();
}
#else
TEST(NcclCore, NotBuilt) { GTEST_SKIP() << "this build found no nccl.h / libnccl (STARFT_NCCL off)"; }
#endif
