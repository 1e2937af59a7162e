#include "distributed/mpi_peer_progress.h"

#include <chrono>
#include <thread>

#include "common/error.h"

namespace starft::distributed {

namespace {
constexpr int kQuestionTag = 1;
constexpr int kAnswerTag = 2;
}  // namespace

MpiPeerProgress::MpiPeerProgress(MPI_Comm parent) {
  check(MPI_Comm_dup(parent, &comm_) == MPI_SUCCESS, "MPI_Comm_dup failed for the watchdog's side channel");
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

MpiPeerProgress::~MpiPeerProgress() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (question_request_ != MPI_REQUEST_NULL) {
    MPI_Cancel(&question_request_);
    MPI_Wait(&question_request_, MPI_STATUS_IGNORE);
  }
  // Answers are a few bytes (sent eagerly); let MPI finish them in the background.
  for (auto& reply : replies_) {
    if (reply->request != MPI_REQUEST_NULL) MPI_Request_free(&reply->request);
  }
  MPI_Comm_free(&comm_);
}

void MpiPeerProgress::serve(const EnteredFn& entered) {
  for (;;) {
    if (question_request_ == MPI_REQUEST_NULL) {
      MPI_Irecv(&question_, 1, MPI_INT64_T, MPI_ANY_SOURCE, kQuestionTag, comm_, &question_request_);
    }
    int arrived = 0;
    MPI_Status status;
    MPI_Test(&question_request_, &arrived, &status);
    if (!arrived) break;
    auto reply = std::make_unique<Reply>();
    reply->data[0] = question_;
    try {
      reply->data[1] = static_cast<int64_t>(entered(static_cast<int>(question_)));
    } catch (const std::exception&) {
      reply->data[1] = -1;  // a channel this rank does not have
    }
    MPI_Isend(reply->data.data(), 2, MPI_INT64_T, status.MPI_SOURCE, kAnswerTag, comm_, &reply->request);
    replies_.push_back(std::move(reply));
  }
  // Forget answers that have been delivered.
  for (auto it = replies_.begin(); it != replies_.end();) {
    int sent = 0;
    MPI_Test(&(*it)->request, &sent, MPI_STATUS_IGNORE);
    it = sent ? replies_.erase(it) : it + 1;
  }
}

std::vector<std::optional<uint64_t>> MpiPeerProgress::ask(int channel, double wait_s, const EnteredFn& entered) {
  std::vector<std::optional<uint64_t>> answers(size_);
  answers[rank_] = entered(channel);
  asked_channel_ = channel;
  answers_.assign(size_, {-1, -1});
  auto& buffers = answers_;
  std::vector<MPI_Request> sends(size_, MPI_REQUEST_NULL), receives(size_, MPI_REQUEST_NULL);
  for (int peer = 0; peer < size_; ++peer) {
    if (peer == rank_) continue;
    MPI_Irecv(buffers[peer].data(), 2, MPI_INT64_T, peer, kAnswerTag, comm_, &receives[peer]);
    MPI_Isend(&asked_channel_, 1, MPI_INT64_T, peer, kQuestionTag, comm_, &sends[peer]);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_s);
  int pending = size_ - 1;
  while (pending > 0 && std::chrono::steady_clock::now() < deadline) {
    serve(entered);  // peers that time out at the same moment ask us too
    for (int peer = 0; peer < size_; ++peer) {
      if (receives[peer] == MPI_REQUEST_NULL) continue;
      int done = 0;
      MPI_Test(&receives[peer], &done, MPI_STATUS_IGNORE);
      if (!done) continue;
      --pending;
      if (buffers[peer][0] == channel && buffers[peer][1] >= 0) answers[peer] = static_cast<uint64_t>(buffers[peer][1]);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (int peer = 0; peer < size_; ++peer) {
    if (receives[peer] != MPI_REQUEST_NULL) {
      MPI_Cancel(&receives[peer]);
      MPI_Request_free(&receives[peer]);
    }
    if (sends[peer] != MPI_REQUEST_NULL) MPI_Request_free(&sends[peer]);
  }
  return answers;
}

}  // namespace starft::distributed
