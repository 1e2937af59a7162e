#include "distributed/mpi_communicator.h"

#include <sys/prctl.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <thread>

#include "common/error.h"

namespace starft::distributed {

namespace {
int comm_rank(MPI_Comm comm) {
  int r = 0;
  MPI_Comm_rank(comm, &r);
  return r;
}
int comm_size(MPI_Comm comm) {
  int s = 1;
  MPI_Comm_size(comm, &s);
  return s;
}
MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Avg:
      return MPI_SUM;
    case ReduceOp::Max:
      return MPI_MAX;
  }
  return MPI_SUM;
}
// MPI counts are ints: longer buffers travel in chunks of this many elements.
constexpr int64_t kMaxChunk = int64_t{1} << 30;

// CUDA tensors are staged through host memory; CPU tensors are used in place.
torch::Tensor host_view(const torch::Tensor& t) { return t.is_cuda() ? t.to(torch::kCPU) : t; }
void copy_back(const torch::Tensor& t, const torch::Tensor& host) {
  if (t.is_cuda()) t.copy_(host);
}
}  // namespace

MPI_Datatype mpi_datatype(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat:
      return MPI_FLOAT;
    case torch::kDouble:
      return MPI_DOUBLE;
    case torch::kInt:
      return MPI_INT32_T;
    case torch::kLong:
      return MPI_INT64_T;
    case torch::kByte:
      return MPI_UINT8_T;
    default:
      fail("the MPI backend has no datatype for ", type, " (use float32, float64, int32, int64 or uint8)");
  }
}

MpiCommunicator::MpiCommunicator(MPI_Comm parent, Watchdog* watchdog, MpiProgress progress,
                                 const std::string& channel_name)
    : QueuedCommunicator(comm_rank(parent), comm_size(parent), watchdog, channel_name), progress_(progress) {
  check(MPI_Comm_dup(parent, &comm_) == MPI_SUCCESS, "MPI_Comm_dup failed on rank ", rank());
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  start();
}

MpiCommunicator::MpiCommunicator(Adopt, MPI_Comm comm, Watchdog* watchdog, MpiProgress progress,
                                 const std::string& channel_name)
    : QueuedCommunicator(comm_rank(comm), comm_size(comm), watchdog, channel_name), comm_(comm), progress_(progress) {
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  start();
}

std::unique_ptr<Communicator> MpiCommunicator::duplicate(const std::string& name) {
  // MPI_Comm_dup is a collective on comm_: it runs on the communication thread, in turn.
  MPI_Comm dup = MPI_COMM_NULL;
  submit("duplicate:" + name, [&] { check_mpi(MPI_Comm_dup(comm_, &dup), "MPI_Comm_dup"); })->wait();
  return std::unique_ptr<Communicator>(new MpiCommunicator(Adopt{}, dup, watchdog(), progress_, name));
}

MpiCommunicator::~MpiCommunicator() {
  shutdown();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MpiCommunicator::check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail(what, " failed: ", std::string(text, len));
}

void MpiCommunicator::complete(MPI_Request& request, const char* what) {
  // Sleeps of a few microseconds need a small timer slack (Linux rounds sleeps up by 50 us by
  // default); it is per thread, and this is the communication thread.
  static thread_local const bool slack = [] { return prctl(PR_SET_TIMERSLACK, 1000UL) == 0; }();
  (void)slack;
  // Test continuously for the first 50 us (short collectives complete at MPI's own latency),
  // then with a sleep between tests that doubles up to 100 us, leaving the core to the
  // computation while the slowest rank catches up.
  const auto start = std::chrono::steady_clock::now();
  auto sleep = std::chrono::microseconds(4);
  for (;;) {
    int done = 0;
    MPI_Status status;
    check_mpi(MPI_Test(&request, &done, &status), what);
    if (done) return;
    if (std::chrono::steady_clock::now() - start < std::chrono::microseconds(50)) continue;
    std::this_thread::sleep_for(sleep);
    sleep = std::min(sleep * 2, std::chrono::microseconds(100));
  }
}

void MpiCommunicator::await_arrival() {
  MPI_Request request;
  check_mpi(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier");
  complete(request, "MPI_Ibarrier");
}

void MpiCommunicator::run(const char* what, const std::function<int()>& blocking,
                          const std::function<int(MPI_Request*)>& start) {
  if (progress_ == MpiProgress::Polling) {
    MPI_Request request;
    check_mpi(start(&request), what);
    complete(request, what);
  } else {
    check_mpi(blocking(), what);
  }
}

namespace {
// Calls fn(buffer, count) on consecutive pieces of `host` of at most kMaxChunk elements (MPI
// counts are int).
void for_each_chunk(const torch::Tensor& host, const std::function<void(void*, int)>& fn) {
  auto* base = static_cast<char*>(host.data_ptr());
  const int64_t n = host.numel(), elem = host.element_size();
  for (int64_t start = 0; start < n; start += kMaxChunk) {
    fn(base + start * elem, static_cast<int>(std::min(kMaxChunk, n - start)));
  }
}
}  // namespace

void MpiCommunicator::run_all_reduce(const torch::Tensor& tensor, ReduceOp op) {
  auto host = host_view(tensor);
  auto type = mpi_datatype(host.scalar_type());
  if (progress_ == MpiProgress::PolledArrival) await_arrival();
  for_each_chunk(host, [&](void* buf, int count) {
    run(
        "MPI_Allreduce", [&] { return MPI_Allreduce(MPI_IN_PLACE, buf, count, type, mpi_op(op), comm_); },
        [&](MPI_Request* r) { return MPI_Iallreduce(MPI_IN_PLACE, buf, count, type, mpi_op(op), comm_, r); });
  });
  if (op == ReduceOp::Avg) host.div_(size());
  copy_back(tensor, host);
}

void MpiCommunicator::run_all_gather(const torch::Tensor& output, const torch::Tensor& input) {
  auto in = host_view(input);
  auto out = host_view(output);
  check(in.numel() <= INT_MAX, "an all-gather block of ", in.numel(), " elements exceeds MPI's count limit (", INT_MAX,
        "); gather smaller blocks");
  auto type = mpi_datatype(in.scalar_type());
  int count = static_cast<int>(in.numel());
  if (progress_ == MpiProgress::PolledArrival) await_arrival();
  run(
      "MPI_Allgather", [&] { return MPI_Allgather(in.data_ptr(), count, type, out.data_ptr(), count, type, comm_); },
      [&](MPI_Request* r) {
        return MPI_Iallgather(in.data_ptr(), count, type, out.data_ptr(), count, type, comm_, r);
      });
  copy_back(output, out);
}

void MpiCommunicator::run_broadcast(const torch::Tensor& tensor, int root) {
  auto host = host_view(tensor);
  auto type = mpi_datatype(host.scalar_type());
  if (progress_ == MpiProgress::PolledArrival) await_arrival();
  for_each_chunk(host, [&](void* buf, int count) {
    run(
        "MPI_Bcast", [&] { return MPI_Bcast(buf, count, type, root, comm_); },
        [&](MPI_Request* r) { return MPI_Ibcast(buf, count, type, root, comm_, r); });
  });
  copy_back(tensor, host);
}

void MpiCommunicator::run_barrier() {
  if (progress_ == MpiProgress::PolledArrival) {
    await_arrival();
    return;
  }
  run(
      "MPI_Barrier", [&] { return MPI_Barrier(comm_); }, [&](MPI_Request* r) { return MPI_Ibarrier(comm_, r); });
}

}  // namespace starft::distributed
