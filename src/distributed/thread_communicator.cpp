#include "distributed/thread_communicator.h"

#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "distributed/queued_communicator.h"

namespace starft::distributed {

struct ThreadGroup::Shared {
  explicit Shared(int n) : size(n), slots(n) {}
  const int size;
  std::mutex mutex;
  std::condition_variable cv;
  uint64_t generation = 0;
  int arrived = 0;
  std::string aborted;               // non-empty once the group is aborted
  std::vector<torch::Tensor> slots;  // each rank's contribution to the current operation
  std::vector<Watchdog*> watchdogs;  // for the side channel (how far did each rank get?)
  std::vector<StalledOp> timeouts;
  std::shared_ptr<Shared> pending_child;        // handed from rank 0 to the others by duplicate()
  std::vector<std::weak_ptr<Shared>> children;  // aborted with this group

  void abort(const std::string& message) {
    std::vector<std::shared_ptr<Shared>> live;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (aborted.empty()) aborted = message;
      for (auto& c : children) {
        if (auto child = c.lock()) live.push_back(child);
      }
    }
    cv.notify_all();
    for (auto& child : live) child->abort(message);
  }

  // All ranks meet here; throws once the group is aborted.
  void barrier() {
    std::unique_lock<std::mutex> lock(mutex);
    if (!aborted.empty()) fail(aborted);
    uint64_t gen = generation;
    if (++arrived == size) {
      arrived = 0;
      ++generation;
      cv.notify_all();
    } else {
      cv.wait(lock, [&] { return generation != gen || !aborted.empty(); });
      if (generation == gen) fail(aborted);
    }
  }
};

namespace {

class ThreadPeerProgress : public PeerProgress {
 public:
  explicit ThreadPeerProgress(std::shared_ptr<ThreadGroup::Shared> shared) : shared_(std::move(shared)) {}
  void serve(const EnteredFn&) override {}  // the others read our counters directly
  std::vector<std::optional<uint64_t>> ask(int channel, double, const EnteredFn&) override {
    std::vector<std::optional<uint64_t>> answers;
    for (auto* w : shared_->watchdogs) answers.emplace_back(w->entered(channel));
    return answers;
  }

 private:
  std::shared_ptr<ThreadGroup::Shared> shared_;
};

class ThreadCommunicator : public QueuedCommunicator {
 public:
  ThreadCommunicator(int rank, std::shared_ptr<ThreadGroup::Shared> shared, Watchdog* watchdog,
                     const std::string& channel_name = "thread")
      : QueuedCommunicator(rank, shared->size, watchdog, channel_name), shared_(std::move(shared)) {
    start();
  }
  ~ThreadCommunicator() override { shutdown(); }
  std::string backend() const override { return "thread"; }

  std::unique_ptr<Communicator> duplicate(const std::string& name) override {
    std::shared_ptr<ThreadGroup::Shared> child;
    submit("duplicate:" + name, [&] {
      if (rank() == 0) {
        auto made = std::make_shared<ThreadGroup::Shared>(size());
        made->watchdogs = shared_->watchdogs;
        std::lock_guard<std::mutex> lock(shared_->mutex);
        shared_->pending_child = made;
        shared_->children.push_back(made);
        if (!shared_->aborted.empty()) made->aborted = shared_->aborted;
      }
      shared_->barrier();
      {
        std::lock_guard<std::mutex> lock(shared_->mutex);
        child = shared_->pending_child;
      }
      shared_->barrier();  // rank 0 may hand out the next one only after everyone took this one
    })->wait();
    return std::make_unique<ThreadCommunicator>(rank(), child, watchdog(), name);
  }

 protected:
  void run_all_reduce(const torch::Tensor& tensor, ReduceOp op) override {
    shared_->slots[rank()] = tensor;
    shared_->barrier();
    // Every rank reduces in rank order, so all get bit-identical results.
    torch::Tensor result = shared_->slots[0].clone();
    for (int r = 1; r < size(); ++r) {
      if (op == ReduceOp::Max) {
        result = torch::maximum(result, shared_->slots[r]);
      } else {
        result.add_(shared_->slots[r]);
      }
    }
    if (op == ReduceOp::Avg) result.div_(size());
    shared_->barrier();  // nobody writes before everybody has read
    tensor.copy_(result);
  }
  void run_all_gather(const torch::Tensor& output, const torch::Tensor& input) override {
    shared_->slots[rank()] = input;
    shared_->barrier();
    auto flat = output.view({size(), -1});
    for (int r = 0; r < size(); ++r) flat[r].copy_(shared_->slots[r].reshape({-1}));
    shared_->barrier();
  }
  void run_broadcast(const torch::Tensor& tensor, int root) override {
    shared_->slots[rank()] = tensor;
    shared_->barrier();
    torch::Tensor value = rank() == root ? tensor : shared_->slots[root].clone();
    shared_->barrier();
    if (rank() != root) tensor.copy_(value);
  }
  void run_barrier() override { shared_->barrier(); }

 private:
  std::shared_ptr<ThreadGroup::Shared> shared_;
};

}  // namespace

ThreadGroup::ThreadGroup(int size, double comm_timeout_s) : shared_(std::make_shared<Shared>(size)) {
  check(size >= 1, "a thread group needs at least one rank, got ", size);
  if (comm_timeout_s > 0) {
    for (int r = 0; r < size; ++r) {
      auto shared = shared_;
      watchdogs_.push_back(std::make_unique<Watchdog>(r, size, comm_timeout_s,
                                                      std::make_unique<ThreadPeerProgress>(shared_),
                                                      [this, shared](const StalledOp& stalled) {
                                                        {
                                                          std::lock_guard<std::mutex> lock(shared->mutex);
                                                          shared->timeouts.push_back(stalled);
                                                        }
                                                        abort(stalled.message());
                                                      }));
      shared_->watchdogs.push_back(watchdogs_.back().get());
    }
  }
  for (int r = 0; r < size; ++r) {
    comms_.push_back(
        std::make_unique<ThreadCommunicator>(r, shared_, watchdogs_.empty() ? nullptr : watchdogs_[r].get()));
  }
}

ThreadGroup::~ThreadGroup() {
  abort("the thread group is being destroyed");
  comms_.clear();
  watchdogs_.clear();
}

int ThreadGroup::size() const { return shared_->size; }

Communicator& ThreadGroup::comm(int rank) {
  check(rank >= 0 && rank < size(), "rank ", rank, " is not in a thread group of ", size());
  return *comms_[rank];
}

void ThreadGroup::run(const std::function<void(Communicator&)>& fn) {
  std::vector<std::exception_ptr> errors(size());
  std::vector<std::thread> threads;
  for (int r = 0; r < size(); ++r) {
    threads.emplace_back([&, r] {
      try {
        fn(*comms_[r]);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

void ThreadGroup::abort(const std::string& message) { shared_->abort(message); }

std::vector<StalledOp> ThreadGroup::timeouts() const {
  std::lock_guard<std::mutex> lock(shared_->mutex);
  return shared_->timeouts;
}

}  // namespace starft::distributed
