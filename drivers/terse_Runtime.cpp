#include "terse_Runtime.hpp"

#include <Kokkos_Core.hpp>

#include <csignal>
#include <cstring>
#include <vector>

namespace terse {

Runtime::Runtime(int& argc, char**& argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  // Kokkos sees only its prefixed flags: Kokkos 3.4 also reads unprefixed ones (--help, --threads, ...) and
  // would answer `terse run --help` with its own help. The rest goes to CLI11.
  std::vector<char*> kokkos_argv{argv[0]};
  for (int i = 0; i < argc; ++i) {
    const bool kokkos_flag = i > 0 && std::strncmp(argv[i], "--kokkos-", 9) == 0;
    if (kokkos_flag) kokkos_argv.push_back(argv[i]);
    else args_.emplace_back(argv[i]);
  }
  int kokkos_argc = static_cast<int>(kokkos_argv.size());
  kokkos_argv.push_back(nullptr);
  char** kokkos_args = kokkos_argv.data();
  Kokkos::initialize(kokkos_argc, kokkos_args);
}

namespace {
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void terse_on_stop_signal(int sig) { g_stop_signal = sig; }
}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = terse_on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // MPI and file calls in progress go on; the loop sees the flag after the iteration
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
}

int stop_signal() { return static_cast<int>(g_stop_signal); }

const char* signal_name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    case SIGINT: return "SIGINT";
    default: return "a signal";
  }
}

std::string first_error(MPI_Comm comm, const std::string& local) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int mine = local.empty() ? size : rank, first = size;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
  if (first == size) return {};
  long long n = rank == first ? static_cast<long long>(local.size()) : 0;
  MPI_Bcast(&n, 1, MPI_LONG_LONG, first, comm);
  std::string msg = rank == first ? local : std::string(static_cast<std::size_t>(n), '\0');
  MPI_Bcast(msg.data(), static_cast<int>(n), MPI_CHAR, first, comm);
  return msg;
}

Runtime::~Runtime() {
  Kokkos::finalize();
  MPI_Finalize();
}

}  // namespace terse
