#pragma once
// Collective timeout. Communicators tell the watchdog when each operation starts and ends;
// a thread checks that none runs longer than the timeout (--comm-timeout). When one does, the
// watchdog asks the other ranks, through a side channel that keeps working while the collective
// is stuck, how many operations they have started, and reports the operation's name together
// with the ranks that never arrived. The action then ends the job (MPI_Abort in the runtime).
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace starft::distributed {

// How many operations of a channel this rank has started.
using EnteredFn = std::function<uint64_t(int channel)>;

// The side channel: learns how far the other ranks got.
class PeerProgress {
 public:
  virtual ~PeerProgress() = default;
  // Answers questions from other ranks; the watchdog thread calls it every poll interval.
  virtual void serve(const EnteredFn& entered) = 0;
  // Asks every other rank how many operations of `channel` it has started, waiting at most
  // `wait_s` seconds. Entry r is rank r's answer, nullopt when it did not answer in time;
  // this rank's own entry is its own count.
  virtual std::vector<std::optional<uint64_t>> ask(int channel, double wait_s, const EnteredFn& entered) = 0;
};

// An operation that did not complete in time, and what is known about the other ranks.
struct StalledOp {
  int rank = 0;
  std::string channel;  // the communicator, e.g. "mpi"
  std::string name;     // the operation, e.g. "grad_bucket_3"
  uint64_t seq = 0;     // 0-based index of the operation on its channel
  double waited_s = 0;
  double timeout_s = 0;
  std::vector<int> missing;  // ranks that never started this operation
  std::vector<int> silent;   // ranks that did not answer the side channel
  bool peers_asked = false;  // false: there was no side channel, the missing ranks are unknown
  std::string message() const;
};

class Watchdog {
 public:
  using TimeoutAction = std::function<void(const StalledOp&)>;

  // `peers` may be null (then the missing ranks are unknown). `on_timeout` runs on the
  // watchdog's thread; if it returns, the operation is not reported again.
  Watchdog(int rank, int size, double timeout_s, std::unique_ptr<PeerProgress> peers, TimeoutAction on_timeout);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Every rank must add the same channels in the same order.
  int add_channel(const std::string& name);
  // Marks the start of the next operation of `channel` and returns its sequence number.
  // With `done`, the watchdog polls it and ends the operation itself (device streams).
  uint64_t begin(int channel, const std::string& op_name, std::function<bool()> done = {});
  void end(int channel, uint64_t seq);
  uint64_t entered(int channel) const;

  void set_timeout(double seconds);
  double timeout() const;

 private:
  struct Op {
    uint64_t seq;
    std::string name;
    std::chrono::steady_clock::time_point start;
    std::function<bool()> done;
    bool reported = false;
  };
  struct Channel {
    std::string name;
    uint64_t entered = 0;
    std::deque<Op> in_flight;
  };
  void loop();
  void report(int channel, const Op& op, double waited_s);

  const int rank_, size_;
  std::unique_ptr<PeerProgress> peers_;
  TimeoutAction on_timeout_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Channel> channels_;
  double timeout_s_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace starft::distributed
