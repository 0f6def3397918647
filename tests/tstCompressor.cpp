// The compressor concept (terse_Compressor.hpp) on every backend: each of the eight compressors (the six of
// terse_Compressor.hpp, QSGD and TernGrad of terse_Qsgd.hpp; tstQsgd.cpp checks those two in depth) against its
// definition, and the memories written once over them (error feedback, the Markov sequence, momentum) against
// their recursions with every compressor: the message a memory sends is the compressor's message of the vector
// the recursion defines (a fresh compressor, fed that vector, must give the same bits), and its state is the
// recursion's, computed here in plain loops from the decoded messages. The sizes each type reports are the bytes
// Kokkos saw it allocate.
#include "terse_TestBackends.hpp"

#include <terse_AllocationTracker.hpp>
#include <terse_Compressor.hpp>
#include <terse_Qsgd.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace {

using namespace terse;
using namespace terse::test;

std::vector<float> normals(std::size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> g(0.0f, scale);
  std::vector<float> x(n);
  for (auto& v : x) v = g(gen);
  return x;
}

// ---- decoding a message on the host, from its definition ------------------------------------------------------

template <class E>
std::vector<float> decode(const DenseMessage<E, float>& m) {
  return to_host(m.values);
}
template <class E>
std::vector<float> decode(const SignMessage<E, float>& m) {
  const auto words = to_host(m.words);
  float s = 0;
  Kokkos::deep_copy(s, m.scale);
  std::vector<float> c(m.n);
  for (std::size_t i = 0; i < m.n; ++i) c[i] = ((words[i / 64] >> (i % 64)) & 1u) ? s : -s;
  return c;
}
template <class E>
std::vector<float> decode(const QsgdMessage<E, float>& m) {  // sign * norm * level / s, from the layout
  const auto planes = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m.planes);
  const auto norms = to_host(m.norms);
  std::vector<float> c(m.n);
  for (std::size_t i = 0; i < m.n; ++i) {
    unsigned level = 0;
    for (std::size_t p = 1; p < planes.extent(0); ++p) level |= ((planes(p, i / 64) >> (i % 64)) & 1u) << (p - 1);
    const double v = double(norms[i / m.bucket]) * level / m.levels;
    c[i] = static_cast<float>(((planes(0, i / 64) >> (i % 64)) & 1u) ? v : -v);
  }
  return c;
}
template <class E>
std::vector<float> decode(const SparseMessage<E, float>& m) {
  std::vector<float> c(m.n, 0.0f);
  const auto idx = to_host(m.indices);
  const auto val = to_host(m.values);
  for (std::size_t j = 0; j < idx.size(); ++j) c[idx[j]] = val[j];
  return c;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// ---- the families and what each is built from ---------------------------------------------------------------

using Families = std::tuple<Fp32, Sign, ScaledSign, StochasticSign, TopK, RandK, Qsgd, TernGrad>;

template <class F>
void for_each_family(F&& f) {
  std::apply([&](auto... family) { (f(family), ...); }, Families{});
}

template <class C>
CompressorOptions options_of() {
  CompressorOptions o;
  o.k = 37;
  o.levels = 5;   // qsgd: 3 level bits
  o.bucket = 128; // qsgd, terngrad: 8 norms for n = 1000
  o.rng = CounterRng{11, static_cast<std::uint32_t>(C::stream)};
  o.worker = 3;
  return o;
}

/// The compressor's message of x at iteration t, from a compressor built afresh (the reference).
template <class C, class E>
std::vector<float> fresh_message(const std::vector<float>& x, std::uint64_t t) {
  C c(x.size(), options_of<C>());
  return decode(c.compress(E(), to_device<E>(x), t));
}

template <class ExecSpace>
class Compressors : public ::testing::Test {};
TYPED_TEST_SUITE(Compressors, ExecSpaces);

// Each compressor against its definition, on one vector.
TYPED_TEST(Compressors, EachCompressorIsItsDefinition) {
  using E = TypeParam;
  const std::size_t n = 1000;
  const auto x = normals(n, 7);
  double l1 = 0, l2 = 0;
  for (float v : x) l1 += std::fabs(double(v)), l2 += double(v) * v;
  l2 = std::sqrt(l2);
  for_each_family([&](auto family) {
    using C = typename decltype(family)::template compressor<E, float>;
    SCOPED_TRACE(C::name);
    const auto c = fresh_message<C, E>(x, 5);
    ASSERT_EQ(c.size(), n);
    const std::string name = C::name;
    const CompressorSizes z = C::sizes(n, options_of<C>());
    std::size_t nonzero = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (c[i] != 0) ++nonzero;
      if (name == "fp32") ASSERT_EQ(c[i], x[i]) << i;
      if (name == "sign") ASSERT_EQ(c[i], x[i] >= 0 ? 1.0f : -1.0f) << i;
      if (name == "scaled_sign") ASSERT_NEAR(c[i], (x[i] >= 0 ? 1 : -1) * l1 / n, 1e-5 * l1 / n) << i;
      if (name == "stochastic_sign") ASSERT_NEAR(std::fabs(c[i]), l2, 1e-5 * l2) << i;
      if (name == "rand_k" && c[i] != 0) ASSERT_EQ(c[i], static_cast<float>(double(n) / 37) * x[i]) << i;
    }
    if (name == "top_k") {  // the 37 largest |x_i|, as they are
      std::vector<float> mags;
      for (float v : x) mags.push_back(std::fabs(v));
      std::sort(mags.begin(), mags.end(), std::greater<>());
      for (std::size_t i = 0; i < n; ++i)
        if (c[i] != 0) {
          ASSERT_EQ(c[i], x[i]);
          ASSERT_GE(std::fabs(x[i]), mags[36]);
        }
    }
    const bool quantized = name == "qsgd" || name == "terngrad";
    const std::size_t level_bits = name == "qsgd" ? 3 : 1;  // ceil(log2(5 + 1)); terngrad's s = 1
    if (name == "top_k" || name == "rand_k") EXPECT_EQ(nonzero, 37u);
    else if (quantized) EXPECT_GT(nonzero, n / 4);  // level 0 is a zero
    else EXPECT_EQ(nonzero, n);
    // The sizes it reports: payload bits and wire bytes by the documented formulas (docs/hdf5.md).
    const double bits = name == "fp32" ? 32.0 * n : name == "sign" ? double(n) : (name == "top_k" || name == "rand_k") ? 64.0 * 37
                        : quantized ? 32.0 * 8 + double(1 + level_bits) * n : n + 32.0;
    EXPECT_EQ(z.bits, bits);
    const std::size_t wire = name == "fp32" ? 4 * n : name == "sign" ? 8 * packed_words(n)
                             : (name == "top_k" || name == "rand_k") ? 8 * 37
                             : quantized ? 4 * 8 + 8 * (1 + level_bits) * packed_words(n) : 8 * packed_words(n) + 4;
    EXPECT_EQ(z.wire, wire);
    // A random compressor draws from its own stream: another iteration, another message; the same, the same.
    if (C::random) {
      EXPECT_FALSE(same_bits(c, fresh_message<C, E>(x, 6)));
      EXPECT_TRUE(same_bits(c, fresh_message<C, E>(x, 5)));
    }
  });
}

