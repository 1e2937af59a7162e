#include "distributed/runtime.h"

#include <sched.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <exception>

#include "common/error.h"
#include "common/log.h"
#include "distributed/mpi_communicator.h"
#include "distributed/mpi_peer_progress.h"
#include "distributed/nccl_communicator.h"
#include "distributed/stop_signal.h"

namespace starft::distributed {

namespace po = boost::program_options;

namespace {

// Leaked on purpose: a runtime left running after an exception must not be torn down by static
// destructors while its threads run; the process ends through MPI_Abort or exit.
Runtime*& instance() {
  static Runtime* runtime = nullptr;
  return runtime;
}

const char* thread_level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE:
      return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED:
      return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED:
      return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE:
      return "MPI_THREAD_MULTIPLE";
  }
  return "unknown";
}

// The start-up line is logged on every rank, although ranks other than 0 log warnings only:
// it goes straight to the logger's sinks.
void log_on_every_rank(const std::string& text) {
  auto logger = spdlog::default_logger();
  spdlog::details::log_msg msg(logger->name(), spdlog::level::info, text);
  for (auto& sink : logger->sinks()) sink->log(msg);
  logger->flush();
}

void on_terminate() {
  std::string what = "no exception";
  if (auto error = std::current_exception()) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what = "an exception of unknown type";
    }
  }
  Runtime::abort("std::terminate called (" + what + ")");
}

}  // namespace

void add_comm_timeout_option(po::options_description& options) {
  options.add_options()("comm-timeout", po::value<double>()->default_value(600),
                        "seconds a collective may take before the job is ended with the names of the ranks that never "
                        "arrived");
}

void add_runtime_options(po::options_description& options) {
  add_comm_timeout_option(options);
  options.add_options()(
      "threads", po::value<int>()->default_value(0),
      "intra-op threads per rank; 0: OMP_NUM_THREADS if set, else the rank's share of the node's cores")(
      "comm-backend", po::value<std::string>()->default_value("auto"),
      "collective backend: auto (NCCL for CUDA tensors, MPI for CPU tensors), mpi, or nccl");
}

RuntimeOptions runtime_options(const po::variables_map& vm) {
  RuntimeOptions o;
  if (vm.count("comm-timeout")) o.comm_timeout_s = vm["comm-timeout"].as<double>();
  if (vm.count("threads")) o.threads = vm["threads"].as<int>();
  if (vm.count("comm-backend")) o.comm_backend = vm["comm-backend"].as<std::string>();
  check(o.comm_timeout_s > 0, "--comm-timeout must be a positive number of seconds, got ", o.comm_timeout_s);
  check(o.threads >= 0, "--threads must be >= 0 (0: automatic), got ", o.threads);
  check(o.comm_backend == "auto" || o.comm_backend == "mpi" || o.comm_backend == "nccl",
        "--comm-backend must be auto, mpi or nccl, got '", o.comm_backend, "'");
  return o;
}

void check_slurm_world_size(int world_size, bool launched_by_mpirun) {
  // srun sets SLURM_STEP_NUM_TASKS for its step; SLURM_NTASKS describes the allocation.
  const char* step = std::getenv("SLURM_STEP_NUM_TASKS");
  const char* ntasks = std::getenv("SLURM_NTASKS");
  const char* value = step ? step : ntasks;
  if (!value || launched_by_mpirun) return;  // mpirun's -np decides the world size
  const int expected = std::atoi(value);
  if (expected <= 0 || expected == world_size) return;
  fail(
      "Slurm started ", expected, " tasks (", step ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS", "=", value,
      ") but MPI sees a world of ", world_size, " rank", world_size == 1 ? "" : "s",
      ". This happens when srun starts an MPI program without PMIx (or PMI2) support: every task "
      "initialises MPI as a singleton and they would run ",
      expected,
      " unrelated copies, all writing the same output files. Launch with `srun --mpi=pmix starft ...` (`srun --mpi=list` shows what this "
      "Slurm supports), or with `mpirun -np ",
      expected, " starft ...` inside the allocation.");
}

int default_threads(MPI_Comm node) {
  cpu_set_t mine;
  CPU_ZERO(&mine);
  int cpus = 0;
  if (sched_getaffinity(0, sizeof(mine), &mine) == 0) cpus = CPU_COUNT(&mine);
  if (cpus <= 0) cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  int node_size = 1;
  MPI_Comm_size(node, &node_size);
  std::vector<cpu_set_t> all(node_size);
  MPI_Allgather(&mine, sizeof(cpu_set_t), MPI_BYTE, all.data(), sizeof(cpu_set_t), MPI_BYTE, node);
  int sharing = 0;
  for (auto& other : all) sharing += CPU_EQUAL(&other, &mine) ? 1 : 0;
  return std::max(1, cpus / std::max(1, sharing));
}

Runtime& Runtime::start(const RuntimeOptions& options, int* argc, char*** argv) {
  check(!instance(), "the distributed runtime was started twice in one process");
  auto* runtime = new Runtime();
  instance() = runtime;
  runtime->init(options, argc, argv);
  return *runtime;
}

