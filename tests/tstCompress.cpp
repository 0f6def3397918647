// Compressors and compressor memories against scalar references written from the seeds' formulas:
// deterministic sums, scaled sign, stochastic sign, message decoding, error feedback, Markov sequences and their
// block kernel (markov_sign_block).
#include "terse_TestBackends.hpp"
#include "terse_TestReference.hpp"

#include <terse_Compress.hpp>
#include <terse_Compressor.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <type_traits>
#include <utility>

namespace {

using namespace terse;
using namespace terse::test;

template <class ExecSpace>
class Compress : public ::testing::Test {};
TYPED_TEST_SUITE(Compress, ExecSpaces);

template <class T>
double scalar_l1(const std::vector<T>& x) {
  double s = 0;
  for (T v : x) s += std::fabs(double(v));
  return s;
}

template <class T>
std::vector<T> gaussian(std::size_t n, unsigned seed, double scale = 1.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<T> x(n);
  for (auto& v : x) v = static_cast<T>(normal(gen));
  return x;
}

// The scale of a scaled-sign message: the kernel sums |p_i| in T within each word of 64 (relative error of
// a sum of terms of one sign below 7 * 2^-24 = 4.2e-7 in fp32) and in double across words (below
// n/64 * 2^-53); the scale is then rounded to T (3e-8 in fp32). The scalar reference sums in double in
// index order (n * 2^-53, 1.1e-11 for n = 1e5). Tolerances: 5e-7 in fp32, 2e-11 in fp64.
template <class T>
double scale_tolerance() {
  return std::is_same<T, float>::value ? 5e-7 : 2e-11;
}

TYPED_TEST(Compress, DeterministicSumMatchesScalarSumAndIsTheSameOnEveryBackend) {
  for (std::size_t n : {0ul, 1ul, 63ul, 64ul, 65ul, 4096ul, 4097ul, 300001ul}) {
    const auto x = gaussian<double>(n, 3 + static_cast<unsigned>(n));
    const auto xd = to_device<TypeParam>(x);
    SumWorkspace<TypeParam> ws(n);
    deterministic_sum(TypeParam(), xd, n, ws);
    const double got = ws.host_result();
    double ref = 0, ref_abs = 0;
    for (double v : x) ref += v, ref_abs += std::fabs(v);
    EXPECT_NEAR(got, ref, 1e-15 * n * ref_abs + 1e-300) << "n = " << n;
    // Bitwise the same as on Serial (one thread, against the typed backend's threads).
    using Host = ReferenceHost;
    SumWorkspace<Host> ws_h(n);
    auto xh = to_device<Host>(x);
    deterministic_sum(Host(), xh, n, ws_h);
    EXPECT_EQ(got, ws_h.host_result()) << "n = " << n;
  }
}

template <class ExecSpace, class T>
void check_scaled_sign(std::size_t n, unsigned seed) {
  const auto x = mixed_values<T>(n, seed);
  std::vector<T> xs = x;
  for (auto& v : xs)
    if (std::fabs(double(v)) > 1e10) v = T(3);  // keep the l1 norm finite in fp32
  SignMessage<ExecSpace, T> msg(n);
  SumWorkspace<ExecSpace> ws(n);
  scaled_sign_compress(ExecSpace(), to_device<ExecSpace>(xs), msg, ws);
  const auto words = to_host(msg.words);
  EXPECT_EQ(words, reference_pack(xs)) << "n = " << n;
  T scale = 0;
  Kokkos::deep_copy(scale, msg.scale);
  const double ref = n ? scalar_l1(xs) / double(n) : 0.0;
  EXPECT_NEAR(double(scale), ref, scale_tolerance<T>() * ref) << "n = " << n;
  EXPECT_EQ(msg.payload_bits(), n + 8 * sizeof(T));
}

TYPED_TEST(Compress, ScaledSignBitsAndScaleMatchTheDefinition) {
  for (std::size_t n : {1ul, 63ul, 64ul, 65ul, 1000ul, 100003ul}) {
    check_scaled_sign<TypeParam, float>(n, 21 + static_cast<unsigned>(n));
    check_scaled_sign<TypeParam, double>(n, 23 + static_cast<unsigned>(n));
  }
}

TYPED_TEST(Compress, MessageAddDecodesScaleTimesSign) {
  const std::size_t n = 1001;
  const auto x = gaussian<float>(n, 5);
  SignMessage<TypeParam, float> msg(n);
  SumWorkspace<TypeParam> ws(n);
  scaled_sign_compress(TypeParam(), to_device<TypeParam>(x), msg, ws);
  float scale = 0;
  Kokkos::deep_copy(scale, msg.scale);
  const auto y0 = gaussian<float>(n, 6);
  auto y = to_device<TypeParam>(y0);
  message_add(TypeParam(), msg, y, 0.25f);
  const auto got = to_host(y);
  for (std::size_t i = 0; i < n; ++i) {
    const float c = (x[i] < 0 ? -1.0f : 1.0f) * scale;
    ASSERT_EQ(got[i], y0[i] + 0.25f * c) << i;
  }
}

// Stochastic sign, independent reference: norm by a sequential double sum, P[+1] = 1/2 + x_i / (2 norm),
// the same counter-based uniforms. Coordinates whose uniform lies within 1e-9 of the probability could flip
// with the last bit of the norm and are skipped (none are expected).
TYPED_TEST(Compress, StochasticSignMatchesTheDefinitionAndIsReproducible) {
  const std::size_t n = 100003;
  const auto x = gaussian<float>(n, 8);
  const CounterRng rng{77, static_cast<std::uint32_t>(RandomStream::stochastic_sign)};
  SignMessage<TypeParam, float> msg(n);
  SumWorkspace<TypeParam> ws(n);
  stochastic_sign_compress(TypeParam(), to_device<TypeParam>(x), rng, 12, 3, msg, ws);
  const auto words = to_host(msg.words);
  double sq = 0;
  for (float v : x) sq += double(v) * double(v);
  const double norm = std::sqrt(sq);
  std::size_t checked = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double p = 0.5 + 0.5 * double(x[i]) / norm;
    const double u = rng.uniform_lane(12, 3, i);
    if (std::fabs(u - p) < 1e-9) continue;
    ASSERT_EQ(reference_bit(words, i), u < p) << i;
    ++checked;
  }
  EXPECT_GT(checked, n - 10);
  float scale = 0;
  Kokkos::deep_copy(scale, msg.scale);
  EXPECT_NEAR(scale, norm, 1.2e-7 * norm);

