#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <torch/torch.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <string>

namespace starft {

int rank_from_environment() {
  for (const char* var : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"}) {
    if (const char* v = std::getenv(var)) return std::atoi(v);
  }
  return 0;
}

void init_logging(int rank) {
  auto logger = spdlog::default_logger();
  if (!logger || logger->name() != "starft") {
    logger = spdlog::stderr_color_mt("starft");
    spdlog::set_default_logger(logger);
  }
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [rank " + std::to_string(rank) + "] [%^%l%$] %v");
  spdlog::level::level_enum level = rank == 0 ? spdlog::level::info : spdlog::level::warn;
  if (const char* env = std::getenv("STARFT_LOG_LEVEL")) level = spdlog::level::from_str(env);
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
}

std::string check_blas() {
  // Make sure BLAS is loaded, then look at which shared object provides it.
  auto a = torch::ones({8, 8});
  (void)torch::mm(a, a);
  std::ifstream maps("/proc/self/maps");
  std::string line, blas;
  while (std::getline(maps, line)) {
    auto pos = line.find('/');
    if (pos == std::string::npos) continue;
    std::string path = line.substr(pos);
    if (path.find("libblas.so") == std::string::npos && path.find("libopenblas") == std::string::npos &&
        path.find("libmkl") == std::string::npos)
      continue;
    char resolved[PATH_MAX];
    blas = realpath(path.c_str(), resolved) ? std::string(resolved) : path;
    if (blas.find("openblas") != std::string::npos || blas.find("mkl") != std::string::npos) break;
  }
  if (!blas.empty() && blas.find("openblas") == std::string::npos && blas.find("mkl") == std::string::npos) {
    spdlog::warn(
        "LibTorch is using the reference BLAS ({}), about 10x slower than OpenBLAS here. "
        "Install libopenblas0-openmp (launch/install-deps.sh does) or select it with "
        "`update-alternatives --config libblas.so.3-x86_64-linux-gnu`.",
        blas);
  }
  return blas;
}

}  // namespace starft
