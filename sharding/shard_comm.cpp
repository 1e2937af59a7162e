#include "sharding/shard_comm.h"

#include <mpi.h>

#include <cstdlib>
#include <exception>

#include "common/error.h"
#include "common/log.h"

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

void mpi_check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    fail("MPI ", what, " failed: ", std::string(msg, len));
  }
}

class MpiComm : public ShardComm {
 public:
  MpiComm() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns_mpi_ = true;
    }
    // A communicator of our own, so these collectives never interleave with other users of
    // MPI_COMM_WORLD (such as the distributed runtime's communication thread).
    mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm local;
    mpi_check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
    init_logging(rank_);
  }
  ~MpiComm() override {
    // During an exception MPI stays up so the caller can MPI_Abort every rank.
    if (std::uncaught_exceptions() > 0) return;
    MPI_Comm_free(&comm_);
    if (owns_mpi_) MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_size_; }

  std::vector<std::string> gather(const std::string& text) override {
    int len = static_cast<int>(text.size());
    std::vector<int> lens(rank_ == 0 ? size_ : 0);
    mpi_check(MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, comm_), "MPI_Gather");
    std::vector<int> displs(lens.size(), 0);
    std::string all;
    if (rank_ == 0) {
      for (size_t r = 1; r < lens.size(); ++r) displs[r] = displs[r - 1] + lens[r - 1];
      all.resize(displs.empty() ? 0 : displs.back() + lens.back());
    }
    mpi_check(MPI_Gatherv(text.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, 0, comm_),
              "MPI_Gatherv");
    std::vector<std::string> out;
    for (size_t r = 0; r < lens.size(); ++r) out.push_back(all.substr(displs[r], lens[r]));
    return out;
  }

  std::string broadcast(const std::string& text) override {
    long long len = static_cast<long long>(text.size());
    mpi_check(MPI_Bcast(&len, 1, MPI_LONG_LONG, 0, comm_), "MPI_Bcast");
    std::string out = rank_ == 0 ? text : std::string(static_cast<size_t>(len), '\0');
    mpi_check(MPI_Bcast(out.data(), static_cast<int>(len), MPI_CHAR, 0, comm_), "MPI_Bcast");
    return out;
  }

 private:
  bool owns_mpi_ = false;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_size_ = 1;
};

}  // namespace

std::unique_ptr<ShardComm> single_process_comm() { return std::make_unique<SingleProcessComm>(); }

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"}) {
    if (std::getenv(var)) return true;
  }
  return false;
}

std::unique_ptr<ShardComm> mpi_comm() { return std::make_unique<MpiComm>(); }

std::unique_ptr<ShardComm> default_comm() { return launched_by_mpi() ? mpi_comm() : single_process_comm(); }

}  // namespace starft::sharding