  // The same on Serial (one thread, against the typed backend's threads): bitwise.
  using Host = ReferenceHost;
  SignMessage<Host, float> msg_h(n);
  SumWorkspace<Host> ws_h(n);
  stochastic_sign_compress(Host(), to_device<Host>(x), rng, 12, 3, msg_h, ws_h);
  EXPECT_EQ(words, to_host(msg_h.words));
}

TYPED_TEST(Compress, StochasticSignIsUnbiased) {
  // E[C(x)_i] = x_i and Var[C(x)_i] = ||x||^2 - x_i^2 (seed 001 App. E); the mean of K draws is within
  // 4.5 standard errors of x_i for every coordinate.
  const std::size_t n = 24;
  const auto x = gaussian<double>(n, 9);
  const auto xd = to_device<TypeParam>(x);
  const CounterRng rng{5, static_cast<std::uint32_t>(RandomStream::stochastic_sign)};
  SignMessage<TypeParam, double> msg(n);
  SumWorkspace<TypeParam> ws(n);
  Kokkos::View<double*, typename TypeParam::memory_space> sum("sum", n);
  const int draws = 4000;
  for (int k = 0; k < draws; ++k) {
    stochastic_sign_compress(TypeParam(), xd, rng, k, 0, msg, ws);
    message_add(TypeParam(), msg, sum, 1.0);
  }
  const auto total = to_host(sum);
  double norm2 = 0;
  for (double v : x) norm2 += v * v;
  for (std::size_t i = 0; i < n; ++i) {
    const double mean = total[i] / draws;
    const double se = std::sqrt((norm2 - x[i] * x[i]) / draws);
    EXPECT_NEAR(mean, x[i], 4.5 * se) << "coordinate " << i;
  }
  // The zero vector compresses to zero.
  Kokkos::View<double*, typename TypeParam::memory_space> zero("zero", n), y("y", n);
  stochastic_sign_compress(TypeParam(), zero, rng, 0, 0, msg, ws);
  message_add(TypeParam(), msg, y, 1.0);
  for (double v : to_host(y)) EXPECT_EQ(v, 0.0);
}

