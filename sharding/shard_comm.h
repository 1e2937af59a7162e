#pragma once
// The few collective operations a distributed conversion needs, behind one small interface.
// All of starft shard's MPI use is in shard_comm.cpp, so it can move onto the distributed
// runtime (src/distributed) without touching the converters.
#include <memory>
#include <string>
#include <vector>

namespace starft::sharding {

class ShardComm {
 public:
  virtual ~ShardComm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Ranks on this node (to size each rank's decode threads).
  virtual int local_size() const = 0;
  // Every rank's `text` in rank order on rank 0; empty on the other ranks.
  virtual std::vector<std::string> gather(const std::string& text) = 0;
  // Rank 0's `text` on every rank.
  virtual std::string broadcast(const std::string& text) = 0;
};

// One process, no MPI.
std::unique_ptr<ShardComm> single_process_comm();

// True when this process was started by an MPI launcher (mpirun/mpiexec, srun with PMI/PMIx).
bool launched_by_mpi();

// MPI_COMM_WORLD. Initialises MPI (MPI_Init_thread) if nobody has; the returned object then
// finalises it when destroyed normally. When destroyed during an exception it leaves MPI up so
// the caller can MPI_Abort the job (src/cli/main.cpp does) instead of leaving ranks waiting.
std::unique_ptr<ShardComm> mpi_comm();

// mpi_comm() when launched_by_mpi(), else single_process_comm().
std::unique_ptr<ShardComm> default_comm();

}  // namespace starft::sharding
