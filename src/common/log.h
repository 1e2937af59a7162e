#pragma once
// Rank-aware logging. Every line carries the rank; rank 0 logs at info level, the others at
// warning level (so a 64-rank job prints one progress stream), unless STARFT_LOG_LEVEL says more.
#include <spdlog/spdlog.h>

namespace starft {

// The rank as far as it is known before MPI starts (Open MPI, PMI, Slurm variables), else 0.
int rank_from_environment();

// (Re)configures the default logger for this rank. Safe to call again once MPI knows the rank.
void init_logging(int rank);

}  // namespace starft