// Eager scalar error feedback (seed 004 Sec. 4): p = g + e; c = C(p); e = p - c. The scale comes from the
// kernel's message (checked against the scalar l1 norm separately), so the vectors compare bitwise.
TYPED_TEST(Compress, ErrorFeedbackFollowsTheEagerRecursion) {
  const std::size_t n = 1003;
  ErrorFeedback<TypeParam, float> ef(n);
  std::vector<float> e(n, 0.0f);
  for (int t = 0; t < 6; ++t) {
    const auto g = gaussian<float>(n, 100 + t);
    const auto& msg = ef.compress(TypeParam(), to_device<TypeParam>(g));
    std::vector<float> p(n);
    for (std::size_t i = 0; i < n; ++i) p[i] = g[i] + e[i];
    ASSERT_EQ(to_host(msg.words), reference_pack(p)) << "t = " << t;
    float scale = 0;
    Kokkos::deep_copy(scale, msg.scale);
    ASSERT_NEAR(scale, scalar_l1(p) / n, scale_tolerance<float>() * scalar_l1(p) / n) << "t = " << t;
    for (std::size_t i = 0; i < n; ++i) e[i] = p[i] - (p[i] < 0 ? -scale : scale);
    if (t % 2 == 1) {
      // Reading the error applies the pending update at once; the recursion continues unchanged.
      ASSERT_EQ(to_host(ef.error(TypeParam())), e) << "t = " << t;
    }
  }
  EXPECT_EQ(to_host(ef.error(TypeParam())), e);
}

TYPED_TEST(Compress, ErrorFeedbackErrorStaysBoundedOnAConstantGradient) {
  // With g constant, e_t = sum_{s<=t} (g - c_s) stays bounded (Karimireddy et al. 2019, seed 004 Sec. 4),
  // while naive compression accumulates the error t (g - C(g)) without bound.
  const std::size_t n = 50;
  const auto g = gaussian<float>(n, 31);
  const auto gd = to_device<TypeParam>(g);
  double gnorm = 0;
  for (float v : g) gnorm += double(v) * v;
  gnorm = std::sqrt(gnorm);
  ErrorFeedback<TypeParam, float> ef(n);
  double first_half = 0, second_half = 0;
  const int steps = 2000;
  for (int t = 0; t < steps; ++t) {
    ef.compress(TypeParam(), gd);
    if (t % 50 != 49) continue;
    double en = 0;
    for (float v : to_host(ef.error(TypeParam()))) en += double(v) * v;
    en = std::sqrt(en);
    (t < steps / 2 ? first_half : second_half) = std::max(t < steps / 2 ? first_half : second_half, en);
  }
  // No growth: the largest error of the second thousand steps is not above that of the first thousand.
  EXPECT_LE(second_half, 1.05 * first_half + 1e-6);
  EXPECT_GT(first_half, 0.1 * gnorm);  // the compressor is lossy here, so the test is not vacuous
  // Naive compression on the same input: || t (g - C(g)) || grows linearly.
  SignMessage<TypeParam, float> msg(n);
  SumWorkspace<TypeParam> ws(n);
  scaled_sign_compress(TypeParam(), gd, msg, ws);
  Kokkos::View<float*, typename TypeParam::memory_space> acc("acc", n);
  message_add(TypeParam(), msg, acc, float(-steps));
  double naive = 0;
  const auto a = to_host(acc);
  for (std::size_t i = 0; i < n; ++i) naive += std::pow(double(steps) * g[i] + a[i], 2);
  EXPECT_GT(std::sqrt(naive), 20 * second_half);
}

// Eager scalar Markov sequence (seed 004 Sec. 5): c = C(w - w_hat); w_hat = w_hat + c.
TYPED_TEST(Compress, MarkovFollowsTheEagerRecursionAndTheReceiverAgrees) {
  const std::size_t n = 777;
  MarkovCompressor<TypeParam, double> markov(n);
  Kokkos::View<double*, typename TypeParam::memory_space> receiver("receiver", n);
  std::vector<double> w_hat(n, 0.0);
  for (int t = 0; t < 6; ++t) {
    const auto w = gaussian<double>(n, 200 + t);
    const auto& msg = markov.compress(TypeParam(), to_device<TypeParam>(w));
    message_add(TypeParam(), msg, receiver, 1.0);
    std::vector<double> diff(n);
    for (std::size_t i = 0; i < n; ++i) diff[i] = w[i] - w_hat[i];
    ASSERT_EQ(to_host(msg.words), reference_pack(diff)) << "t = " << t;
    double scale = 0;
    Kokkos::deep_copy(scale, msg.scale);
    ASSERT_NEAR(scale, scalar_l1(diff) / n, scale_tolerance<double>() * scalar_l1(diff) / n);
    for (std::size_t i = 0; i < n; ++i) w_hat[i] = w_hat[i] + (diff[i] < 0 ? -scale : scale);
    if (t == 3) ASSERT_EQ(to_host(markov.estimate(TypeParam())), w_hat);
  }
  EXPECT_EQ(to_host(markov.estimate(TypeParam())), w_hat);
  EXPECT_EQ(to_host(receiver), w_hat);  // the receiver's copy of the sequence is bitwise the sender's
}

