#pragma once
// Clean stops on preemption. SIGTERM or SIGUSR1 (what Slurm sends before it preempts or hits
// the time limit, e.g. with `#SBATCH --signal=USR1@120`) only sets a flag. At each step boundary
// the trainer calls should_stop(), a collective that tells every rank whether any rank got the
// signal, so all ranks checkpoint and leave at the same step. A second signal of the same kind
// takes its default action (ends the process), for a user who really means it.
#include "distributed/communicator.h"

namespace starft::distributed {

// Installs the SIGTERM and SIGUSR1 handlers (idempotent).
void install_stop_handlers();
// This rank's own flag: the signal number received, 0 if none.
int stop_signal_received();
// Sets this rank's flag as if `signal_number` had arrived (for tests and internal reasons).
void request_stop(int signal_number);
// Collective: true on every rank when any rank has received a stop signal.
bool should_stop(Communicator& comm);

}  // namespace starft::distributed
