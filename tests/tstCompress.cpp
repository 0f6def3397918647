// Compressors and compressor memories against scalar references written from the seeds' formulas:
// deterministic sums, scaled sign, stochastic sign, message decoding, error feedback, Markov sequences.
#include "terse_TestBackends.hpp"
#include "terse_TestReference.hpp"

#include <terse_Compress.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <type_traits>

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
