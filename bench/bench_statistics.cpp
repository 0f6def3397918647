// Statistics kernel benchmarks (terse_Statistics.hpp): bytes each kernel must move, per second, against the
// STREAM-like reference whose traffic it resembles. n is the number of coordinates.
//   sign agreement count      reads 2 packed vectors                               vs read
//   agreement accumulate      reads 2 packed vectors, reads+writes int32 counts     vs update
//   batch accumulate (16)     reads 16 + 1 packed vectors, reads+writes counts      vs update
//   success probabilities     reads int32 counts, writes fp32 rho                   vs copy
//   rho-norm, rho_M-norm      read g and rho                                       vs read
//   eta* (16 samples)         reads the (16, n/16) batch once                      vs read
#include "terse_BenchUtils.hpp"

#include <terse_Statistics.hpp>

namespace {

using namespace terse;
using namespace terse::bench;

using WordView = Kokkos::View<sign_word_t*, Mem>;

void fill_words(const WordView& w, std::uint64_t salt) {
  Kokkos::parallel_for(
      "bench::fill_words", Kokkos::RangePolicy<Exec>(0, w.extent(0)),
      KOKKOS_LAMBDA(std::size_t i) { w(i) = (i + salt) * 0x9E3779B97F4A7C15ull ^ (salt << 17); });
}

template <class View>
void fill_values(const View& v, double lo, double hi) {
  using T = typename View::non_const_value_type;
  Kokkos::parallel_for(
      "bench::fill_values", Kokkos::RangePolicy<Exec>(0, v.size()), KOKKOS_LAMBDA(std::size_t i) {
        const double u = static_cast<double>((i * 2654435761u) % 1000003u) / 1000003.0;
        v.data()[i] = static_cast<T>(lo + (hi - lo) * u);
      });
}

void BM_Statistics_SignAgreement(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  WordView a("a", packed_words(n)), b("b", packed_words(n));
  fill_words(a, 1);
  fill_words(b, 2);
  const double bytes = 2.0 * sizeof(sign_word_t) * double(packed_words(n));
  run_against_reference(state, Exec(), bytes, Reference::read, s,
                        [&] { benchmark::DoNotOptimize(sign_agreement(Exec(), a, b, n)); });
}

void BM_Statistics_AgreementAccumulate(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  WordView a("a", packed_words(n)), ref("ref", packed_words(n));
  fill_words(a, 3);
  fill_words(ref, 4);
  Kokkos::View<std::int32_t*, Mem> counts("counts", n);
  const double bytes = 2.0 * sizeof(sign_word_t) * double(packed_words(n)) + 2.0 * sizeof(std::int32_t) * double(n);
  run_against_reference(state, Exec(), bytes, Reference::update, s,
                        [&] { sign_agreement_accumulate(Exec(), a, ref, counts); });
}

void BM_Statistics_AgreementAccumulateBatch16(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const int samples = 16;
  const StreamReferences s(n);
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Mem> batch("batch", samples, packed_words(n));
  WordView flat(batch.data(), batch.size()), ref("ref", packed_words(n));
  fill_words(flat, 5);
  fill_words(ref, 6);
  Kokkos::View<std::int32_t*, Mem> counts("counts", n);
  const double bytes =
      (samples + 1.0) * sizeof(sign_word_t) * double(packed_words(n)) + 2.0 * sizeof(std::int32_t) * double(n);
  run_against_reference(state, Exec(), bytes, Reference::update, s,
                        [&] { sign_agreement_accumulate(Exec(), batch, ref, counts); });
}

void BM_Statistics_SuccessProbabilities(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  Kokkos::View<std::int32_t*, Mem> counts("counts", n);
  Kokkos::deep_copy(counts, 700);
  Kokkos::View<float*, Mem> rho("rho", n);
  const double bytes = (sizeof(std::int32_t) + sizeof(float)) * double(n);
  run_against_reference(state, Exec(), bytes, Reference::copy, s,
                        [&] { success_probabilities(Exec(), counts, 1000.0, rho); });
}

template <class T>
void BM_Statistics_RhoNorm(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  Kokkos::View<T*, Mem> g("g", n), rho("rho", n);
  fill_values(g, -2.0, 2.0);
  fill_values(rho, 0.5, 1.0);
  const double bytes = 2.0 * sizeof(T) * double(n);
  run_against_reference(state, Exec(), bytes, Reference::read, s,
                        [&] { benchmark::DoNotOptimize(rho_norm(Exec(), g, rho)); });
}

// rho_M-norm evaluates I(rho_i; l, l) (a continued fraction, a log, a log1p and an exp) per coordinate:
// compute-bound on CPUs; the ratio to the read reference shows how far from memory speed it is.
void BM_Statistics_RhoMNorm(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  Kokkos::View<float*, Mem> g("g", n), rho("rho", n);
  fill_values(g, -2.0, 2.0);
  fill_values(rho, 0.5, 1.0);
  const double bytes = 2.0 * sizeof(float) * double(n);
  run_against_reference(state, Exec(), bytes, Reference::read, s,
                        [&] { benchmark::DoNotOptimize(rho_M_norm(Exec(), g, rho, 8)); });
}

// eta* from a batch of 16 per-sample fp32 gradients of dimension n/16 (n values in all).
void BM_Statistics_EtaStarBatch16(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const std::size_t m = 16, d = n / m;
  const StreamReferences s(n);
  Kokkos::View<float**, Kokkos::LayoutRight, Mem> grads("grads", m, d);
  fill_values(grads, -1.0, 1.5);
  const double bytes = sizeof(float) * double(m * d);
  run_against_reference(state, Exec(), bytes, Reference::read, s,
                        [&] { benchmark::DoNotOptimize(eta_star(Exec(), grads, double(d))); });
}

BENCHMARK(BM_Statistics_SignAgreement) TERSE_SIZES;
BENCHMARK(BM_Statistics_AgreementAccumulate) TERSE_SIZES;
BENCHMARK(BM_Statistics_AgreementAccumulateBatch16) TERSE_SIZES;
BENCHMARK(BM_Statistics_SuccessProbabilities) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_Statistics_RhoNorm, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_Statistics_RhoNorm, double) TERSE_SIZES;
BENCHMARK(BM_Statistics_RhoMNorm) TERSE_SIZES;
BENCHMARK(BM_Statistics_EtaStarBatch16) TERSE_SIZES;
#undef TERSE_SIZES

}  // namespace