// Error feedback over every compressor (seed 004 Sec. 4): p = g + e; c = C(p); e <- p - c.
TYPED_TEST(Compressors, ErrorFeedbackFollowsItsRecursionWithEveryCompressor) {
  using E = TypeParam;
  const std::size_t n = 1000;
  for_each_family([&](auto family) {
    using F = decltype(family);
    using C = typename F::template compressor<E, float>;
    SCOPED_TRACE(C::name);
    ErrorFeedback<E, float, F> ef(n, options_of<C>());
    std::vector<float> e(n, 0.0f);
    for (std::uint64_t t = 0; t < 5; ++t) {
      const auto g = normals(n, 100 + static_cast<unsigned>(t));
      const auto c = decode(ef.compress(E(), to_device<E>(g), t));
      std::vector<float> p(n);
      for (std::size_t i = 0; i < n; ++i) p[i] = g[i] + e[i];
      ASSERT_TRUE(same_bits(c, fresh_message<C, E>(p, t))) << "t = " << t << ": the message is not C(g + e)";
      for (std::size_t i = 0; i < n; ++i) e[i] = p[i] - c[i];
      if (t % 2 == 1) ASSERT_TRUE(same_bits(to_host(ef.error(E())), e)) << "t = " << t;
    }
    EXPECT_TRUE(same_bits(to_host(ef.memory(E())), e));
  });
}

// The Markov sequence over every compressor (seed 004 Sec. 5, EF21): c = C(w - w_hat); w_hat <- w_hat + c.
TYPED_TEST(Compressors, MarkovFollowsItsRecursionWithEveryCompressor) {
  using E = TypeParam;
  const std::size_t n = 1000;
  for_each_family([&](auto family) {
    using F = decltype(family);
    using C = typename F::template compressor<E, float>;
    SCOPED_TRACE(C::name);
    MarkovCompressor<E, float, F> markov(n, options_of<C>());
    std::vector<float> w_hat(n, 0.0f);
    for (std::uint64_t t = 0; t < 5; ++t) {
      const auto w = normals(n, 200 + static_cast<unsigned>(t));
      const auto c = decode(markov.compress(E(), to_device<E>(w), t));
      std::vector<float> diff(n);
      for (std::size_t i = 0; i < n; ++i) diff[i] = w[i] - w_hat[i];
      ASSERT_TRUE(same_bits(c, fresh_message<C, E>(diff, t))) << "t = " << t << ": the message is not C(w - w_hat)";
      for (std::size_t i = 0; i < n; ++i) w_hat[i] = w_hat[i] + c[i];
      if (t % 2 == 0) ASSERT_TRUE(same_bits(to_host(markov.estimate(E())), w_hat)) << "t = " << t;
    }
    EXPECT_TRUE(same_bits(to_host(markov.memory(E())), w_hat));
  });
}