TYPED_TEST(Compress, MarkovErrorShrinksToZeroOnAConvergentSequence) {
  // w_t = w* + 0.9^t v converges linearly; the Markov estimate's error ||w_hat_t - w_t|| goes to 0
  // (seed 004 Sec. 5, eq. 5.1), while a one-shot C(w_t) keeps the error ||C(w*) - w*|| > 0.
  const std::size_t n = 64;
  const auto w_star = gaussian<double>(n, 41);
  const auto v = gaussian<double>(n, 42);
  MarkovCompressor<TypeParam, double> markov(n);
  Kokkos::View<double*, typename TypeParam::memory_space> w("w", n);
  auto w_h = Kokkos::create_mirror_view(w);
  double err0 = 0, err_end = 0;
  const int steps = 400;
  for (int t = 0; t < steps; ++t) {
    for (std::size_t i = 0; i < n; ++i) w_h(i) = w_star[i] + std::pow(0.9, t) * v[i];
    Kokkos::deep_copy(w, w_h);
    markov.compress(TypeParam(), w);
    const auto est = to_host(markov.estimate(TypeParam()));
    double err = 0;
    for (std::size_t i = 0; i < n; ++i) err += std::pow(est[i] - w_h(i), 2);
    if (t == 0) err0 = std::sqrt(err);
    err_end = std::sqrt(err);
  }
  EXPECT_GT(err0, 0.1);
  EXPECT_LT(err_end, 1e-6 * err0);
}

}  // namespace

namespace {

using namespace terse;
using namespace terse::test;

/// Scalar top-k: indices of the k largest |x| (ties to the lower index), ascending.
template <class T>
std::vector<std::size_t> reference_top_k(const std::vector<T>& x, std::size_t k) {
  std::vector<std::size_t> order(x.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return std::fabs(x[a]) > std::fabs(x[b]); });
  order.resize(std::min(k, order.size()));
  std::sort(order.begin(), order.end());
  return order;
}

template <class ExecSpace>
class CompressTopK : public ::testing::Test {};
TYPED_TEST_SUITE(CompressTopK, ExecSpaces);

// Error feedback with top-k (seed 004 Sec. 4 with the top-k compressor): p = g + e; c = top-k(p); e = p - c.
TYPED_TEST(CompressTopK, ErrorFeedbackFollowsTheEagerRecursion) {
  const std::size_t n = 1000, k = 16;
  ErrorFeedback<TypeParam, float, TopK> ef(n, k);
  std::vector<float> e(n, 0.0f);
  for (int t = 0; t < 5; ++t) {
    const auto g = gaussian<float>(n, 300 + t);
    const auto msg = ef.compress(TypeParam(), to_device<TypeParam>(g));
    std::vector<float> p(n);
    for (std::size_t i = 0; i < n; ++i) p[i] = g[i] + e[i];
    const auto sel = reference_top_k(p, k);
    const auto idx = to_host(msg.indices);
    const auto val = to_host(msg.values);
    ASSERT_EQ(idx.size(), k);
    for (std::size_t j = 0; j < k; ++j) {
      ASSERT_EQ(idx[j], sel[j]) << "t = " << t;
      ASSERT_EQ(val[j], p[sel[j]]) << "t = " << t;
    }
    EXPECT_EQ(msg.payload_bits(), k * 64);
    e = p;
    for (auto j : sel) e[j] = 0.0f;
    ASSERT_EQ(to_host(ef.error(TypeParam())), e) << "t = " << t;
  }
}

