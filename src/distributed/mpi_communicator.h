#pragma once
// MPI backend for CPU tensors. Collectives run on the communication thread of
// QueuedCommunicator over a private duplicate of the parent communicator, so they never mix
// with other MPI traffic. CUDA tensors (the --comm-backend mpi override) are staged through
// host memory.
//
// Progress: Open MPI's blocking collectives spin on a core while they wait for the slowest
// rank, taking that core from the computation they are meant to overlap. Three ways to run a
// collective (bench/comm_bench.cpp measures them side by side):
//   Blocking       the blocking call.
//   Polling        the non-blocking call, tested continuously for 50 us, then with short
//                  sleeps between tests that leave the core to the computation.
//   PolledArrival  a non-blocking barrier tested as in Polling (waiting for the other ranks
//                  costs no CPU), then the blocking call, which then only moves data: the
//                  blocking algorithms' bandwidth without their spinning wait. The default.
#include <mpi.h>

#include <functional>

#include "distributed/queued_communicator.h"

namespace starft::distributed {

enum class MpiProgress { Blocking, Polling, PolledArrival };

class MpiCommunicator : public QueuedCommunicator {
 public:
  // Collective over `parent`: every rank constructs it at the same point.
  MpiCommunicator(MPI_Comm parent, Watchdog* watchdog, MpiProgress progress = MpiProgress::PolledArrival,
                  const std::string& channel_name = "mpi");
  ~MpiCommunicator() override;
  std::string backend() const override { return "mpi"; }
  std::unique_ptr<Communicator> duplicate(const std::string& name) override;
  MPI_Comm comm() const { return comm_; }

 protected:
  void run_all_reduce(const torch::Tensor& tensor, ReduceOp op) override;
  void run_all_gather(const torch::Tensor& output, const torch::Tensor& input) override;
  void run_broadcast(const torch::Tensor& tensor, int root) override;
  void run_barrier() override;

 private:
  // Runs one collective in the progress mode: `blocking` makes the blocking call, `start` the
  // non-blocking one. Throws on an MPI error.
  void run(const char* what, const std::function<int()>& blocking, const std::function<int(MPI_Request*)>& start);
  // Tests `request` until it completes (spin, then sleep).
  void complete(MPI_Request& request, const char* what);
  // PolledArrival: returns once every rank has reached this collective.
  void await_arrival();
  void check_mpi(int rc, const char* what);

  struct Adopt {};
  // Takes ownership of `comm` (already duplicated).
  MpiCommunicator(Adopt, MPI_Comm comm, Watchdog* watchdog, MpiProgress progress, const std::string& channel_name);

  MPI_Comm comm_ = MPI_COMM_NULL;
  MpiProgress progress_;
};

// The MPI datatype for a tensor's dtype (float32, float64, int32, int64, uint8).
MPI_Datatype mpi_datatype(torch::ScalarType type);

}  // namespace starft::distributed
