#include "distributed/stop_signal.h"

#include <spdlog/spdlog.h>

#include <csignal>

namespace starft::distributed {

namespace {
volatile std::sig_atomic_t g_stop_signal = 0;
bool g_announced = false;

extern "C" void on_stop_signal(int signal_number) { g_stop_signal = signal_number; }
}  // namespace

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART | SA_RESETHAND;  // the second signal ends the process
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

int stop_signal_received() { return g_stop_signal; }

void request_stop(int signal_number) { g_stop_signal = signal_number; }

bool should_stop(Communicator& comm) {
  auto flag = torch::tensor({static_cast<int32_t>(g_stop_signal)}, torch::kInt).to(comm.device());
  comm.all_reduce(flag, ReduceOp::Max, "should_stop");
  int agreed = flag.item<int32_t>();  // on CUDA, item() waits for the stream that wait() ordered
  if (agreed != 0 && !g_announced) {
    g_announced = true;
    spdlog::info("stop requested (signal {} {}): all {} ranks stop at this step boundary", agreed,
                 agreed == SIGTERM   ? "SIGTERM"
                 : agreed == SIGUSR1 ? "SIGUSR1"
                                     : "",
                 comm.size());
  }
  return agreed != 0;
}

}  // namespace starft::distributed
