// Kernel benchmarks: bytes each kernel must move, per second, against the STREAM-like reference whose
// traffic it resembles (sign pack: read-only; unpack: copy; fused apply and vote-apply: in-place update).
#include "terse_BenchUtils.hpp"

#include <terse_Sign.hpp>
#include <terse_Vote.hpp>

namespace {

using namespace terse;
using namespace terse::bench;

// Reference timings on their own: the figures the kernel ratios are measured against.
void BM_StreamCopy(benchmark::State& state) {
  const StreamReferences s(state.range(0));
  run_against_reference(state, Exec(), s.copy_bytes(), Reference::copy, s, [&] { s.copy(Exec()); });
}
void BM_StreamRead(benchmark::State& state) {
  const StreamReferences s(state.range(0));
  run_against_reference(state, Exec(), s.read_bytes(), Reference::read, s,
                        [&] { benchmark::DoNotOptimize(s.read(Exec())); });
}
void BM_StreamUpdate(benchmark::State& state) {
  const StreamReferences s(state.range(0));
  run_against_reference(state, Exec(), s.update_bytes(), Reference::update, s, [&] { s.update(Exec()); });
}

template <class T>
void BM_SignPack(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  Kokkos::View<T*, Mem> x("x", n);
  Kokkos::parallel_for("bench::init", Kokkos::RangePolicy<Exec>(0, n),
                       KOKKOS_LAMBDA(std::size_t i) { x(i) = (i * 2654435761u) % 3 == 0 ? T(-1) : T(1); });
  Kokkos::View<sign_word_t*, Mem> words("words", packed_words(n));
  const double bytes = sizeof(T) * double(n) + sizeof(sign_word_t) * double(packed_words(n));
  run_against_reference(state, Exec(), bytes, Reference::read, s, [&] { sign_pack(Exec(), x, words); });
}

template <class T>
void BM_SignUnpack(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  Kokkos::View<T*, Mem> y("y", n);
  Kokkos::View<sign_word_t*, Mem> words("words", packed_words(n));
  Kokkos::deep_copy(words, sign_word_t(0x5555555555555555ull));
  const double bytes = sizeof(T) * double(n) + sizeof(sign_word_t) * double(packed_words(n));
  run_against_reference(state, Exec(), bytes, Reference::copy, s, [&] { sign_unpack(Exec(), words, y, T(0.5)); });
}

template <class T>
void BM_SignApply(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  Kokkos::View<T*, Mem> x("x", n);
  Kokkos::View<sign_word_t*, Mem> words("words", packed_words(n));
  Kokkos::deep_copy(words, sign_word_t(0x5555555555555555ull));
  const double bytes = 2.0 * sizeof(T) * double(n) + sizeof(sign_word_t) * double(packed_words(n));
  run_against_reference(state, Exec(), bytes, Reference::update, s, [&] { sign_apply(Exec(), words, x, T(1e-3)); });
}

#define TERSE_SIZES ->RangeMultiplier(16)->Range(1 << 18, 1 << 26)->UseManualTime()->Unit(benchmark::kMillisecond)
BENCHMARK(BM_StreamCopy) TERSE_SIZES;
BENCHMARK(BM_StreamRead) TERSE_SIZES;
BENCHMARK(BM_StreamUpdate) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_SignPack, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_SignPack, double) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_SignUnpack, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_SignApply, float) TERSE_SIZES;

}  // namespace