// Momentum over every compressor (Signum): m <- b m + (1 - b) g; c = C(m).
TYPED_TEST(Compressors, MomentumFollowsItsRecursionWithEveryCompressor) {
  using E = TypeParam;
  const std::size_t n = 1000;
  const double beta = 0.75;
  for_each_family([&](auto family) {
    using F = decltype(family);
    using C = typename F::template compressor<E, float>;
    SCOPED_TRACE(C::name);
    Momentum<E, float, F> mom(n, beta, options_of<C>());
    std::vector<float> m(n, 0.0f);
    const float b = static_cast<float>(beta), cb = static_cast<float>(1.0 - beta);
    for (std::uint64_t t = 0; t < 4; ++t) {
      const auto g = normals(n, 300 + static_cast<unsigned>(t));
      const auto c = decode(mom.compress(E(), to_device<E>(g), t));
      for (std::size_t i = 0; i < n; ++i) m[i] = b * m[i] + cb * g[i];
      ASSERT_TRUE(same_bits(to_host(mom.momentum()), m)) << "t = " << t;
      ASSERT_TRUE(same_bits(c, fresh_message<C, E>(m, t))) << "t = " << t << ": the message is not C(m)";
    }
  });
}

// The sign's pieces (the chunked exchange): the message formed piece by piece, word-aligned, is the whole one's;
// with momentum too.
TYPED_TEST(Compressors, PiecesOfTheSignAreTheWholeMessage) {
  using E = TypeParam;
  const std::size_t n = 1000;  // 16 words, the last partial
  const auto g = to_device<E>(normals(n, 9));
  CompressorOptions o;
  o.own_message = false;  // the pieces go straight into the caller's words
  NoMemory<E, float, Sign> plain(n, o);
  Momentum<E, float, Sign> mom(n, 0.5, o), mom_whole(n, 0.5);
  Kokkos::View<sign_word_t*, typename E::memory_space> words("words", packed_words(n)), momw("momw", packed_words(n));
  const std::vector<std::pair<std::size_t, std::size_t>> pieces = {{0, 192}, {192, 640}, {640, 1000}};
  for (const auto& [b, e] : pieces) {
    const auto r = std::make_pair(b / 64, (e + 63) / 64);
    plain.compress_piece(E(), g, b, e, Kokkos::subview(words, r));
    mom.compress_piece(E(), g, b, e, Kokkos::subview(momw, r));
  }
  SignCompressor<E, float> whole(n);
  EXPECT_EQ(to_host(words), to_host(whole.compress(E(), g).words));
  EXPECT_EQ(to_host(momw), to_host(mom_whole.compress(E(), g).words));
  EXPECT_THROW(plain.compress(E(), g), std::invalid_argument);  // built without its own message
}

// sizes() is what the constructors allocate: the memory estimates of `terse run` are these numbers. Kokkos
// rounds each allocation up to 8 bytes (a scale's 4 count 8), so the count may exceed sizes() by a few bytes per
// array, never by an array (a forgotten d-vector is 20000 bytes here).
TYPED_TEST(Compressors, SizesAreWhatTheConstructorsAllocate) {
  using E = TypeParam;
  const std::size_t n = 5000;
  for_each_family([&](auto family) {
    using F = decltype(family);
    using C = typename F::template compressor<E, float>;
    SCOPED_TRACE(C::name);
    const CompressorOptions o = options_of<C>();
    const auto expect_sizes = [&](const char* what, auto make, std::size_t reported) {
      AllocationTracker tracker;
      auto object = make();
      (void)object;
      const auto counted = static_cast<std::size_t>(tracker.current());
      EXPECT_GE(counted, reported) << what;
      EXPECT_LE(counted, reported + 64) << what;
    };
    expect_sizes("compressor", [&] { return C(n, o); }, C::sizes(n, o).allocated);
    expect_sizes("none", [&] { return NoMemory<E, float, F>(n, o); }, NoMemory<E, float, F>::sizes(n, o).allocated);
    expect_sizes("error feedback", [&] { return ErrorFeedback<E, float, F>(n, o); },
                 ErrorFeedback<E, float, F>::sizes(n, o).allocated);
    expect_sizes("markov", [&] { return MarkovCompressor<E, float, F>(n, o); },
                 MarkovCompressor<E, float, F>::sizes(n, o).allocated);
    expect_sizes("momentum", [&] { return Momentum<E, float, F>(n, 0.9, o); },
                 Momentum<E, float, F>::sizes(n, o).allocated);
    if constexpr (std::is_same_v<F, Sign>) {  // the by-piece encoders' form: no message buffer of its own
      CompressorOptions pieces = o;
      pieces.own_message = false;
      expect_sizes("none, by pieces", [&] { return NoMemory<E, float, F>(n, pieces); },
                   NoMemory<E, float, F>::sizes(n, pieces).allocated);
      expect_sizes("momentum, by pieces", [&] { return Momentum<E, float, F>(n, 0.9, pieces); },
                   Momentum<E, float, F>::sizes(n, pieces).allocated);
      EXPECT_EQ((NoMemory<E, float, F>::sizes(n, pieces).allocated), 0u);
    }
  });
}

}  // namespace
