#pragma once
// terse_Runtime.hpp: process-wide set-up of the terse program: MPI, then Kokkos, torn down in reverse.

#include "terse_Collective.hpp"
#include "terse_Error.hpp"

#include <mpi.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace terse {

/// Initialises MPI (MPI_THREAD_FUNNELED) and Kokkos from the command line and finalises both on
/// destruction. Kokkos's own flags (--kokkos-*) are consumed here; args() holds the rest for CLI11.
class Runtime {
 public:
  Runtime(int& argc, char**& argv);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  /// The command line without Kokkos's flags, program name first.
  const std::vector<std::string>& args() const { return args_; }

 private:
  int rank_ = 0;
  int size_ = 1;
  std::vector<std::string> args_;
};


/// Makes SIGTERM and SIGUSR1 (what batch systems send before a time limit) ask the run to stop: the handler
/// only records the signal; `terse run` checks it after every iteration, writes a checkpoint and exits.
void install_stop_handlers();
/// The stop signal received by this process (SIGTERM or SIGUSR1), 0 when none.
int stop_signal();
/// "SIGTERM", "SIGUSR1", ... for the progress line.
const char* signal_name(int sig);

/// Memory this process may still allocate on its node, in bytes, and where the figure comes from: the smaller
/// of /proc/meminfo's MemAvailable and the room left under the cgroup's limit (cgroup v2 memory.max minus
/// memory.current, or v1 limit_in_bytes minus usage_in_bytes: what Slurm and containers enforce). 0 with
/// source "unknown" when neither can be read.
struct AvailableMemory {
  std::uint64_t bytes = 0;
  std::string source;
};
AvailableMemory available_memory();

/// "1.50 GiB", "12.0 MiB", ... for messages.
std::string format_bytes(double bytes);

int run_info(const Runtime& rt);

struct DemoOptions {
  std::size_t dim = 1 << 20;
  int iterations = 250;
  double lr = 5e-3;
  double noise_std = 1.0;
  double x0 = 1.0;
  unsigned long long seed = 42;
  int log_every = 50;
};
int run_demo(const Runtime& rt, const DemoOptions& opt);

}  // namespace terse
