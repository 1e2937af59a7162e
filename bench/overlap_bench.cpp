// Step time of a model with tens of MiB of gradients (an MLP of --layers square layers of
// --width), measured side by side in one run:
//   alone     rank 0 computes forward + backward, the other ranks wait asleep (1 rank x T threads)
//   compute   every rank computes at once, no communication (what the machine gives N ranks)
//   copies    compute plus GradSync's bucket copies, without communication (a group of one)
//   comm      the gradient all-reduces alone (bucket sizes as GradSync makes them)
//   sync      GradSync with every bucket launched after backward (synchronise-after-backward)
//   overlap   GradSync with buckets launched from the autograd hooks during backward
// and derived: the fraction of communication hidden by overlap,
//   (sync - overlap) / (sync - compute),
// and the weak-scaling efficiency of N ranks against one rank alone (same per-rank batch),
//   alone / overlap.
//
//   mpirun -np 2 --bind-to none bench/overlap_bench [--width 1024 --layers 16 --batch 64 --steps 5 --reps 3]
#include <mpi.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>

#include "distributed/grad_sync.h"
#include "distributed/mpi_communicator.h"
#include "distributed/thread_communicator.h"
#include "distributed/runtime.h"
#include "bench_runtime.h"
#include "bench_main.h"

using namespace starft;
using namespace starft::distributed;
namespace po = boost::program_options;

namespace {

struct Mlp : torch::nn::Module {
  Mlp(int64_t width, int64_t layers) {
    for (int64_t i = 0; i < layers; ++i) {
      linears.push_back(register_module("fc" + std::to_string(i), torch::nn::Linear(width, width)));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    for (auto& l : linears) x = torch::tanh(l->forward(x));
    return x;
  }
  std::vector<torch::nn::Linear> linears;
};

// Seconds per step: the slowest participating rank's mean over `steps` steps, best of `reps`
// runs (the machine may be shared; the best run is the one least disturbed). `control` (the
// runtime's communicator, whose waits sleep rather than spin) lines the ranks up, whatever mode
// is being measured.
double seconds_per_step(Communicator& control, int steps, int reps, bool participate,
                        const std::function<void()>& step) {
  if (participate) {
    step();  // warm-up
    step();
  }
  double best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    control.barrier("bench_start");  // waiting ranks sleep, they do not spin
    double local = 0;
    if (participate) {
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < steps; ++i) step();
      local = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
    }
    control.barrier("bench_end");
    auto t = torch::tensor({local}, torch::kDouble);
    control.all_reduce(t, ReduceOp::Max, "bench_time");
    best = std::min(best, t.item<double>());
  }
  return best;
}

}  // namespace