// EF21 (seed 004 Sec. 5 with top-k): c = top-k(w - w_hat); w_hat = w_hat + c; a receiver that adds the
// messages holds the same sequence.
TYPED_TEST(CompressTopK, MarkovFollowsTheEagerRecursionAndTheReceiverAgrees) {
  const std::size_t n = 900, k = 30;
  MarkovCompressor<TypeParam, double, TopK> markov(n, k);
  Kokkos::View<double*, typename TypeParam::memory_space> receiver("receiver", n);
  std::vector<double> w_hat(n, 0.0);
  for (int t = 0; t < 5; ++t) {
    const auto w = gaussian<double>(n, 400 + t);
    const auto msg = markov.compress(TypeParam(), to_device<TypeParam>(w));
    message_add(TypeParam(), msg, receiver, 1.0);
    std::vector<double> diff(n);
    for (std::size_t i = 0; i < n; ++i) diff[i] = w[i] - w_hat[i];
    const auto sel = reference_top_k(diff, k);
    ASSERT_EQ(to_host(msg.indices), std::vector<std::uint32_t>(sel.begin(), sel.end())) << "t = " << t;
    for (auto j : sel) w_hat[j] = w_hat[j] + diff[j];
    ASSERT_EQ(to_host(markov.estimate(TypeParam())), w_hat) << "t = " << t;
  }
  EXPECT_EQ(to_host(receiver), w_hat);
}

}  // namespace

namespace {

using namespace terse;
using namespace terse::test;

// markov_sign_block: the signs of d = w - w_hat (computed in T) packed by the scalar reference_pack, and the
// deterministic sum of |d| against a compensated scalar double sum; the block kernel agrees with
// MarkovCompressor<..., ScaledSign> on a whole vector.
template <class ExecSpace>
class MarkovSignBlock : public ::testing::Test {};
TYPED_TEST_SUITE(MarkovSignBlock, ExecSpaces);

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

template <class T>
std::vector<T> difference(const std::vector<T>& w, const std::vector<T>& w_hat) {
  std::vector<T> d(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) d[i] = w[i] - w_hat[i];
  return d;
}

/// sum |d_i| in double, compensated (Neumaier), so that its own error is far below the tolerances used.
template <class T>
double reference_l1(const std::vector<T>& d) {
  double s = 0, c = 0;
  for (T v : d) {
    const double x = std::fabs(double(v));
    const double t = s + x;
    c += std::fabs(s) >= x ? (s - t) + x : (x - t) + s;
    s = t;
  }
  return s + c;
}

/// Multiples of 2^-10 in [-4, 4]: each |d| is a multiple of 2^-10 at most 8, so the kernel's fp32 lane sums
/// (8 terms) and its double sums are exact and the fp32 sum can be compared exactly.
template <class T>
std::vector<T> dyadic_values(std::size_t n, unsigned seed) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int> k(-4096, 4096);
  std::vector<T> x(n);
  for (auto& v : x) v = static_cast<T>(std::ldexp(double(k(gen)), -10));
  return x;
}

/// mixed_values (zeros, -0.0, subnormals, 1e30) for w and for w_hat, with some w_hat equal to w (d = +0.0).
template <class T>
std::pair<std::vector<T>, std::vector<T>> mixed_pair(std::size_t n, unsigned seed) {
  auto w = mixed_values<T>(n, seed);
  auto w_hat = mixed_values<T>(n, seed + 1);
  for (std::size_t i = 0; i < n; i += 7) w_hat[i] = w[i];
  return {w, w_hat};
}

template <class ExecSpace, class T>
void check_markov_sign_block(const std::vector<T>& w, const std::vector<T>& w_hat, const SumWorkspace<ExecSpace>& ws,
                             double rel_tol, const char* what) {
  const std::size_t n = w.size();
  const auto d = difference(w, w_hat);
  auto w_d = to_device<ExecSpace>(w, "w");
  auto h_d = to_device<ExecSpace>(w_hat, "w_hat");
  Kokkos::View<sign_word_t*, typename ExecSpace::memory_space> words("words", packed_words(n));
  Kokkos::deep_copy(words, ~sign_word_t(0));  // every word, padding bits included, must be written
  markov_sign_block(ExecSpace(), w_d, h_d, words, ws);
  EXPECT_EQ(to_host(words), reference_pack(d)) << what << ", n = " << n;
  const double got = ws.host_result();
  const double ref = reference_l1(d);
  if (rel_tol == 0)
    EXPECT_EQ(got, ref) << what << ", n = " << n;
  else
    EXPECT_NEAR(got, ref, rel_tol * ref) << what << ", n = " << n;
  EXPECT_TRUE(same_bits(to_host(w_d), w)) << what << ": w changed, n = " << n;
  EXPECT_TRUE(same_bits(to_host(h_d), w_hat)) << what << ": w_hat changed, n = " << n;

  // The sum is deterministic: bitwise that of a one-thread host backend with a workspace of exactly n.
  using Host = ReferenceHost;
  SumWorkspace<Host> ws_h(n);
  Kokkos::View<sign_word_t*, Kokkos::HostSpace> words_h("words_h", packed_words(n));
  markov_sign_block(Host(), to_device<Host>(w), to_device<Host>(w_hat), words_h, ws_h);
  EXPECT_TRUE(same_bits(std::vector<double>{got}, std::vector<double>{ws_h.host_result()})) << what << ", n = " << n;
}