bool Runtime::started() { return instance() != nullptr; }

Runtime& Runtime::get() {
  check(instance() != nullptr, "the distributed runtime is not started (call distributed::Runtime::start first)");
  return *instance();
}

void Runtime::stop() {
  Runtime* runtime = instance();
  if (!runtime) return;
  delete runtime;
  instance() = nullptr;
}

void Runtime::abort(const std::string& message, int code) {
  int initialized = 0, finalized = 0, rank = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  spdlog::error("{} -- ending the job from rank {}", message, rank);
  spdlog::default_logger()->flush();
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

void Runtime::init(const RuntimeOptions& options, int* argc, char*** argv) {
  options_ = options;
  check(options.comm_timeout_s > 0, "the communication timeout must be positive, got ", options.comm_timeout_s);
  // Read before MPI_Init: a singleton start may set Open MPI's variables itself.
  const bool launched_by_mpirun = std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    check(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &thread_level_) == MPI_SUCCESS, "MPI_Init_thread failed");
    owns_mpi_ = true;
  } else {
    MPI_Query_thread(&thread_level_);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  init_logging(rank_);
  check_slurm_world_size(size_, launched_by_mpirun);
  check(thread_level_ >= MPI_THREAD_SERIALIZED, "rank ", rank_, ": MPI provides only ",
        thread_level_name(thread_level_),
        "; starft runs collectives on a communication thread and needs "
        "MPI_THREAD_MULTIPLE (MPI_THREAD_SERIALIZED at least). Use an MPI built with thread support.");

  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_size(node, &local_size_);
  const int automatic_threads = default_threads(node);
  MPI_Comm_free(&node);

  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_Get_processor_name(name, &len);
  host_.assign(name, len);

  threads_ = options.threads;
  if (threads_ == 0) {
    const char* omp = std::getenv("OMP_NUM_THREADS");
    threads_ = omp && std::atoi(omp) > 0 ? std::atoi(omp) : automatic_threads;
  }
  torch::set_num_threads(threads_);
  device_ = select_device(local_rank_);

  const bool multiple = thread_level_ >= MPI_THREAD_MULTIPLE;
  if (!multiple && rank_ == 0) {
    spdlog::warn("MPI provides {} only: a collective timeout cannot name the ranks that never arrived",
                 thread_level_name(thread_level_));
  }
  std::unique_ptr<PeerProgress> peers;
  if (multiple && size_ > 1) peers = std::make_unique<MpiPeerProgress>(MPI_COMM_WORLD);
  watchdog_ = std::make_unique<Watchdog>(rank_, size_, options.comm_timeout_s, std::move(peers),
                                         [](const StalledOp& stalled) { Runtime::abort(stalled.message()); });
  mpi_ = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, watchdog_.get());
  if (options.comm_backend == "nccl" && !device_.is_cuda()) {
    fail("--comm-backend nccl needs a CUDA device, but rank ", rank_, " on ", host_, " has none");
  }
  if (device_.is_cuda() && options.comm_backend != "mpi") {
    nccl_ = make_nccl_communicator(MPI_COMM_WORLD, device_, watchdog_.get());
  }

  std::set_terminate(on_terminate);
  if (options.handle_signals) install_stop_handlers();

  log_on_every_rank(
      fmt::format("rank {}/{} (local {}/{}) on {}: device {}, {} intra-op thread{}, {}, {} backend, comm timeout {} s",
                  rank_, size_, local_rank_, local_size_, host_, device_.str(), threads_, threads_ == 1 ? "" : "s",
                  thread_level_name(thread_level_), nccl_ ? "nccl" : "mpi", options.comm_timeout_s));
}

Runtime::~Runtime() {
  nccl_.reset();
  mpi_.reset();
  watchdog_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_mpi_ && !finalized) MPI_Finalize();
}

Communicator& Runtime::comm() { return comm_for(device_); }

Communicator& Runtime::comm_for(const torch::Device& device) {
  if (options_.comm_backend == "mpi" || (options_.comm_backend == "auto" && !device.is_cuda())) return *mpi_;
  check(nccl_ != nullptr, "rank ", rank_, ": tensors on ", device,
        " need the NCCL backend, which is not running "
        "(this rank's device is ",
        device_, "); use --comm-backend mpi to stage them through host memory");
  return *nccl_;
}

Communicator& Runtime::mpi() { return *mpi_; }

void Runtime::set_comm_timeout(double seconds) {
  watchdog_->set_timeout(seconds);
  options_.comm_timeout_s = seconds;
}

bool Runtime::should_stop() { return distributed::should_stop(*mpi_); }

ScopedRuntime::ScopedRuntime(const RuntimeOptions& options)
    : runtime_(&Runtime::start(options)), uncaught_(std::uncaught_exceptions()) {}

ScopedRuntime::~ScopedRuntime() {
  if (std::uncaught_exceptions() > uncaught_ && Runtime::started() && Runtime::get().size() > 1) return;
  Runtime::stop();
}

}  // namespace starft::distributed
