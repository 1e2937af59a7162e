#pragma once
// A communicator whose operations run on one dedicated communication thread, in submission
// order. The *_async calls only enqueue, so callers (autograd hooks in the middle of backward)
// never block; the thread runs each blocking collective while computation goes on. Backends
// (MPI, in-process threads) implement the blocking run_* operations.
//
// Each operation is registered with the watchdog (if any) while it runs. After an operation
// fails, every later one fails too: the ranks would no longer agree on what comes next.
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "distributed/communicator.h"
#include "distributed/watchdog.h"

namespace starft::distributed {

class QueuedCommunicator : public Communicator {
 public:
  ~QueuedCommunicator() override;
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  WorkPtr all_reduce_async(const torch::Tensor& tensor, ReduceOp op, const std::string& name) override;
  WorkPtr all_gather_async(const torch::Tensor& output, const torch::Tensor& input, const std::string& name) override;
  WorkPtr broadcast_async(const torch::Tensor& tensor, int root, const std::string& name) override;
  WorkPtr barrier_async(const std::string& name) override;

 protected:
  // `watchdog` may be null. Derived constructors call start() once they are ready.
  QueuedCommunicator(int rank, int size, Watchdog* watchdog, const std::string& channel_name);
  void start();
  // Runs what is queued, then stops the thread. Derived destructors call it first.
  void shutdown();

  // Runs `run` on the communication thread after everything submitted before it.
  WorkPtr submit(const std::string& name, std::function<void()> run);
  Watchdog* watchdog() const { return watchdog_; }

  // Blocking operations, called on the communication thread only.
  virtual void run_all_reduce(const torch::Tensor& tensor, ReduceOp op) = 0;
  virtual void run_all_gather(const torch::Tensor& output, const torch::Tensor& input) = 0;
  virtual void run_broadcast(const torch::Tensor& tensor, int root) = 0;
  virtual void run_barrier() = 0;

 private:
  struct Task;
  void loop();

  const int rank_, size_;
  Watchdog* watchdog_;
  int channel_ = -1;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Task>> queue_;
  bool stopping_ = false;
  std::string failed_;  // message of the first failed operation
  std::thread thread_;
};

}  // namespace starft::distributed
