#pragma once
// The distributed runtime of one starft process: MPI start-up, who is who (world and node),
// the device and intra-op threads, the communicators, the watchdog, and the stop flag.
//
// MPI is started with MPI_THREAD_MULTIPLE: collectives run on a communication thread while
// the watchdog thread answers its side channel and may call MPI_Abort, and other code may use
// MPI from the main thread. Under Slurm, a world size that differs from the task count stops
// the job with an explanation (an MPI without PMIx support started singletons).
//
// Failures end the whole job: an uncaught exception or std::terminate on any rank is logged
// with the rank and calls MPI_Abort; a collective that outlives --comm-timeout is reported by
// the watchdog with the ranks that never arrived, then MPI_Abort.
#include <boost/program_options.hpp>
#include <mpi.h>
#include <torch/torch.h>

#include <memory>
#include <string>

#include "distributed/communicator.h"
#include "distributed/watchdog.h"

namespace starft::distributed {

struct RuntimeOptions {
  double comm_timeout_s = 600;        // --comm-timeout
  int threads = 0;                    // --threads; 0: OMP_NUM_THREADS, else cores on node / ranks on node
  std::string comm_backend = "auto";  // --comm-backend: auto (follow the tensors' device), mpi, nccl
  bool handle_signals = true;         // SIGTERM/SIGUSR1 set the stop flag
};

// Adds --comm-timeout, --threads and --comm-backend (with help text) to a command's options.
void add_runtime_options(boost::program_options::options_description& options);
// Adds only --comm-timeout (for commands such as shard that run no LibTorch work: their
// --threads, if any, means something else, and they use the MPI backend alone).
void add_comm_timeout_option(boost::program_options::options_description& options);
// Reads and validates them (those present); throws naming the bad option.
RuntimeOptions runtime_options(const boost::program_options::variables_map& vm);

class Runtime {
 public:
  // Starts MPI (if not yet started), checks the launch, picks the device and thread count,
  // creates the communicators and the watchdog, installs the failure and signal handlers,
  // and logs one line per rank. Once per process.
  static Runtime& start(const RuntimeOptions& options = {}, int* argc = nullptr, char*** argv = nullptr);
  static bool started();
  static Runtime& get();
  // Orderly end: stops the communicators and the watchdog, finalises MPI.
  static void stop();
  // Ends the whole job now: logs `message` with this rank, then MPI_Abort.
  [[noreturn]] static void abort(const std::string& message, int code = 1);

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  const std::string& host() const { return host_; }
  const torch::Device& device() const { return device_; }
  int threads() const { return threads_; }
  int mpi_thread_level() const { return thread_level_; }

  // The communicator for this rank's device (NCCL for CUDA, MPI for the CPU), honouring
  // --comm-backend.
  Communicator& comm();
  Communicator& comm_for(const torch::Device& device);
  // The MPI communicator (CPU tensors; always there).
  Communicator& mpi();
  Watchdog& watchdog() { return *watchdog_; }
  void set_comm_timeout(double seconds);

  // Collective at a step boundary: true on every rank when any rank got SIGTERM/SIGUSR1.
  bool should_stop();

  ~Runtime();

 private:
  Runtime() = default;
  void init(const RuntimeOptions& options, int* argc, char*** argv);

  RuntimeOptions options_;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1, thread_level_ = 0, threads_ = 1;
  bool owns_mpi_ = false;
  std::string host_;
  torch::Device device_{torch::kCPU};
  std::unique_ptr<Watchdog> watchdog_;
  std::unique_ptr<Communicator> mpi_, nccl_;
};

// Starts the runtime for a command; stops it when the command returns normally. When an
// exception leaves the scope the runtime is left running, for the caller's handler to end the
// job with MPI_Abort (a clean MPI_Finalize would wait for ranks that will never come).
class ScopedRuntime {
 public:
  explicit ScopedRuntime(const RuntimeOptions& options = {});
  ~ScopedRuntime();
  ScopedRuntime(const ScopedRuntime&) = delete;
  ScopedRuntime& operator=(const ScopedRuntime&) = delete;
  Runtime& operator*() { return *runtime_; }
  Runtime* operator->() { return runtime_; }

 private:
  Runtime* runtime_;
  int uncaught_;
};

// Checks the Slurm task count against the MPI world size; throws with the explanation.
// Exposed for tests. `launched_by_mpirun`: Open MPI's launcher set the world size itself.
void check_slurm_world_size(int world_size, bool launched_by_mpirun);

// Intra-op threads per rank when nothing is asked for: the CPUs this rank may run on, divided
// among the ranks of the node that may run on exactly the same CPUs. Unpinned ranks get
// cores on node / ranks on node; ranks the launcher pinned get their own cores. Collective
// over `node` (the ranks of one node).
int default_threads(MPI_Comm node);

}  // namespace starft::distributed