TYPED_TEST(MarkovSignBlock, SignsAndSumMatchTheScalarReference) {
  // One workspace of the largest size for every n, largest first: partial sums left by a longer block must not leak.
  const std::size_t sizes[] = {70001, 1000, 100, 64, 1, 0};
  SumWorkspace<TypeParam> ws(sizes[0]);
  for (std::size_t n : sizes) {
    const unsigned seed = 700 + static_cast<unsigned>(n);
    {
      const auto p = mixed_pair<double>(n, seed);
      check_markov_sign_block<TypeParam>(p.first, p.second, ws, 1e-12, "fp64 mixed");
    }
    {
      // fp32 sums |d| in fp32 within each word (terse_Reduce.hpp: relative error below 4.2e-7 for terms of one
      // sign), so general fp32 data gets the documented bound; dyadic data, whose sums are exact, gets 0.
      const auto p = mixed_pair<float>(n, seed + 2);
      check_markov_sign_block<TypeParam>(p.first, p.second, ws, scale_tolerance<float>(), "fp32 mixed");
      check_markov_sign_block<TypeParam>(dyadic_values<float>(n, seed + 4), dyadic_values<float>(n, seed + 5), ws, 0.0,
                                         "fp32 dyadic");
      check_markov_sign_block<TypeParam>(dyadic_values<double>(n, seed + 6), dyadic_values<double>(n, seed + 7), ws,
                                         0.0, "fp64 dyadic");
    }
  }
}

TYPED_TEST(MarkovSignBlock, ZeroNegativeZeroAndNaNDifferencesArePlus) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const float tiny = std::numeric_limits<float>::denorm_min();
  // d:             -0.0  +0.0  +0.0  +0.0    -1  NaN  NaN  NaN   tiny  -tiny
  const std::vector<float> w = {-0.0f, 0.0f, 0.0f, 1.0f, 1.0f, nan, 0.0f, inf, tiny, 0.0f};
  const std::vector<float> w_hat = {0.0f, 0.0f, -0.0f, 1.0f, 2.0f, 0.0f, nan, inf, 0.0f, tiny};
  const sign_word_t expected = 0b0111101111;  // bits 4 (d = -1) and 9 (d = -tiny) clear
  ASSERT_EQ(reference_pack(difference(w, w_hat)), std::vector<sign_word_t>{expected});
  Kokkos::View<sign_word_t*, typename TypeParam::memory_space> words("words", 1);
  SumWorkspace<TypeParam> ws(w.size());
  markov_sign_block(TypeParam(), to_device<TypeParam>(w), to_device<TypeParam>(w_hat), words, ws);
  EXPECT_EQ(to_host(words), std::vector<sign_word_t>{expected});
  EXPECT_TRUE(std::isnan(ws.host_result()));  // a NaN difference makes the l1 sum NaN
  // Without the NaN entries the sum is exact: 1 + 2 tiny.
  const std::vector<float> w2 = {-0.0f, 0.0f, 0.0f, 1.0f, 1.0f, tiny, 0.0f};
  const std::vector<float> h2 = {0.0f, 0.0f, -0.0f, 1.0f, 2.0f, 0.0f, tiny};
  markov_sign_block(TypeParam(), to_device<TypeParam>(w2), to_device<TypeParam>(h2), words, ws);
  EXPECT_EQ(to_host(words), std::vector<sign_word_t>{0b0101111});
  EXPECT_EQ(ws.host_result(), 1.0 + 2.0 * double(tiny));
}

