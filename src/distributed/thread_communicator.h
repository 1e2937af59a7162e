#pragma once
// In-process backend: N ranks as N threads of one process, sharing memory (as xgboost's
// in-memory collective). It runs the same QueuedCommunicator machinery as the MPI backend, so
// gradient buckets, the differentiable all-gather and the watchdog can be tested without mpirun.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "distributed/communicator.h"
#include "distributed/watchdog.h"

namespace starft::distributed {

class ThreadGroup {
 public:
  // With comm_timeout_s > 0 every rank has a watchdog; an operation that times out aborts the
  // group (every waiting operation fails with the watchdog's message) and is listed in timeouts().
  explicit ThreadGroup(int size, double comm_timeout_s = 0);
  ~ThreadGroup();
  ThreadGroup(const ThreadGroup&) = delete;
  ThreadGroup& operator=(const ThreadGroup&) = delete;

  int size() const;
  Communicator& comm(int rank);
  // Runs fn on one thread per rank and joins them; rethrows the lowest failing rank's exception.
  void run(const std::function<void(Communicator&)>& fn);
  // Fails every waiting and future operation of the group with `message`.
  void abort(const std::string& message);
  std::vector<StalledOp> timeouts() const;

  struct Shared;

 private:
  std::shared_ptr<Shared> shared_;
  std::vector<std::unique_ptr<Watchdog>> watchdogs_;
  std::vector<std::unique_ptr<Communicator>> comms_;
};

}  // namespace starft::distributed
