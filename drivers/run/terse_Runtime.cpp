#include "terse_Runtime.hpp"

#include <Kokkos_Core.hpp>

#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
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
  // A request for the help or the version runs no kernel: Kokkos's advice about OMP_PROC_BIND (four lines on
  // stderr when it is unset) is for real runs only, so it is silenced here by the neutral setting.
  bool only_text = args_.size() <= 1;
  for (std::size_t i = 1; i < args_.size(); ++i)
    only_text = only_text || args_[i] == "--help" || args_[i] == "-h" || args_[i] == "--version";
  if (only_text) setenv("OMP_PROC_BIND", "false", 0);  // 0: a value the user set stays
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

Runtime::~Runtime() {
  Kokkos::finalize();
  MPI_Finalize();
}

namespace {
/// The first number in a file ("max" and unreadable files: none).
bool read_number(const std::string& path, std::uint64_t& out) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word)) return false;
  try {
    std::size_t used = 0;
    out = std::stoull(word, &used);
    return used == word.size();
  } catch (const std::exception&) {
    return false;
  }
}

/// This process's cgroup path for a controller (v2: the "0::" line) from /proc/self/cgroup.
std::string cgroup_path(bool v2) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (v2 && line.compare(0, 3, "0::") == 0) return path;
    if (!v2 && (controllers == "memory" || controllers.find("memory,") == 0 || controllers.find(",memory") != std::string::npos))
      return path;
  }
  return "";
}
}  // namespace

AvailableMemory available_memory() {
  AvailableMemory m;
  m.bytes = std::numeric_limits<std::uint64_t>::max();
  {
    std::ifstream in("/proc/meminfo");
    std::string key, unit;
    std::uint64_t kb = 0;
    while (in >> key >> kb) {
      std::getline(in, unit);
      if (key == "MemAvailable:") {
        m.bytes = kb * 1024;
        m.source = "MemAvailable in /proc/meminfo";
        break;
      }
    }
  }
  const auto consider = [&](const std::string& limit_file, const std::string& usage_file) {
    std::uint64_t limit = 0, usage = 0;
    if (!read_number(limit_file, limit) || !read_number(usage_file, usage)) return;
    const std::uint64_t room = limit > usage ? limit - usage : 0;
    if (room < m.bytes) {
      m.bytes = room;
      m.source = "the cgroup's limit " + limit_file;
    }
  };
  const std::string v2 = cgroup_path(true);
  if (!v2.empty()) consider("/sys/fs/cgroup" + v2 + "/memory.max", "/sys/fs/cgroup" + v2 + "/memory.current");
  const std::string v1 = cgroup_path(false);
  if (!v1.empty())
    consider("/sys/fs/cgroup/memory" + v1 + "/memory.limit_in_bytes", "/sys/fs/cgroup/memory" + v1 + "/memory.usage_in_bytes");
  if (m.source.empty()) m = AvailableMemory{0, "unknown"};
  return m;
}

std::string format_bytes(double bytes) {
  char buf[32];
  if (bytes < 1024.0 * 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", bytes / 1024);
  else if (bytes < 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / (1024.0 * 1024));
  else std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
  return buf;
}

}  // namespace terse
