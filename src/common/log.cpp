#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
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

}  // namespace starft