TYPED_TEST(MarkovSignBlock, WordAlignedBlocksConcatenateToTheWholeVector) {
  // The sharded use: coordinates split into blocks that start on word boundaries, each packed into its slice of
  // the words; the words are those of the whole vector and the block sums add up to its l1 norm.
  const std::size_t n = 70001;
  const auto w = gaussian<double>(n, 801);
  const auto w_hat = gaussian<double>(n, 802);
  const auto w_d = to_device<TypeParam>(w, "w");
  const auto h_d = to_device<TypeParam>(w_hat, "w_hat");
  Kokkos::View<sign_word_t*, typename TypeParam::memory_space> words("words", packed_words(n));
  const std::size_t bounds[] = {0, 64 * 300, 64 * 301, 64 * 700, n};
  double total = 0;
  for (std::size_t b = 0; b + 1 < std::size(bounds); ++b) {
    const auto range = std::make_pair(bounds[b], bounds[b + 1]);
    const auto word_range = std::make_pair(bounds[b] / 64, packed_words(bounds[b + 1]));
    SumWorkspace<TypeParam> ws(range.second - range.first);
    markov_sign_block(TypeParam(), Kokkos::subview(w_d, range), Kokkos::subview(h_d, range),
                      Kokkos::subview(words, word_range), ws);
    total += ws.host_result();
  }
  const auto d = difference(w, w_hat);
  EXPECT_EQ(to_host(words), reference_pack(d));
  EXPECT_NEAR(total, reference_l1(d), 1e-12 * reference_l1(d));
}

// The block kernel on a whole vector is the Markov compressor's pass: with w_hat = 0 it gives the first message of
// MarkovCompressor<..., ScaledSign> (words equal, scale = T(sum / n)); a holder of w_hat that applies the block's
// messages follows the compressor's sequence bitwise.
template <class ExecSpace, class T>
void check_block_is_markov_compressor(std::size_t n, unsigned seed) {
  MarkovCompressor<ExecSpace, T, ScaledSign> markov(n);
  Kokkos::View<T*, typename ExecSpace::memory_space> holder("holder", n);  // w_hat, starts at 0
  Kokkos::View<sign_word_t*, typename ExecSpace::memory_space> words("words", packed_words(n));
  SumWorkspace<ExecSpace> ws(n);
  SignMessage<ExecSpace, T> block_msg(n);
  for (int t = 0; t < 4; ++t) {
    const auto w = to_device<ExecSpace>(gaussian<T>(n, seed + t, t == 0 ? 1.0 : std::pow(0.5, t)), "w");
    markov_sign_block(ExecSpace(), w, holder, words, ws);
    const double sum = ws.host_result();
    const auto& msg = markov.compress(ExecSpace(), w);
    ASSERT_EQ(to_host(words), to_host(msg.words)) << "n = " << n << ", t = " << t;
    T scale = 0;
    Kokkos::deep_copy(scale, msg.scale);
    const T block_scale = static_cast<T>(sum / double(n));
    if (std::is_same<T, float>::value)
      ASSERT_EQ(scale, block_scale) << "n = " << n << ", t = " << t;
    else  // fp64: sum * (1 / n) and sum / n may differ in the last bit
      ASSERT_NEAR(scale, block_scale, 4e-16 * block_scale) << "n = " << n << ", t = " << t;
    Kokkos::deep_copy(block_msg.words, words);
    Kokkos::deep_copy(block_msg.scale, scale);
    message_add(ExecSpace(), block_msg, holder, T(1));
  }
  EXPECT_TRUE(same_bits(to_host(markov.estimate(ExecSpace())), to_host(holder))) << "n = " << n;
}

TYPED_TEST(MarkovSignBlock, WholeVectorEqualsMarkovCompressorFirstMessage) {
  for (std::size_t n : {1ul, 64ul, 100ul, 1000ul, 70001ul}) {
    // w_hat = 0: the first message, on mixed values (zeros, -0.0, subnormals).
    const auto w = mixed_values<float>(n, 900 + static_cast<unsigned>(n));
    const auto w_d = to_device<TypeParam>(w, "w");
    Kokkos::View<float*, typename TypeParam::memory_space> zero("zero", n);
    Kokkos::View<sign_word_t*, typename TypeParam::memory_space> words("words", packed_words(n));
    SumWorkspace<TypeParam> ws(n);
    markov_sign_block(TypeParam(), w_d, zero, words, ws);
    MarkovCompressor<TypeParam, float, ScaledSign> markov(n);
    const auto& msg = markov.compress(TypeParam(), w_d);
    EXPECT_EQ(to_host(words), to_host(msg.words)) << "n = " << n;
    float scale = 0;
    Kokkos::deep_copy(scale, msg.scale);
    EXPECT_EQ(scale, static_cast<float>(ws.host_result() / double(n))) << "n = " << n;
    // Later messages, with the holder's w_hat.
    check_block_is_markov_compressor<TypeParam, float>(n, 950 + static_cast<unsigned>(n));
    check_block_is_markov_compressor<TypeParam, double>(n, 970 + static_cast<unsigned>(n));
  }
}

