#pragma once
// MPI backend for CPU tensors. Collectives run on the communication thread of
// QueuedCommunicator over a private duplicate of the parent communicator, so they never mix
// with other MPI traffic. CUDA tensors (the --comm-backend mpi override) are staged through
// host memory.
//
// Progress: Open MPI's blocking collectives spin on a core while waiting for the slowest rank,
// which takes that core from the computation they are meant to overlap. `Polling` starts the
// non-blocking form and tests it, continuously for 50 us, then with short sleeps between tests
// that leave the core to the computation; `Blocking` calls the blocking collective.
// bench/comm_bench.cpp compares them.
#include <mpi.h>

#include "dist/queued_communicator.h"

namespace starft::dist {

enum class MpiProgress { Blocking, Polling };

class MpiCommunicator : public QueuedCommunicator {
 public:
  // Collective over `parent`: every rank constructs it at the same point.
  MpiCommunicator(MPI_Comm parent, Watchdog* watchdog, MpiProgress progress = MpiProgress::Polling,
                  const std::string& channel_name = "mpi");
  ~MpiCommunicator() override;
  std::string backend() const override { return "mpi"; }
  MPI_Comm comm() const { return comm_; }

 protected:
  void run_all_reduce(const torch::Tensor& tensor, ReduceOp op) override;
  void run_all_gather(const torch::Tensor& output, const torch::Tensor& input) override;
  void run_broadcast(const torch::Tensor& tensor, int root) override;
  void run_barrier() override;

 private:
  // Completes `request` according to the progress mode; throws on an MPI error.
  void complete(MPI_Request& request, const char* what);
  void check_mpi(int rc, const char* what);

  MPI_Comm comm_ = MPI_COMM_NULL;
  MpiProgress progress_;
};

// The MPI datatype for a tensor's dtype (float32, float64, int32, int64, uint8).
MPI_Datatype mpi_datatype(torch::ScalarType type);

}  // namespace starft::dist