STARFT_BENCH_MAIN(overlap_bench) {
  po::options_description options("overlap_bench options");
  options.add_options()("help,h", "show this help")("width", po::value<int64_t>()->default_value(1024),
                                                    "width of each square layer")(
      "layers", po::value<int64_t>()->default_value(16), "number of layers (gradients: layers * width^2 floats)")(
      "batch", po::value<int64_t>()->default_value(64), "samples per rank per step")(
      "steps", po::value<int>()->default_value(5), "timed steps per run")(
      "reps", po::value<int>()->default_value(3), "timed runs per measurement; the best is reported")(
      "bucket-mib", po::value<double>()->default_value(25), "gradient bucket size, MiB (the first bucket: 1 MiB)")(
      "progress", po::value<std::string>()->default_value("arrival"),
      "MPI progress mode: arrival (polled arrival + blocking transfer, the default), polling, blocking");
  po::variables_map vm;
  Runtime* started = bench::start_bench(&argc, &argv, options, "overlap_bench", vm);
  if (!started) return 0;
  auto& rt = *started;
  const auto progress = vm["progress"].as<std::string>();
  std::unique_ptr<MpiCommunicator> own;
  if (progress == "polling" || progress == "blocking") {
    own = std::make_unique<MpiCommunicator>(
        MPI_COMM_WORLD, nullptr, progress == "polling" ? MpiProgress::Polling : MpiProgress::Blocking, progress);
  } else if (progress != "arrival") {
    std::fprintf(stderr, "--progress must be arrival, polling or blocking, got '%s'\n", progress.c_str());
    return 2;
  }
  Communicator& comm = own ? static_cast<Communicator&>(*own) : rt.mpi();
  const int64_t width = vm["width"].as<int64_t>(), layers = vm["layers"].as<int64_t>();
  const int64_t batch = vm["batch"].as<int64_t>();
  const int steps = vm["steps"].as<int>();
  const int reps = vm["reps"].as<int>();

  torch::manual_seed(rt.rank());
  auto model = std::make_shared<Mlp>(width, layers);
  auto input = torch::randn({batch, width});
  auto params = model->parameters();
  int64_t grad_bytes = 0;
  for (auto& p : params) grad_bytes += p.numel() * p.element_size();

  auto compute = [&] {
    model->zero_grad();
    model->forward(input).square().mean().backward();
  };
  GradSyncOptions sync_options;
  sync_options.check_every = 0;
  sync_options.bucket_bytes = static_cast<int64_t>(vm["bucket-mib"].as<double>() * (1 << 20));
  sync_options.first_bucket_bytes = std::min(sync_options.first_bucket_bytes, sync_options.bucket_bytes);
  sync_options.overlap = false;
  auto after = std::make_unique<GradSync>(params, comm, sync_options);
  auto bucket_sizes = after->bucket_layout();
  double t_sync = seconds_per_step(rt.mpi(), steps, reps, true, [&] {
    compute();
    after->finish();
  });
  after.reset();
  sync_options.overlap = true;
  auto overlapped = std::make_unique<GradSync>(params, comm, sync_options);
  double t_overlap = seconds_per_step(rt.mpi(), steps, reps, true, [&] {
    compute();
    overlapped->finish();
  });
  overlapped.reset();
  // The buckets' own cost (hook copies in, averaged gradients out) without communication: the
  // same GradSync over a group of one rank.
  double t_copies = 0;
  {
    ThreadGroup one(1);
    GradSync local(params, one.comm(0), sync_options);
    t_copies = seconds_per_step(rt.mpi(), steps, reps, true, [&] {
      compute();
      local.finish();
    });
  }
  double t_alone = seconds_per_step(rt.mpi(), steps, reps, rt.rank() == 0, compute);
  double t_compute = seconds_per_step(rt.mpi(), steps, reps, true, compute);
  // The same all-reduces as the buckets, without computation.
  std::vector<torch::Tensor> buffers;
  for (const auto& bucket : bucket_sizes) {
    int64_t numel = 0;
    for (int i : bucket) numel += params[i].numel();
    buffers.push_back(torch::zeros({numel + static_cast<int64_t>(bucket.size())}));
  }
  double t_comm = seconds_per_step(rt.mpi(), steps, reps, true, [&] {
    std::vector<WorkPtr> works;
    for (size_t b = 0; b < buffers.size(); ++b) {
      works.push_back(comm.all_reduce_async(buffers[b], ReduceOp::Avg, "grad_bucket_" + std::to_string(b)));
    }
    for (auto& w : works) w->wait();
  });

  if (rt.rank() == 0) {
    const int n = rt.size();
    std::printf(
        "MLP %lld x %lld^2: %.1f MiB of gradients in %zu buckets; batch %lld per rank; %d ranks x %d thread(s); "
        "MPI progress: %s\n",
        static_cast<long long>(layers), static_cast<long long>(width), grad_bytes / 1048576.0, bucket_sizes.size(),
        static_cast<long long>(batch), n, rt.threads(), progress.c_str());
    std::printf(
        "step time (ms): alone %.1f | compute (all ranks) %.1f | + bucket copies %.1f | comm alone %.1f | "
        "sync-after-backward %.1f | overlap %.1f\n",
        t_alone * 1e3, t_compute * 1e3, t_copies * 1e3, t_comm * 1e3, t_sync * 1e3, t_overlap * 1e3);
    const double exposed_sync = t_sync - t_compute, exposed_overlap = t_overlap - t_compute;
    std::printf("communication exposed: %.1f ms after backward, %.1f ms with overlap -> hidden fraction %.2f\n",
                exposed_sync * 1e3, exposed_overlap * 1e3,
                exposed_sync > 0 ? (t_sync - t_overlap) / exposed_sync : 0.0);
    std::printf(
        "throughput (samples/s): 1 rank alone %.0f | %d ranks with overlap %.0f -> weak-scaling efficiency "
        "%.2f (machine contention alone: %.2f)\n",
        batch / t_alone, n, n * batch / t_overlap, t_alone / t_overlap, t_alone / t_compute);
  }
  own.reset();
  Runtime::stop();
  return 0;
}
