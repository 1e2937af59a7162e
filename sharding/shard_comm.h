#pragma once
// The few collective operations a distributed conversion needs, behind one small interface, so
// the converters stay free of MPI and LibTorch. A multi-rank conversion runs them on the
// distributed runtime's MPI communicator (src/distributed/runtime.h), as every other command
// does: the same start-up and Slurm check, and the watchdog that ends the job naming the ranks
// that never arrived when a collective outlives --comm-timeout.
#include <memory>
#include <string>
#include <vector>

namespace starft::distributed {
class Communicator;
}

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

// One process, no communication (tests, and code that converts without the runtime).
std::unique_ptr<ShardComm> single_process_comm();

// Over `comm` (normally distributed::Runtime::mpi()), which must outlive the result;
// `local_size`: the ranks on this node (Runtime::local_size()).
std::unique_ptr<ShardComm> communicator_comm(distributed::Communicator& comm, int local_size);

}  // namespace starft::sharding
