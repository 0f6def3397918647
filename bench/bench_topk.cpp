// Top-k benchmarks (seed 004 Sec. 7.2: EF21 with K = 0.016 d). The selection must read the source at least
// once and write k (index, value) pairs, so it is measured against the read-only reference with
// bytes = sizeof(T) n + (4 + sizeof(T)) k; the counters say how many full reads of the source it took
// (source_passes), how many passes over the candidate buffer (candidate_passes) and the buffer's share of n.
// The scatter-add and zeroing touch only the k selected coordinates: bytes = k (index + value + y read and
// written), against the in-place update reference.
#include "terse_BenchUtils.hpp"

#include <terse_Random.hpp>
#include <terse_TopK.hpp>

#include <cmath>

namespace {

using namespace terse;
using namespace terse::bench;

inline constexpr double k_ratio = 0.016;

std::size_t ef21_k(std::size_t n) {
  return std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(k_ratio * double(n))));
}

/// x(i) ~ N(0, scale^2) from the project's counter-based generator (a gradient-like source).
template <class T>
Kokkos::View<T*, Mem> gaussian(std::size_t n, std::uint64_t seed, double scale = 1.0) {
  Kokkos::View<T*, Mem> x("x", n);
  const CounterRng rng{seed, static_cast<std::uint32_t>(RandomStream::gradient_noise)};
  Kokkos::parallel_for("bench::gaussian", Kokkos::RangePolicy<Exec>(0, n),
                       KOKKOS_LAMBDA(std::size_t i) { x(i) = static_cast<T>(scale * rng.normal(0, 0, i)); });
  return x;
}

template <class Workspace>
void report_passes(benchmark::State& state, const Workspace& ws) {
  state.counters["source_passes"] = ws.source_passes();
  state.counters["candidate_passes"] = ws.candidate_passes();
  state.counters["candidates_per_n"] = double(ws.candidates()) / double(ws.n());
  state.counters["k"] = double(ws.k());
}

template <class T>
void BM_TopKSelect(benchmark::State& state) {
  const std::size_t n = state.range(0), k = ef21_k(n);
  const StreamReferences s(n);
  const auto x = gaussian<T>(n, 2024);
  TopKWorkspace<Exec, T> ws(n, k);
  const double bytes = sizeof(T) * double(n) + (4.0 + sizeof(T)) * double(k);
  run_against_reference(state, Exec(), bytes, Reference::read, s, [&] { top_k_select(Exec(), x, ws); });
  report_passes(state, ws);
}

/// The error-feedback form: top-k of p = g + e computed on the fly (seed 004 Sec. 4), reading 2 vectors.
template <class T>
struct SumSource {
  Kokkos::View<const T*, Mem> g, e;
  KOKKOS_INLINE_FUNCTION T operator()(std::size_t i) const { return g(i) + e(i); }
};

template <class T>
void BM_TopKSelectFused(benchmark::State& state) {
  const std::size_t n = state.range(0), k = ef21_k(n);
  const StreamReferences s(n);
  const auto g = gaussian<T>(n, 1), e = gaussian<T>(n, 2, 0.1);
  TopKWorkspace<Exec, T> ws(n, k);
  const double bytes = 2.0 * sizeof(T) * double(n) + (4.0 + sizeof(T)) * double(k);
  run_against_reference(state, Exec(), bytes, Reference::read, s,
                        [&] { top_k_select(Exec(), SumSource<T>{g, e}, ws); });
  report_passes(state, ws);
}

/// Worst case for the candidate buffer: values from {-2, -1, 0, 1, 2}, so the threshold bucket holds 40 % of
/// the entries and every digit pass reads the source.
void BM_TopKSelectTies(benchmark::State& state) {
  const std::size_t n = state.range(0), k = ef21_k(n);
  const StreamReferences s(n);
  Kokkos::View<float*, Mem> x("x", n);
  const CounterRng rng{7, static_cast<std::uint32_t>(RandomStream::gradient_noise)};
  Kokkos::parallel_for("bench::ties", Kokkos::RangePolicy<Exec>(0, n),
                       KOKKOS_LAMBDA(std::size_t i) { x(i) = float(int(rng.below(5, 0, 0, i)) - 2); });
  TopKWorkspace<Exec, float> ws(n, k);
  const double bytes = 4.0 * double(n) + 8.0 * double(k);
  run_against_reference(state, Exec(), bytes, Reference::read, s, [&] { top_k_select(Exec(), x, ws); });
  report_passes(state, ws);
}

void BM_TopKScatterAdd(benchmark::State& state) {
  const std::size_t n = state.range(0), k = ef21_k(n);
  const StreamReferences s(n);
  const auto x = gaussian<float>(n, 3);
  Kokkos::View<float*, Mem> y("y", n);
  TopKWorkspace<Exec, float> ws(n, k);
  top_k_select(Exec(), x, ws);
  const double bytes = (4.0 + 4.0 + 8.0) * double(k);
  run_against_reference(state, Exec(), bytes, Reference::update, s,
                        [&] { top_k_scatter_add(Exec(), ws.indices(), ws.values(), y, 0.5f); });
}

void BM_TopKZero(benchmark::State& state) {
  const std::size_t n = state.range(0), k = ef21_k(n);
  const StreamReferences s(n);
  const auto x = gaussian<float>(n, 4);
  Kokkos::View<float*, Mem> y("y", n);
  TopKWorkspace<Exec, float> ws(n, k);
  top_k_select(Exec(), x, ws);
  const double bytes = (4.0 + 4.0) * double(k);
  run_against_reference(state, Exec(), bytes, Reference::update, s,
                        [&] { top_k_zero(Exec(), ws.indices(), y); });
}

BENCHMARK_TEMPLATE(BM_TopKSelect, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_TopKSelect, double) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_TopKSelectFused, float) TERSE_SIZES;
BENCHMARK(BM_TopKSelectTies) TERSE_SIZES;
BENCHMARK(BM_TopKScatterAdd) TERSE_SIZES;
BENCHMARK(BM_TopKZero) TERSE_SIZES;
#undef TERSE_SIZES

}  // namespace
