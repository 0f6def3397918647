// Update-rule benchmarks (terse_Update.hpp): bytes each kernel must move, per second, against the in-place
// update reference (x <- a x + y, 12 bytes per coordinate), whose traffic these read-modify-write kernels
// resemble. Bytes = every vector read plus every vector written, sizeof(T) each, per coordinate:
//   sgd_step                    reads x, g;                 writes x           3
//   amsgrad_step                reads x, m, v, v_hat, g;    writes x, m, v, v_hat   9  (fp32: 36 bytes)
//   adagrad_step                reads x, accum, g;          writes x, accum    5
//   adaalter_local_step         reads x, denom, accum, g;   writes x, accum    6
//   adaalter_sync_denominators  reads accum;                writes accum, denom 3
//   average_in_place            reads y;                    writes y           2
//   adam_step                   reads x, m, v, g;           writes x, m, v     7
//   momentum_blend              reads m, g;                 writes g           3
//   frozen_adam_step            reads x, v, u;              writes x, m        5
#include "terse_BenchUtils.hpp"

#include <terse_Update.hpp>

namespace {

using namespace terse;
using namespace terse::bench;

template <class T>
Kokkos::View<T*, Mem> filled(const char* label, std::size_t n, double base) {
  Kokkos::View<T*, Mem> v(std::string(label), n);
  Kokkos::parallel_for("bench::init", Kokkos::RangePolicy<Exec>(0, n), KOKKOS_LAMBDA(std::size_t i) {
    v(i) = static_cast<T>(base * (1.0 + double((i * 2654435761u) % 1000) * 1e-3) * ((i % 3 == 0) ? -1.0 : 1.0));
  });
  return v;
}

template <class T>
void BM_UpdateSgd(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  auto x = filled<T>("x", n, 1.0);
  auto g = filled<T>("g", n, 0.1);
  run_against_reference(state, Exec(), 3.0 * sizeof(T) * n, Reference::update, s,
                        [&] { sgd_step(Exec(), x, g, 1e-3); });
}

template <class T>
void BM_UpdateAmsgrad(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  auto x = filled<T>("x", n, 1.0);
  auto g = filled<T>("g", n, 0.1);
  Kokkos::View<T*, Mem> m("m", n), v("v", n), v_hat("v_hat", n);
  const AmsgradParams p{1e-3};
  run_against_reference(state, Exec(), 9.0 * sizeof(T) * n, Reference::update, s,
                        [&] { amsgrad_step(Exec(), x, m, v, v_hat, g, p); });
}

template <class T>
void BM_UpdateAdagrad(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  auto x = filled<T>("x", n, 1.0);
  auto g = filled<T>("g", n, 0.1);
  Kokkos::View<T*, Mem> accum("accum", n);
  run_against_reference(state, Exec(), 5.0 * sizeof(T) * n, Reference::update, s,
                        [&] { adagrad_step(Exec(), x, accum, g, 0.1, 1e-8); });
}

template <class T>
void BM_UpdateAdaAlterLocal(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  auto x = filled<T>("x", n, 1.0);
  auto g = filled<T>("g", n, 0.1);
  Kokkos::View<T*, Mem> denom("denom", n), accum("accum", n);
  Kokkos::deep_copy(denom, T(1));
  Kokkos::deep_copy(accum, T(1));
  long t = 0;
  run_against_reference(state, Exec(), 6.0 * sizeof(T) * n, Reference::update, s, [&] {
    ++t;
    adaalter_local_step(Exec(), x, denom, accum, g, 0.5, 1.0, adaalter_local_index(t, 4));
  });
}

template <class T>
void BM_UpdateAdaAlterSync(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  auto accum = filled<T>("accum", n, 1.0);
  Kokkos::View<T*, Mem> denom("denom", n);
  bool up = false;  // alternate 1/2 and 2 so that repeated averaging never reaches subnormals
  run_against_reference(state, Exec(), 3.0 * sizeof(T) * n, Reference::update, s, [&] {
    up = !up;
    adaalter_sync_denominators(Exec(), denom, accum, up ? 0.5 : 2.0);
  });
}

template <class T>
void BM_UpdateAverageInPlace(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  auto y = filled<T>("y", n, 1.0);
  bool up = false;
  run_against_reference(state, Exec(), 2.0 * sizeof(T) * n, Reference::update, s, [&] {
    up = !up;
    average_in_place(Exec(), y, up ? 0.5 : 2.0);
  });
}

template <class T>
void BM_UpdateAdam(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  auto x = filled<T>("x", n, 1.0);
  auto g = filled<T>("g", n, 0.1);
  Kokkos::View<T*, Mem> m("m", n), v("v", n);
  const AmsgradParams p{1e-3};
  run_against_reference(state, Exec(), 7.0 * sizeof(T) * n, Reference::update, s,
                        [&] { adam_step(Exec(), x, m, v, g, p); });
}

template <class T>
void BM_UpdateMomentumBlend(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  auto m = filled<T>("m", n, 0.1);
  auto g = filled<T>("g", n, 0.1);  // g <- 0.5 m + 0.5 g stays bounded
  run_against_reference(state, Exec(), 3.0 * sizeof(T) * n, Reference::update, s,
                        [&] { momentum_blend(Exec(), m, g, 0.5); });
}

template <class T>
void BM_UpdateFrozenAdam(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  auto x = filled<T>("x", n, 1.0);
  auto u = filled<T>("u", n, 0.1);
  auto v = filled<T>("v", n, 0.01);
  Kokkos::View<T*, Mem> m("m", n);
  run_against_reference(state, Exec(), 5.0 * sizeof(T) * n, Reference::update, s,
                        [&] { frozen_adam_step(Exec(), x, m, v, u, 1e-6, 1e-8); });
}

BENCHMARK_TEMPLATE(BM_UpdateSgd, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_UpdateAmsgrad, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_UpdateAmsgrad, double) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_UpdateAdagrad, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_UpdateAdagrad, double) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_UpdateAdaAlterLocal, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_UpdateAdaAlterSync, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_UpdateAverageInPlace, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_UpdateAdam, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_UpdateMomentumBlend, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_UpdateFrozenAdam, float) TERSE_SIZES;
#undef TERSE_SIZES

}  // namespace
