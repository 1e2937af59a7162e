// `starft report`: a training run's curves and step-time breakdown (--run-dir), or a scaling
// study over several runs (--scaling), as Markdown and PNG (cli/run_report.h).
#include <cstdio>
#include <filesystem>

#include "cli/command.h"
#include "cli/run_report.h"
#include "common/error.h"

namespace starft::cli {
namespace {

namespace fs = std::filesystem;

int run_report(int argc, char** argv) {
  std::string run_dir, out;
  std::vector<std::string> scaling;
  po::options_description opts("options");
  opts.add_options()("run-dir", po::value(&run_dir),
                     "a run directory of `starft train` (metrics.jsonl, eval.jsonl, config.ini)")(
      "scaling", po::value(&scaling)->multitoken(),
      "run directories of one training at several rank counts, or directories of such runs (launch/scaling.sh's --out)")(
      "out", po::value(&out),
      "where to write the report (default: the run directory; with --scaling: the first directory)");
  auto vm = parse(argc, argv, opts,
                  "usage: starft report --run-dir DIR [--out OUT]\n"
                  "       starft report --scaling DIR [DIR...] [--out OUT]\n"
                  "Writes OUT/report.md and OUT/report.png (one run), or OUT/scaling.md and OUT/scaling.png.");
  if (!vm) return 0;
  check(run_dir.empty() != scaling.empty(), "report: give either --run-dir or --scaling (see --help)");
  std::string text;
  if (!run_dir.empty()) {
    text = write_run_report(run_dir, out.empty() ? run_dir : out);
  } else {
    std::vector<fs::path> dirs(scaling.begin(), scaling.end());
    text = write_scaling_report(dirs, out.empty() ? dirs.front() : fs::path(out));
  }
  std::printf("%s", text.c_str());
  return 0;
}

Registration report_command("report",
                            "a training run's curves and step-time breakdown, or a scaling study, as Markdown + PNG",
                            run_report);

}  // namespace
}  // namespace starft::cli
