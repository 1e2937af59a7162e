#pragma once
// Reports of training runs, from what `starft train` leaves in its run directory:
// metrics.jsonl (one line per step: loss parts, lr, lambda, throughput, the step-time breakdown),
// eval.jsonl (evaluations during training) and config.ini.
//   - one run: report.md (per-epoch table, step-time breakdown, slowest ranks, evaluations) and
//     report.png (loss parts, lr and lambda, regulariser, throughput, time breakdown, evaluation
//     metrics per epoch), chart data in report-data/;
//   - a scaling study (runs of one training at several rank counts, launch/scaling.sh):
//     scaling.md (images/s, speed-up and efficiency against the fewest ranks, the breakdown per
//     rank count) and scaling.png.
// Used by `starft report` and `starft demo-report`.
#include <filesystem>
#include <string>
#include <vector>

namespace starft::cli {

// The step times of a run, summarised over its steady steps (the first 10%, at least 2, are
// warm-up and left out; all steps when there are fewer than 4). Medians, in seconds.
struct StepSummary {
  int64_t steps = 0, steady_steps = 0;
  int ranks = 0;      // from metrics.jsonl; 0 when the run predates the key
  int64_t batch = 0;  // global batch (config.ini); 0 when unknown
  double step = 0, data = 0, forward = 0, backward = 0, comm_exposed = 0, optimizer = 0, other = 0;
  double images_per_s = 0;  // batch / median step time (0 without a batch size)
  bool has_breakdown = false;
};

// Reads `run_dir`'s metrics.jsonl and config.ini and summarises the step times. Throws
// starft::Error when metrics.jsonl is missing or holds no step.
StepSummary summarise_steps(const std::filesystem::path& run_dir);

// Writes out_dir/report.md, out_dir/report.png (when gnuplot is installed) and
// out_dir/report-data/ for the run in `run_dir`; returns the Markdown. Throws starft::Error
// when the run has no metrics.jsonl.
std::string write_run_report(const std::filesystem::path& run_dir, const std::filesystem::path& out_dir);

// Writes out_dir/scaling.md and out_dir/scaling.png for the runs in `dirs` (run directories, or
// directories whose subdirectories are run directories); returns the Markdown. A run's series
// (weak, strong) comes from its scaling.json ({"mode": ...}, written by launch/scaling.sh), else
// "runs". Throws starft::Error when no run is found.
std::string write_scaling_report(const std::vector<std::filesystem::path>& dirs, const std::filesystem::path& out_dir);

}  // namespace starft::cli
