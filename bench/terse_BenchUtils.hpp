#pragma once
// terse_BenchUtils.hpp: timing helpers shared by the benchmarks: fenced timing of a kernel, the
// STREAM-like references, and the interleaved kernel-versus-reference measurement.

#include <Kokkos_Core.hpp>
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <cstdint>
#include <vector>

namespace terse::bench {

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;

/// Seconds taken by f(), with the execution space fenced on both sides.
template <class F>
double fenced_seconds(const Exec& exec, F&& f) {
  exec.fence();
  Kokkos::Timer timer;
  f();
  exec.fence();
  return timer.seconds();
}

/// The largest vector length of the size sweeps: 2^TERSE_BENCH_LOG2_MAX (an environment variable read when
/// the benchmarks are registered, 18 .. 31; default 26). A GPU run takes 28 (scripts/prepare-h200.sh).
inline std::int64_t largest_size() {
  static const std::int64_t n = [] {
    int log2 = 26;
    if (const char* v = std::getenv("TERSE_BENCH_LOG2_MAX")) {
      char* end = nullptr;
      const long l = std::strtol(v, &end, 10);
      if (end == v || *end != '\0' || l < 18 || l > 31) {
        std::fprintf(stderr, "TERSE_BENCH_LOG2_MAX: expected an integer in 18 .. 31, got '%s'\n", v);
        std::exit(2);
      }
      log2 = static_cast<int>(l);
    }
    return std::int64_t(1) << log2;
  }();
  return n;
}

/// The size sweep of the kernel benchmarks: 2^18, the powers of 16 above it (2^20, 2^24, ...) and largest_size().
#define TERSE_SIZES \
  ->RangeMultiplier(16)->Range(1 << 18, terse::bench::largest_size())->UseManualTime()->Unit(benchmark::kMillisecond)

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

/// STREAM-like references on fp32 vectors of length n. Traffic in bytes: copy 8n, read-only sum 4n,
/// in-place update (x <- a*x + y) 12n.
struct StreamReferences {
  Kokkos::View<float*, Mem> a, b;
  explicit StreamReferences(std::size_t n) : a("stream_a", n), b("stream_b", n) {
    Kokkos::deep_copy(a, 1.0f);
    Kokkos::deep_copy(b, 2.0f);
  }
  std::size_t n() const { return a.extent(0); }

  void copy(const Exec& exec) const {
    auto a_ = a, b_ = b;
    Kokkos::parallel_for("terse::bench::stream_copy", Kokkos::RangePolicy<Exec>(exec, 0, n()),
                         KOKKOS_LAMBDA(std::size_t i) { b_(i) = a_(i); });
  }
  /// Reads every element once: sums the bit patterns as integers (associative, so it vectorises; a float
  /// sum in order would measure the adder's latency, not the memory).
  std::uint64_t read(const Exec& exec) const {
    Kokkos::View<const std::uint32_t*, Mem, Kokkos::MemoryTraits<Kokkos::Unmanaged>> bits(
        reinterpret_cast<const std::uint32_t*>(a.data()), n());
    const std::size_t len = n(), chunks = (len + 1023) / 1024;
    std::uint64_t sum = 0;
    Kokkos::parallel_reduce(
        "terse::bench::stream_read", Kokkos::RangePolicy<Exec>(exec, 0, chunks),
        KOKKOS_LAMBDA(std::size_t c, std::uint64_t& acc) {
          std::uint32_t s = 0;
          const std::size_t end = (c + 1) * 1024 < len ? (c + 1) * 1024 : len;
          for (std::size_t i = c * 1024; i < end; ++i) s += bits(i);
          acc += s;
        },
        sum);
    return sum;
  }
  void update(const Exec& exec) const {
    auto a_ = a, b_ = b;
    Kokkos::parallel_for("terse::bench::stream_update", Kokkos::RangePolicy<Exec>(exec, 0, n()),
                         KOKKOS_LAMBDA(std::size_t i) { a_(i) = 0.999f * a_(i) + b_(i); });
  }
  double copy_bytes() const { return 8.0 * n(); }
  double read_bytes() const { return 4.0 * n(); }
  double update_bytes() const { return 12.0 * n(); }
};

enum class Reference { copy, read, update };

inline const char* reference_name(Reference r) {
  switch (r) {
    case Reference::copy: return "copy";
    case Reference::read: return "read";
    case Reference::update: return "update";
  }
  return "?";
}


/// Runs the benchmark loop: each iteration times `kernel` (manual time) and then the chosen reference.
/// Reports bytes/s of the kernel, the reference's median bytes/s and the ratio of the medians.
template <class Kernel>
void run_against_reference(benchmark::State& state, const Exec& exec, double kernel_bytes, Reference ref,
                           const StreamReferences& stream, Kernel&& kernel) {
  std::vector<double> kernel_rates, ref_rates;
  for (auto _ : state) {
    const double t = fenced_seconds(exec, kernel);
    state.SetIterationTime(t);
    kernel_rates.push_back(kernel_bytes / t);
    double ref_bytes = 0, tr = 0;
    switch (ref) {
      case Reference::copy: tr = fenced_seconds(exec, [&] { stream.copy(exec); }); ref_bytes = stream.copy_bytes(); break;
      case Reference::read: tr = fenced_seconds(exec, [&] { benchmark::DoNotOptimize(stream.read(exec)); }); ref_bytes = stream.read_bytes(); break;
      case Reference::update: tr = fenced_seconds(exec, [&] { stream.update(exec); }); ref_bytes = stream.update_bytes(); break;
    }
    ref_rates.push_back(ref_bytes / tr);
  }
  const double k = median(kernel_rates), r = median(ref_rates);
  state.SetBytesProcessed(static_cast<int64_t>(kernel_bytes * state.iterations()));
  state.counters["median_GBps"] = k * 1e-9;
  state.counters["ref_median_GBps"] = r * 1e-9;
  state.counters["ratio_to_ref"] = k / r;
  state.SetLabel(std::string("vs ") + reference_name(ref));
}


}  // namespace terse::bench
