#include "distributed/watchdog.h"

#include <algorithm>
#include <sstream>

#include "common/error.h"

namespace starft::distributed {

namespace {
std::string join(const std::vector<int>& ranks) {
  if (ranks.empty()) return "none";
  std::ostringstream os;
  for (size_t i = 0; i < ranks.size(); ++i) os << (i ? ", " : "") << ranks[i];
  return os.str();
}
}  // namespace

std::string StalledOp::message() const {
  std::ostringstream os;
  os << "collective '" << name << "' (operation #" << seq << " on the " << channel << " communicator) did not "
     << "complete within " << timeout_s << " s on rank " << rank << "; ranks that never arrived: "
     << (!peers_asked                         ? "unknown"
         : missing.empty() && !silent.empty() ? "none of those that answered"
                                              : join(missing));
  // A rank that does not answer the side channel is dead, cut off (its host's link) or stuck
  // outside MPI.
  if (!silent.empty()) os << "; ranks that did not answer (unreachable or dead): " << join(silent);
  os << ". A rank that skipped this collective, died or is stuck in other work stalls every other rank; "
        "raise --comm-timeout if a rank legitimately spends longer between collectives.";
  return os.str();
}

Watchdog::Watchdog(int rank, int size, double timeout_s, std::unique_ptr<PeerProgress> peers, TimeoutAction on_timeout)
    : rank_(rank), size_(size), peers_(std::move(peers)), on_timeout_(std::move(on_timeout)), timeout_s_(timeout_s) {
  check(timeout_s > 0, "the communication timeout must be positive, got ", timeout_s, " s");
  thread_ = std::thread([this] { loop(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

int Watchdog::add_channel(const std::string& name) {
  std::lock_guard<std::mutex> lock(mutex_);
  channels_.push_back(Channel{name, 0, {}});
  return static_cast<int>(channels_.size()) - 1;
}

uint64_t Watchdog::begin(int channel, const std::string& op_name, std::function<bool()> done) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& ch = channels_.at(channel);
  uint64_t seq = ch.entered++;
  ch.in_flight.push_back(Op{seq, op_name, std::chrono::steady_clock::now(), std::move(done)});
  return seq;
}

void Watchdog::end(int channel, uint64_t seq) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& ops = channels_.at(channel).in_flight;
  auto it = std::find_if(ops.begin(), ops.end(), [&](const Op& op) { return op.seq == seq; });
  if (it != ops.end()) ops.erase(it);
}

uint64_t Watchdog::entered(int channel) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return channels_.at(channel).entered;
}

void Watchdog::set_timeout(double seconds) {
  check(seconds > 0, "the communication timeout must be positive, got ", seconds, " s");
  std::lock_guard<std::mutex> lock(mutex_);
  timeout_s_ = seconds;
  wake_.notify_all();
}

double Watchdog::timeout() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return timeout_s_;
}

void Watchdog::loop() {
  const EnteredFn entered_fn = [this](int channel) { return entered(channel); };
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    // Poll often enough to fire within ~5% of the timeout, and to answer peers promptly.
    auto poll = std::chrono::duration<double>(std::clamp(timeout_s_ / 20, 0.005, 0.1));
    wake_.wait_for(lock, poll);
    if (stopping_) break;
    struct Due {
      int channel;
      Op op;
      double waited;
    };
    std::vector<Due> due;
    const auto now = std::chrono::steady_clock::now();
    for (size_t c = 0; c < channels_.size(); ++c) {
      auto& ops = channels_[c].in_flight;
      // Device operations end when their `done` poll says so.
      ops.erase(std::remove_if(ops.begin(), ops.end(), [](const Op& op) { return op.done && op.done(); }), ops.end());
      for (auto& op : ops) {
        double waited = std::chrono::duration<double>(now - op.start).count();
        if (!op.reported && waited > timeout_s_) {
          op.reported = true;
          due.push_back(Due{static_cast<int>(c), op, waited});
        }
      }
    }
    lock.unlock();
    if (peers_) peers_->serve(entered_fn);
    for (const auto& d : due) report(d.channel, d.op, d.waited);
    lock.lock();
  }
}

void Watchdog::report(int channel, const Op& op, double waited_s) {
  StalledOp stalled;
  stalled.rank = rank_;
  stalled.name = op.name;
  stalled.seq = op.seq;
  stalled.waited_s = waited_s;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stalled.channel = channels_.at(channel).name;
    stalled.timeout_s = timeout_s_;
  }
  if (peers_) {
    stalled.peers_asked = true;
    const EnteredFn entered_fn = [this](int c) { return entered(c); };
    auto answers = peers_->ask(channel, 3.0, entered_fn);
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      if (!answers[r]) {
        stalled.silent.push_back(r);
      } else if (*answers[r] <= op.seq) {
        stalled.missing.push_back(r);
      }
    }
  }
  on_timeout_(stalled);
}

}  // namespace starft::distributed
