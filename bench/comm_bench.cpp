// All-reduce bandwidth, nccl-tests style: for sizes from 4 KiB to 256 MiB, the time of one
// float32 all-reduce (sum) and the bus bandwidth busbw = algbw * 2 (n - 1) / n, where
// algbw = bytes / time. Side by side in one run: starft's MPI communicator in its three
// progress modes (src/distributed/mpi_communicator.h: polled arrival then blocking transfer, the
// default; non-blocking collective polled; blocking), and a plain MPI_Allreduce from the calling
// thread (the floor).
//
//   mpirun -np 2 --bind-to none bench/comm_bench [--max-mib 256] [--reps 3] [--threads 1]
#include <mpi.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>

#include "distributed/mpi_communicator.h"
#include "distributed/runtime.h"
#include "bench_runtime.h"
#include "bench_main.h"

using namespace starft;
using namespace starft::distributed;
namespace po = boost::program_options;

namespace {

// Seconds per operation: the slowest rank's time of `iters` operations, best of `reps` runs
// (the machine may be shared; the best run is the one least disturbed).
double time_per_op(int iters, int reps, const std::function<void()>& op) {
  op();  // warm-up
  op();
  double best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    MPI_Barrier(MPI_COMM_WORLD);
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) op();
    double local = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
    double slowest = 0;
    MPI_Allreduce(&local, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    best = std::min(best, slowest);
  }
  return best;
}

}  // namespace

STARFT_BENCH_MAIN(comm_bench) {
  po::options_description options("comm_bench options");
  options.add_options()("help,h", "show this help")("min-kib", po::value<int64_t>()->default_value(4),
                                                    "smallest message, KiB")(
      "max-mib", po::value<int64_t>()->default_value(256), "largest message, MiB (sizes grow 4x)")(
      "reps", po::value<int>()->default_value(3), "timed runs per size and mode; the best is reported");
  po::variables_map vm;
  Runtime* started = bench::start_bench(&argc, &argv, options, "comm_bench", vm);
  if (!started) return 0;
  auto& rt = *started;
  auto& arrival = rt.mpi();  // PolledArrival
  auto polled = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, nullptr, MpiProgress::Polling, "mpi_polling");
  auto blocking = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, nullptr, MpiProgress::Blocking, "mpi_blocking");
  const int n = rt.size();
  const double bus = 2.0 * (n - 1) / n;
  if (rt.rank() == 0) {
    std::printf("all-reduce (sum, float32), %d ranks on %s%s, %d thread(s) per rank\n", n, rt.host().c_str(),
                rt.local_size() == n ? " (one node: shared memory)" : "", rt.threads());
    std::printf("time per all-reduce (us) and bus bandwidth (GB/s); default = polled arrival + blocking transfer\n");
    std::printf("%10s %6s | %9s %9s %9s %9s | %8s %8s %8s %8s | %s\n", "bytes", "iters", "default", "polled",
                "blocking", "raw MPI", "default", "polled", "blocking", "raw MPI", "default/raw busbw");
  }
  for (int64_t bytes = vm["min-kib"].as<int64_t>() << 10; bytes <= (vm["max-mib"].as<int64_t>() << 20); bytes *= 4) {
    const int64_t count = bytes / 4;
    const int iters = static_cast<int>(std::clamp<int64_t>((int64_t{128} << 20) / bytes, 3, 100));
    const int reps = vm["reps"].as<int>();
    auto t = torch::zeros({count});  // zeros stay finite however often they are summed
    double ta = time_per_op(iters, reps, [&] { arrival.all_reduce(t, ReduceOp::Sum, "bench"); });
    double tp = time_per_op(iters, reps, [&] { polled->all_reduce(t, ReduceOp::Sum, "bench"); });
    double tb = time_per_op(iters, reps, [&] { blocking->all_reduce(t, ReduceOp::Sum, "bench"); });
    double tr = time_per_op(iters, reps, [&] {
      MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    });
    if (rt.rank() == 0) {
      auto busbw = [&](double s) { return bytes / s * bus / 1e9; };
      std::printf("%10lld %6d | %9.1f %9.1f %9.1f %9.1f | %8.2f %8.2f %8.2f %8.2f | %.2f\n",
                  static_cast<long long>(bytes), iters, ta * 1e6, tp * 1e6, tb * 1e6, tr * 1e6, busbw(ta), busbw(tp),
                  busbw(tb), busbw(tr), busbw(ta) / busbw(tr));
    }
  }
  polled.reset();
  blocking.reset();
  Runtime::stop();
  return 0;
}
