#include "distributed/queued_communicator.h"

#include "common/error.h"

namespace starft::distributed {

// A queued operation and its Work handle. TaskWork is nested here, not in an anonymous
// namespace: Task has external linkage, and in a unity batch (STARFT_UNITY_BUILD) GCC warns
// about a member whose type has internal linkage (-Wsubobject-linkage).
struct QueuedCommunicator::Task {
  class TaskWork : public Work {
   public:
    void wait() override {
      std::unique_lock<std::mutex> lock(mutex_);
      done_cv_.wait(lock, [&] { return done_; });
      if (error_) std::rethrow_exception(error_);
    }
    bool completed() override {
      std::lock_guard<std::mutex> lock(mutex_);
      return done_;
    }
    void finish(std::exception_ptr error) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        done_ = true;
        error_ = std::move(error);
      }
      done_cv_.notify_all();
    }

   private:
    std::mutex mutex_;
    std::condition_variable done_cv_;
    bool done_ = false;
    std::exception_ptr error_;
  };

  std::string name;
  std::function<void()> run;
  std::shared_ptr<TaskWork> work = std::make_shared<TaskWork>();
};

QueuedCommunicator::QueuedCommunicator(int rank, int size, Watchdog* watchdog, const std::string& channel_name)
    : rank_(rank), size_(size), watchdog_(watchdog) {
  if (watchdog_) channel_ = watchdog_->add_channel(channel_name);
}

QueuedCommunicator::~QueuedCommunicator() { shutdown(); }

void QueuedCommunicator::start() {
  thread_ = std::thread([this] { loop(); });
}

void QueuedCommunicator::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

WorkPtr QueuedCommunicator::submit(const std::string& name, std::function<void()> run) {
  auto task = std::make_shared<Task>();
  task->name = name;
  task->run = std::move(run);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    check(!stopping_, name, " (", backend(), ", rank ", rank_, "): the communicator has been shut down");
    queue_.push_back(task);
  }
  wake_.notify_one();
  return task->work;
}

void QueuedCommunicator::loop() {
  for (;;) {
    std::shared_ptr<Task> task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    std::exception_ptr error;
    if (!failed_.empty()) {
      error = std::make_exception_ptr(Error(task->name + " (" + backend() + ", rank " + std::to_string(rank_) +
                                            ") was not run: an earlier operation failed: " + failed_));
    } else {
      uint64_t seq = watchdog_ ? watchdog_->begin(channel_, task->name) : 0;
      try {
        task->run();
      } catch (const std::exception& e) {
        failed_ = task->name + " (" + backend() + ", rank " + std::to_string(rank_) + "): " + e.what();
        error = std::make_exception_ptr(Error(failed_));
      }
      if (watchdog_) watchdog_->end(channel_, seq);
    }
    task->work->finish(error);
  }
}

WorkPtr QueuedCommunicator::all_reduce_async(const torch::Tensor& tensor, ReduceOp op, const std::string& name) {
  check_collective_tensor(*this, name, tensor);
  check_reduce_op(*this, name, tensor, op);
  if (size_ == 1) return completed_work();  // sum, average and max of one rank: itself
  return submit(name, [this, tensor, op] { run_all_reduce(tensor, op); });
}

WorkPtr QueuedCommunicator::all_gather_async(const torch::Tensor& output, const torch::Tensor& input,
                                             const std::string& name) {
  check_all_gather_shapes(*this, name, output, input);
  return submit(name, [this, output, input] { run_all_gather(output, input); });
}

WorkPtr QueuedCommunicator::broadcast_async(const torch::Tensor& tensor, int root, const std::string& name) {
  check_collective_tensor(*this, name, tensor);
  check_root(*this, name, root);
  if (size_ == 1) return completed_work();
  return submit(name, [this, tensor, root] { run_broadcast(tensor, root); });
}

WorkPtr QueuedCommunicator::barrier_async(const std::string& name) {
  if (size_ == 1) return completed_work();
  return submit(name, [this] { run_barrier(); });
}

}  // namespace starft::distributed
