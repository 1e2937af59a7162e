#pragma once
// The watchdog's side channel over MPI point-to-point messages on a private communicator.
// Every rank's watchdog thread keeps a receive posted for questions ("how many operations of
// channel c have you started?") and answers them while its collectives are stuck, or while the
// rank computes. A timed-out rank asks everybody and names those that never arrived.
// Needs MPI_THREAD_MULTIPLE: the watchdog thread calls MPI while the communication thread waits.
#include <mpi.h>

#include <array>
#include <memory>
#include <vector>

#include "distributed/watchdog.h"

namespace starft::distributed {

class MpiPeerProgress : public PeerProgress {
 public:
  // Collective over `parent` (duplicates it).
  explicit MpiPeerProgress(MPI_Comm parent);
  ~MpiPeerProgress() override;
  void serve(const EnteredFn& entered) override;
  std::vector<std::optional<uint64_t>> ask(int channel, double wait_s, const EnteredFn& entered) override;

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  int64_t question_ = 0;
  MPI_Request question_request_ = MPI_REQUEST_NULL;
  struct Reply {
    std::array<int64_t, 2> data;  // channel, operations started (-1: unknown channel)
    MPI_Request request;
  };
  std::vector<std::unique_ptr<Reply>> replies_;
  // What ask() sends and receives into; members, since a cancelled or freed request may still
  // touch its buffer after ask() returns.
  int64_t asked_channel_ = 0;
  std::vector<std::array<int64_t, 2>> answers_;
};

}  // namespace starft::distributed
