#include "sharding/shard_comm.h"

#include "distributed/communicator.h"
#include "distributed/text_collectives.h"

namespace starft::sharding {

namespace {

class SingleProcessComm : public ShardComm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_size() const override { return 1; }
  std::vector<std::string> gather(const std::string& text) override { return {text}; }
  std::string broadcast(const std::string& text) override { return text; }
};

class CommunicatorComm : public ShardComm {
 public:
  CommunicatorComm(distributed::Communicator& comm, int local_size) : comm_(comm), local_size_(local_size) {}
  int rank() const override { return comm_.rank(); }
  int size() const override { return comm_.size(); }
  int local_size() const override { return local_size_; }
  std::vector<std::string> gather(const std::string& text) override {
    // An all-gather (the communicators have no gather): the texts are shard summaries, small.
    auto all = distributed::all_gather_text(comm_, text, "shard_gather");
    if (comm_.rank() != 0) all.clear();
    return all;
  }
  std::string broadcast(const std::string& text) override {
    return distributed::broadcast_text(comm_, text, 0, "shard_broadcast");
  }

 private:
  distributed::Communicator& comm_;
  int local_size_;
};

}  // namespace

std::unique_ptr<ShardComm> single_process_comm() { return std::make_unique<SingleProcessComm>(); }

std::unique_ptr<ShardComm> communicator_comm(distributed::Communicator& comm, int local_size) {
  return std::make_unique<CommunicatorComm>(comm, local_size);
}

}  // namespace starft::sharding