// error_feedback_sign_block, the sharded server's error feedback (1-bit Adam): word-aligned blocks of a vector,
// each with its slice of the error e, follow ErrorFeedback<..., ScaledSign> on the whole vector: the same words
// every step, the scale from the blocks' sums, and e <- p - c once the global scale is applied to each block.
// One block is the compressor bitwise; several agree to the rounding of the sum's order.
template <class ExecSpace, class T>
void check_error_feedback_blocks(std::size_t n, const std::vector<std::size_t>& bounds, unsigned seed) {
  using Mem = typename ExecSpace::memory_space;
  ErrorFeedback<ExecSpace, T, ScaledSign> ef(n);
  Kokkos::View<T*, Mem> e("e", n);
  Kokkos::View<sign_word_t*, Mem> words("words", packed_words(n));
  const bool one_block = bounds.size() == 2;
  for (int t = 0; t < 4; ++t) {
    const auto g = to_device<ExecSpace>(gaussian<T>(n, seed + t, t == 0 ? 1.0 : std::pow(0.5, t)), "g");
    double total = 0;
    for (std::size_t b = 0; b + 1 < bounds.size(); ++b) {
      const auto range = std::make_pair(bounds[b], bounds[b + 1]);
      SumWorkspace<ExecSpace> ws(std::max<std::size_t>(1, range.second - range.first));
      error_feedback_sign_block(ExecSpace(), Kokkos::subview(g, range), Kokkos::subview(e, range),
                                Kokkos::subview(words, std::make_pair(bounds[b] / 64, packed_words(bounds[b + 1]))), ws);
      total += ws.host_result();
    }
    const T scale = static_cast<T>(total * (1.0 / double(n)));
    for (std::size_t b = 0; b + 1 < bounds.size(); ++b) {
      SignMessage<ExecSpace, T> block;
      block.n = bounds[b + 1] - bounds[b];
      block.words = Kokkos::subview(words, std::make_pair(bounds[b] / 64, packed_words(bounds[b + 1])));
      block.scale = Kokkos::View<T, Mem>("scale");
      Kokkos::deep_copy(block.scale, scale);
      message_add(ExecSpace(), block, Kokkos::subview(e, std::make_pair(bounds[b], bounds[b + 1])), T(-1));
    }
    const auto& msg = ef.compress(ExecSpace(), g);
    ASSERT_EQ(to_host(words), to_host(msg.words)) << "n = " << n << ", t = " << t;
    T ref_scale = 0;
    Kokkos::deep_copy(ref_scale, msg.scale);
    const auto ref_e = to_host(ef.error(ExecSpace()));
    const auto got_e = to_host(e);
    if (one_block && std::is_same<T, float>::value) {
      ASSERT_EQ(scale, ref_scale) << "n = " << n << ", t = " << t;
      ASSERT_TRUE(same_bits(got_e, ref_e)) << "n = " << n << ", t = " << t;
    } else {
      ASSERT_NEAR(scale, ref_scale, 4 * std::numeric_limits<T>::epsilon() * ref_scale) << "n = " << n << ", t = " << t;
      for (std::size_t i = 0; i < n; ++i)
        ASSERT_NEAR(got_e[i], ref_e[i], 8 * std::numeric_limits<T>::epsilon() * (std::fabs(ref_e[i]) + ref_scale))
            << "coordinate " << i << ", n = " << n << ", t = " << t;
    }
  }
}

TYPED_TEST(MarkovSignBlock, ErrorFeedbackBlocksFollowTheErrorFeedbackCompressor) {
  for (std::size_t n : {1ul, 100ul, 70001ul}) {
    check_error_feedback_blocks<TypeParam, float>(n, {0, n}, 1100 + static_cast<unsigned>(n));
    check_error_feedback_blocks<TypeParam, double>(n, {0, n}, 1200 + static_cast<unsigned>(n));
  }
  const std::size_t n = 70001;
  check_error_feedback_blocks<TypeParam, float>(n, {0, 64 * 300, 64 * 301, 64 * 700, n}, 1300);
  check_error_feedback_blocks<TypeParam, double>(n, {0, 64 * 300, 64 * 301, 64 * 700, n}, 1400);
}

}  // namespace
