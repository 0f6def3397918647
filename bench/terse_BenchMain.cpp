// Google Benchmark main with Kokkos: initialises Kokkos (its --kokkos-* flags pass through) and records
// the Kokkos configuration in the benchmark context, so a result file says what it was measured on.
#include "terse_Machine.hpp"

#include <terse_Compat.hpp>
#include <terse_Version.hpp>

#include <benchmark/benchmark.h>

#include <string>

int main(int argc, char** argv) {
  Kokkos::initialize(argc, argv);
  {
    std::string backends;
    for (const auto& b : terse::compat::enabled_backends()) backends += (backends.empty() ? "" : ",") + b;
    benchmark::AddCustomContext("terse_version", TERSE_VERSION_STRING);
    benchmark::AddCustomContext("kokkos_version", terse::compat::kokkos_version());
    benchmark::AddCustomContext("kokkos_backends", backends);
    benchmark::AddCustomContext("execution_space", Kokkos::DefaultExecutionSpace::name());
    benchmark::AddCustomContext("cpu_model", terse::bench::cpu_model());
    benchmark::AddCustomContext("compiler", TERSE_BENCH_COMPILER);
    benchmark::AddCustomContext("concurrency",
                                std::to_string(terse::compat::concurrency(Kokkos::DefaultExecutionSpace())));
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
  }
  Kokkos::finalize();
  return 0;
}
