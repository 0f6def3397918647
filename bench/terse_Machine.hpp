#pragma once
// terse_Machine.hpp: what the benchmarks record about the machine they ran on (header-only, no dependencies:
// the Google Benchmark programs and the MPI and dense benchmarks all include it).

#include <fstream>
#include <string>

namespace terse::bench {

/// The CPU's model name from /proc/cpuinfo ("unknown" where there is none).
inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

}  // namespace terse::bench
