// Kernel benchmarks: bytes each kernel must move, per second, against the STREAM-like reference whose
// traffic it resembles (sign pack: read-only; unpack: copy; fused apply and vote-apply: in-place update).
#include "terse_BenchUtils.hpp"

#include <terse_Compress.hpp>
#include <terse_Compressor.hpp>
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

BENCHMARK(BM_StreamCopy) TERSE_SIZES;
BENCHMARK(BM_StreamRead) TERSE_SIZES;
BENCHMARK(BM_StreamUpdate) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_SignPack, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_SignPack, double) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_SignUnpack, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_SignApply, float) TERSE_SIZES;

}  // namespace

namespace {

// --- compressors: one fused pass each --------------------------------------------------------------------

template <class T>
void fill_gaussian_like(const Kokkos::View<T*, Mem>& x, std::uint32_t salt) {
  const CounterRng rng{salt, 0};
  Kokkos::parallel_for("bench::fill", Kokkos::RangePolicy<Exec>(0, x.extent(0)),
                       KOKKOS_LAMBDA(std::size_t i) { x(i) = static_cast<T>(rng.uniform(0, 0, i) - 0.5); });
}

// Scaled sign C(x) = ||x||_1/d sign(x): must read x and write the bits (read-only traffic).
template <class T>
void BM_ScaledSign(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  Kokkos::View<T*, Mem> x("x", n);
  fill_gaussian_like(x, 1);
  SignMessage<Exec, T> msg(n);
  SumWorkspace<Exec> ws(n);
  const double bytes = sizeof(T) * double(n) + n / 8.0;
  run_against_reference(state, Exec(), bytes, Reference::read, s, [&] { scaled_sign_compress(Exec(), x, msg, ws); });
}

// Stochastic sign ||x||_2 sign~(x): must read x (twice here: the norm, then the random signs) and write the
// bits; counted as one read, so the ratio shows the cost of the second pass and of the generator.
template <class T>
void BM_StochasticSign(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  Kokkos::View<T*, Mem> x("x", n);
  fill_gaussian_like(x, 5);
  SignMessage<Exec, T> msg(n);
  SumWorkspace<Exec> ws(n);
  const CounterRng rng{1, static_cast<std::uint32_t>(RandomStream::stochastic_sign)};
  std::uint64_t k = 0;
  const double bytes = sizeof(T) * double(n) + n / 8.0;
  run_against_reference(state, Exec(), bytes, Reference::read, s,
                        [&] { stochastic_sign_compress(Exec(), x, rng, k++, 0, msg, ws); });
}

// Error feedback p = g + e; c = C(p); e <- p - c: must read g and e, write e and the bits.
template <class T>
void BM_ErrorFeedback(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  Kokkos::View<T*, Mem> g("g", n);
  fill_gaussian_like(g, 2);
  ErrorFeedback<Exec, T> ef(n);
  ef.compress(Exec(), g);  // from the second call on, every call also applies the previous correction
  const double bytes = 3.0 * sizeof(T) * double(n) + n / 8.0;
  run_against_reference(state, Exec(), bytes, Reference::update, s, [&] { ef.compress(Exec(), g); });
}

// Markov sequence c = C(w - w_hat); w_hat <- w_hat + c: must read w and w_hat, write w_hat and the bits.
template <class T>
void BM_Markov(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  Kokkos::View<T*, Mem> w("w", n);
  fill_gaussian_like(w, 3);
  MarkovCompressor<Exec, T> markov(n);
  markov.compress(Exec(), w);
  const double bytes = 3.0 * sizeof(T) * double(n) + n / 8.0;
  run_against_reference(state, Exec(), bytes, Reference::update, s, [&] { markov.compress(Exec(), w); });
}

// The sharded server's blocks: markov_sign_block reads w and w_hat and writes the bits (w_hat is updated later by
// message_add); error_feedback_sign_block reads g and e, writes p = g + e into e and the bits.
template <class T>
void BM_MarkovBlock(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  Kokkos::View<T*, Mem> w("w", n), w_hat("w_hat", n);
  fill_gaussian_like(w, 5);
  Kokkos::View<sign_word_t*, Mem> words("words", packed_words(n));
  SumWorkspace<Exec> ws(n);
  const double bytes = 2.0 * sizeof(T) * double(n) + n / 8.0;
  run_against_reference(state, Exec(), bytes, Reference::read, s, [&] { markov_sign_block(Exec(), w, w_hat, words, ws); });
}

template <class T>
void BM_ErrorFeedbackBlock(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  Kokkos::View<T*, Mem> g("g", n), e("e", n);
  fill_gaussian_like(g, 6);
  Kokkos::View<sign_word_t*, Mem> words("words", packed_words(n));
  SumWorkspace<Exec> ws(n);
  const double bytes = 3.0 * sizeof(T) * double(n) + n / 8.0;
  // Without the caller's e <- p - c, e grows by g per call: linearly, far from overflow in a benchmark's calls.
  run_against_reference(state, Exec(), bytes, Reference::update, s,
                        [&] { error_feedback_sign_block(Exec(), g, e, words, ws); });
}

// Decoding y <- y + alpha * c: reads the bits, reads and writes y (in-place update traffic).
template <class T>
void BM_MessageAdd(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const StreamReferences s(n);
  Kokkos::View<T*, Mem> x("x", n), y("y", n);
  fill_gaussian_like(x, 4);
  SignMessage<Exec, T> msg(n);
  SumWorkspace<Exec> ws(n);
  scaled_sign_compress(Exec(), x, msg, ws);
  const double bytes = 2.0 * sizeof(T) * double(n) + n / 8.0;
  run_against_reference(state, Exec(), bytes, Reference::update, s, [&] { message_add(Exec(), msg, y, T(0.5)); });
}

// --- majority vote: bit-sliced counting against unpacking to integers ---------------------------------------

struct UnpackedVote {
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Mem> signs;
  Kokkos::View<sign_word_t*, Mem> vote, tie;
  int voters;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t w) const {
    int count[64];
    for (int j = 0; j < 64; ++j) count[j] = 0;
    for (int v = 0; v < voters; ++v) {
      const sign_word_t bits = signs(v, w);
      for (int j = 0; j < 64; ++j) count[j] += static_cast<int>((bits >> j) & 1u);
    }
    sign_word_t out = 0, ties = 0;
    for (int j = 0; j < 64; ++j) {
      out |= static_cast<sign_word_t>(2 * count[j] > voters) << j;
      ties |= static_cast<sign_word_t>(2 * count[j] == voters) << j;
    }
    vote(w) = out;
    tie(w) = ties;
  }
};

void vote_inputs(const Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Mem>& signs) {
  const CounterRng rng{9, 0};
  const std::size_t nw = signs.extent(1);
  Kokkos::parallel_for("bench::vote_inputs", Kokkos::RangePolicy<Exec>(0, signs.extent(0) * nw),
                       KOKKOS_LAMBDA(std::size_t k) {
                         const auto r = rng.draw(0, 0, k);
                         signs(k / nw, k % nw) = (sign_word_t(r.v[0]) << 32) | r.v[1];
                       });
}

// Vote over W packed vectors of n coordinates: must read W n / 8 bytes and write 2 n / 8.
void BM_MajorityVote(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const int voters = static_cast<int>(state.range(1));
  const std::size_t nw = packed_words(n);
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Mem> signs("signs", voters, nw);
  Kokkos::View<sign_word_t*, Mem> vote("vote", nw), tie("tie", nw), vote2("vote2", nw), tie2("tie2", nw);
  vote_inputs(signs);
  std::vector<double> sliced, unpacked;
  for (auto _ : state) {
    const double t = fenced_seconds(Exec(), [&] { majority_vote(Exec(), signs, vote, tie); });
    state.SetIterationTime(t);
    sliced.push_back(t);
    unpacked.push_back(fenced_seconds(Exec(), [&] {
      Kokkos::parallel_for("bench::vote_unpacked", Kokkos::RangePolicy<Exec>(0, nw),
                           UnpackedVote{signs, vote2, tie2, voters});
    }));
  }
  const double bytes = (voters + 2.0) * nw * sizeof(sign_word_t);
  state.SetBytesProcessed(static_cast<int64_t>(bytes * state.iterations()));
  state.counters["median_GBps"] = bytes / median(sliced) * 1e-9;
  state.counters["unpacked_median_GBps"] = bytes / median(unpacked) * 1e-9;
  state.counters["speedup_vs_unpacked"] = median(unpacked) / median(sliced);
}

// The server's mean of W scaled-sign messages (sign_mean): reads W n / 8 bytes of signs, writes n values (with
// accumulate, reads them too); against the copy reference.
void BM_SignMean(benchmark::State& state) {
  const std::size_t n = state.range(0);
  const int voters = static_cast<int>(state.range(1));
  const bool accumulate = state.range(2) != 0;
  const StreamReferences s(n);
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, Mem> signs("signs", voters, packed_words(n));
  vote_inputs(signs);
  Kokkos::View<float*, Mem> scales("scales", voters), out("out", n);
  Kokkos::deep_copy(scales, 0.5f);
  const double bytes = (accumulate ? 8.0 : 4.0) * double(n) + voters * double(packed_words(n)) * sizeof(sign_word_t);
  run_against_reference(state, Exec(), bytes, accumulate ? Reference::update : Reference::copy, s,
                        [&] { sign_mean(Exec(), signs, scales, out, 1.0 / voters, accumulate); });
}

BENCHMARK_TEMPLATE(BM_ScaledSign, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_StochasticSign, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_ErrorFeedback, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_Markov, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_MarkovBlock, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_ErrorFeedbackBlock, float) TERSE_SIZES;
BENCHMARK_TEMPLATE(BM_MessageAdd, float) TERSE_SIZES;
BENCHMARK(BM_MajorityVote)
    ->ArgsProduct({{1 << 20, largest_size()}, {2, 3, 8, 32}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SignMean)
    ->ArgsProduct({{1 << 20, largest_size()}, {2, 8}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
