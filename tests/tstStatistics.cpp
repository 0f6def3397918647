// Statistics kernels (terse_Statistics.hpp) on every backend: sign agreement on packed words against scalar
// bit loops (bitwise), the regularized incomplete beta function against closed forms and the binomial tail,
// seed 001 Lemma 8 by Monte Carlo, the rho- and rho_M-norms (seed 001 Def. 1, Def. 2) and the adaptive
// learning rate eta* (seed 000 Prop. 3 eq. (1), Sec. II-B) against scalar loops written from the formulas.
#include "terse_TestBackends.hpp"
#include "terse_TestReference.hpp"

#include <terse_Random.hpp>
#include <terse_Statistics.hpp>

#include <cmath>
#include <map>
#include <random>

namespace {

using namespace terse;
using namespace terse::test;

template <class ExecSpace>
using DeviceMem = typename ExecSpace::memory_space;

// ------------------------------------------------------------------------------------------------------------
// Scalar references (independent of the kernels)
// ------------------------------------------------------------------------------------------------------------

/// Random packed words for n coordinates; when garbage_padding, the unused bits of the last word are random
/// too (a correct kernel must ignore them).
std::vector<std::uint64_t> random_words(std::size_t n, std::mt19937_64& gen, bool garbage_padding) {
  std::vector<std::uint64_t> w((n + 63) / 64);
  for (auto& x : w) x = gen();
  if (!garbage_padding && n % 64 != 0) w.back() &= (std::uint64_t(1) << (n % 64)) - 1;
  if (garbage_padding && n % 64 != 0) w.back() |= ~((std::uint64_t(1) << (n % 64)) - 1) & 0xA5A5A5A5A5A5A5A5ull;
  return w;
}

/// sum_{k=lo}^{n} C(n, k) p^k (1-p)^(n-k) = P(Binomial(n, p) >= lo), an exact sum in long double.
long double binomial_upper_tail(int n, long double p, int lo) {
  const int k0 = std::max(lo, 0);
  if (k0 > n) return 0;
  long double c = 1;  // C(n, k0), then C(n, k+1) = C(n, k) (n - k) / (k + 1); <= 1e60, 64-bit mantissa
  for (int j = 1; j <= k0; ++j) c = c * (n - k0 + j) / j;
  long double sum = 0;
  for (int k = k0; k <= n; ++k) {
    sum += c * std::pow(p, static_cast<long double>(k)) * std::pow(1 - p, static_cast<long double>(n - k));
    c = c * (n - k) / (k + 1);
  }
  return sum;
}

/// P(Binomial(n, p) <= hi).
long double binomial_lower_tail(int n, long double p, int hi) { return 1 - binomial_upper_tail(n, p, hi + 1); }

template <class ExecSpace>
class StatisticsSignAgreement : public ::testing::Test {};
TYPED_TEST_SUITE(StatisticsSignAgreement, ExecSpaces);

const std::size_t agreement_sizes[] = {0, 1, 5, 63, 64, 65, 127, 1000, 4097, 100003};

TYPED_TEST(StatisticsSignAgreement, CountMatchesScalarBitLoop) {
  std::mt19937_64 gen(11);
  for (std::size_t n : agreement_sizes) {
    const auto a = random_words(n, gen, false);
    auto b = random_words(n, gen, true);  // garbage in b's padding bits
    // Make agreement rates differ from 1/2: copy a into b on a random half of the words.
    for (std::size_t w = 0; w + 1 < b.size(); ++w)
      if (gen() & 1) b[w] = a[w];
    std::uint64_t want = 0;
    for (std::size_t i = 0; i < n; ++i) want += reference_bit(a, i) == reference_bit(b, i);
    const auto ad = to_device<TypeParam>(a, "a"), bd = to_device<TypeParam>(b, "b");
    EXPECT_EQ(sign_agreement(TypeParam(), ad, bd, n), want) << "n = " << n;
    EXPECT_EQ(sign_agreement(TypeParam(), bd, ad, n), want) << "n = " << n;

    // Identical vectors agree everywhere; complements nowhere (padding of the complement is all ones).
    std::vector<std::uint64_t> not_a(a.size());
    for (std::size_t w = 0; w < a.size(); ++w) not_a[w] = ~a[w];
    const auto nad = to_device<TypeParam>(not_a, "not_a");
    EXPECT_EQ(sign_agreement(TypeParam(), ad, ad, n), n);
    EXPECT_EQ(sign_agreement(TypeParam(), ad, nad, n), 0u) << "n = " << n;
  }
}

TYPED_TEST(StatisticsSignAgreement, AccumulateOneVectorAtATimeMatchesScalarBitLoop) {
  std::mt19937_64 gen(12);
  for (std::size_t n : agreement_sizes) {
    std::vector<std::int32_t> counts0(n);
    for (auto& c : counts0) c = static_cast<std::int32_t>(gen() % 1000) - 500;  // nonzero start: "+="
    std::vector<std::int32_t> want = counts0;
    const auto ref = random_words(n, gen, false);
    const auto refd = to_device<TypeParam>(ref, "ref");
    auto counts = to_device<TypeParam>(counts0, "counts");
    for (int sample = 0; sample < 5; ++sample) {
      const auto s = random_words(n, gen, true);
      for (std::size_t i = 0; i < n; ++i) want[i] += reference_bit(s, i) == reference_bit(ref, i);
      sign_agreement_accumulate(TypeParam(), to_device<TypeParam>(s, "s"), refd, counts);
    }
    const auto got = to_host(counts);
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], want[i]) << "coordinate " << i << " of n = " << n;
  }
}

template <class ExecSpace, class Layout>
void check_batch_accumulate(std::size_t n, int samples, unsigned seed) {
  std::mt19937_64 gen(seed);
  const std::size_t nw = packed_words(n);
  const auto ref = random_words(n, gen, true);
  Kokkos::View<sign_word_t**, Layout, DeviceMem<ExecSpace>> s("s", samples, nw);
  auto h = Kokkos::create_mirror_view(s);
  std::vector<std::int64_t> want(n, 7);
  for (int k = 0; k < samples; ++k) {
    const auto row = random_words(n, gen, true);
    for (std::size_t w = 0; w < nw; ++w) h(k, w) = row[w];
    for (std::size_t i = 0; i < n; ++i) want[i] += reference_bit(row, i) == reference_bit(ref, i);
  }
  Kokkos::deep_copy(s, h);
  auto counts = to_device<ExecSpace>(std::vector<std::int64_t>(n, 7), "counts");
  sign_agreement_accumulate(ExecSpace(), s, to_device<ExecSpace>(ref, "ref"), counts);
  const auto got = to_host(counts);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], want[i]) << "coordinate " << i << " of n = " << n;
}

TYPED_TEST(StatisticsSignAgreement, AccumulateBatchMatchesScalarBitLoop) {
  for (std::size_t n : agreement_sizes) {
    check_batch_accumulate<TypeParam, Kokkos::LayoutRight>(n, 37, 13 + static_cast<unsigned>(n));
    check_batch_accumulate<TypeParam, Kokkos::LayoutLeft>(n, 3, 17 + static_cast<unsigned>(n));
  }
  // More samples than the 255 a byte counter holds (host backends flush their SWAR counters every 255).
  for (int samples : {255, 256, 600}) check_batch_accumulate<TypeParam, Kokkos::LayoutRight>(130, samples, 19 + samples);
}

TYPED_TEST(StatisticsSignAgreement, EstimatesSuccessProbabilitiesOfGaussianNoise) {
  // Stochastic gradients g~ = g + sigma_i * N(0, 1): rho_i = P(sign g~_i = sign g_i) = Phi(|g_i| / sigma_i).
  const std::size_t d = 300;
  const int samples = 2048;  // a power of two: counts / samples is exact, so rho is compared bitwise
  std::mt19937_64 gen(14);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> g(d), sigma(d);
  for (std::size_t i = 0; i < d; ++i) {
    g[i] = normal(gen);
    sigma[i] = 0.2 + 2.0 * (i % 7) / 7.0;
  }
  const std::size_t nw = packed_words(d);
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, DeviceMem<TypeParam>> s("s", samples, nw);
  auto h = Kokkos::create_mirror_view(s);
  std::vector<std::uint32_t> want_counts(d, 0);
  const auto ref = reference_pack(g);
  for (int k = 0; k < samples; ++k) {
    std::vector<double> x(d);
    for (std::size_t i = 0; i < d; ++i) x[i] = g[i] + sigma[i] * normal(gen);
    const auto row = reference_pack(x);
    for (std::size_t w = 0; w < nw; ++w) h(k, w) = row[w];
    for (std::size_t i = 0; i < d; ++i) want_counts[i] += (x[i] < 0) == (g[i] < 0);
  }
  Kokkos::deep_copy(s, h);
  Kokkos::View<std::uint32_t*, DeviceMem<TypeParam>> counts("counts", d);
  Kokkos::View<double*, DeviceMem<TypeParam>> rho("rho", d);
  sign_agreement_accumulate(TypeParam(), s, to_device<TypeParam>(ref, "ref"), counts);
  success_probabilities(TypeParam(), counts, samples, rho);
  const auto got = to_host(rho);
  double dev = 0, var = 0;
  for (std::size_t i = 0; i < d; ++i) {
    ASSERT_EQ(got[i], static_cast<double>(want_counts[i]) / samples) << i;
    const double rho_i = 0.5 * std::erfc(-std::fabs(g[i]) / (sigma[i] * std::sqrt(2.0)));
    dev += got[i] - rho_i;
    var += rho_i * (1 - rho_i) / samples;
  }
  // The sum of d independent binomial estimates is within 4 standard errors of the sum of the exact rho_i.
  EXPECT_LE(std::fabs(dev), 4 * std::sqrt(var));
}

// ------------------------------------------------------------------------------------------------------------
// Regularized incomplete beta function, evaluated inside a kernel on every backend
// ------------------------------------------------------------------------------------------------------------

struct BetaCase {
  double p, a, b;
  long double want;
  const char* what;
};

/// Evaluates regularized_incomplete_beta(p, a, b) for every case in a kernel, or, with equal_int,
/// incomplete_beta_equal(p, l) (a = b = l integer).
template <class ExecSpace>
std::vector<double> beta_on_device(const std::vector<BetaCase>& cases, bool equal_int = false) {
  std::vector<double> p, a, b;
  for (const auto& c : cases) {
    p.push_back(c.p);
    a.push_back(c.a);
    b.push_back(c.b);
  }
  const auto pd = to_device<ExecSpace>(p, "p"), ad = to_device<ExecSpace>(a, "a"), bd = to_device<ExecSpace>(b, "b");
  Kokkos::View<double*, DeviceMem<ExecSpace>> out("I", cases.size());
  Kokkos::parallel_for(
      "test::incomplete_beta", Kokkos::RangePolicy<ExecSpace>(0, cases.size()),
      KOKKOS_LAMBDA(std::size_t i) {
        out(i) = equal_int ? incomplete_beta_equal(pd(i), static_cast<int>(ad(i)))
                           : regularized_incomplete_beta(pd(i), ad(i), bd(i));
      });
  return to_host(out);
}

/// Relative 1e-10 on I (the required accuracy; the implementation measures <= 9e-13 for a + b <= 201).
void expect_beta_cases(const std::vector<BetaCase>& cases, const std::vector<double>& got) {
  for (std::size_t k = 0; k < cases.size(); ++k) {
    const auto& c = cases[k];
    const double want = static_cast<double>(c.want);
    EXPECT_LE(std::fabs(got[k] - want), 1e-10 * std::fabs(want))
        << c.what << ": I(" << c.p << "; " << c.a << ", " << c.b << ") = " << got[k] << ", want " << want;
  }
}

template <class ExecSpace>
class StatisticsIncompleteBeta : public ::testing::Test {};
TYPED_TEST_SUITE(StatisticsIncompleteBeta, ExecSpaces);

const double beta_ps[] = {1e-6, 0.01, 0.1, 0.25, 0.3, 0.45, 0.5, 0.55, 0.7, 0.9, 0.99, 1 - 1e-6};

TYPED_TEST(StatisticsIncompleteBeta, ClosedForms) {
  std::vector<BetaCase> cases;
  for (double p : beta_ps) {
    cases.push_back(BetaCase{p, 1, 1, p, "I(p;1,1) = p"});
    for (double a : {0.5, 2.0, 7.5, 30.0, 100.0})
      cases.push_back(BetaCase{p, a, 1, std::pow(static_cast<long double>(p), static_cast<long double>(a)), "I(p;a,1) = p^a"});
    for (double b : {0.5, 3.0, 12.25, 100.0})
      cases.push_back(BetaCase{p, 1, b, -std::expm1(b * std::log1p(static_cast<long double>(-p))), "I(p;1,b) = 1-(1-p)^b"});
    cases.push_back(BetaCase{p, 0.5, 0.5, 2 / 3.14159265358979323846264338327950288L * std::asin(std::sqrt(static_cast<long double>(p))),
                     "I(p;1/2,1/2) = 2 asin(sqrt p)/pi"});
  }
  for (double a : {0.5, 1.0, 2.0, 3.7, 10.0, 50.0, 99.5, 100.0}) cases.push_back(BetaCase{0.5, a, a, 0.5L, "I(1/2;a,a) = 1/2"});
  cases.push_back(BetaCase{0.0, 3, 4, 0.0L, "I(0;a,b) = 0"});
  cases.push_back(BetaCase{1.0, 3, 4, 1.0L, "I(1;a,b) = 1"});
  expect_beta_cases(cases, beta_on_device<TypeParam>(cases));
}

TYPED_TEST(StatisticsIncompleteBeta, BinomialTailIdentity) {
  // I(p; k, n-k+1) = P(Binomial(n, p) >= k) (seed 001 eq. (26)); for a = b = l, n = 2l - 1.
  std::vector<BetaCase> cases;
  for (double p : beta_ps) {
    for (int l : {1, 2, 3, 4, 5, 7, 10, 17, 25, 50, 75, 100}) {
      const long double want = binomial_upper_tail(2 * l - 1, p, l);
      if (want < 1e-280L) continue;  // below double's normal range: not a meaningful relative check
      cases.push_back(BetaCase{p, double(l), double(l), want, "I(p;l,l) = P(Bin(2l-1,p) >= l)"});
    }
    for (const auto& kn : std::vector<std::pair<int, int>>{{3, 10}, {8, 10}, {1, 50}, {20, 60}, {90, 100}, {10, 150}}) {
      const long double want = binomial_upper_tail(kn.second, p, kn.first);
      if (want < 1e-280L) continue;
      cases.push_back(BetaCase{p, double(kn.first), double(kn.second - kn.first + 1), want, "I(p;k,n-k+1) = P(Bin(n,p) >= k)"});
    }
  }
  expect_beta_cases(cases, beta_on_device<TypeParam>(cases));
}

TYPED_TEST(StatisticsIncompleteBeta, EqualIntegerParametersBySumAndContinuedFraction) {
  // incomplete_beta_equal(p, l) = I(p; l, l): the finite sum for l <= 64, the continued fraction above; both
  // against the exact binomial tail (relative 1e-10), including p = 1/2 (the branch point of the sum).
  std::vector<BetaCase> cases;
  for (double p : {1e-6, 0.01, 0.1, 0.3, 0.45, 0.4999999, 0.5, 0.5000001, 0.55, 0.7, 0.9, 0.99, 1 - 1e-6})
    for (int l : {1, 2, 3, 4, 5, 8, 16, 31, 32, 63, 64, 65, 66, 100, 150}) {
      const long double want = binomial_upper_tail(2 * l - 1, p, l);
      if (want < 1e-280L) continue;
      cases.push_back(BetaCase{p, double(l), double(l), want, "incomplete_beta_equal(p, l) = P(Bin(2l-1,p) >= l)"});
    }
  for (double p : {0.0, -0.5}) cases.push_back(BetaCase{p, 4, 4, 0.0L, "I(p <= 0; l, l) = 0"});
  for (double p : {1.0, 1.5}) cases.push_back(BetaCase{p, 4, 4, 1.0L, "I(p >= 1; l, l) = 1"});
  expect_beta_cases(cases, beta_on_device<TypeParam>(cases, true));
}

TYPED_TEST(StatisticsIncompleteBeta, NonIntegerParametersAgainstQuadratureOfTheDefinition) {
  // Eq. (22): I(p; a, b) = int_0^p t^(a-1) (1-t)^(b-1) dt / B(a, b), by composite Simpson in long double with
  // 40000 intervals on [0, p]. For a, b >= 4.5 the integrand is C^3 on [0, 1] and its peak is wider than 0.05,
  // so Simpson's error (~(h / width)^4 with h <= 2.5e-5) is far below 1e-12 relative.
  std::vector<BetaCase> cases;
  for (const auto& ab : std::vector<std::pair<double, double>>{{4.5, 6.25}, {12.5, 30.75}, {7.25, 7.25}, {40.5, 13.0}}) {
    const long double a = ab.first, b = ab.second;
    const long double lbeta = std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b);
    for (double p : {0.1, 0.3, 0.45, 0.6, 0.8, 0.95}) {
      const int intervals = 40000;
      const long double h = p / intervals;
      auto f = [&](long double t) {
        return t <= 0 ? 0.0L : std::exp((a - 1) * std::log(t) + (b - 1) * std::log1p(-t) - lbeta);
      };
      long double s = f(0) + f(p);
      for (int k = 1; k < intervals; ++k) s += (k % 2 ? 4 : 2) * f(k * h);
      const long double want = s * h / 3;
      if (want < 1e-200L) continue;
      cases.push_back(BetaCase{p, ab.first, ab.second, want, "quadrature of eq. (22)"});
    }
  }
  expect_beta_cases(cases, beta_on_device<TypeParam>(cases));
}

TYPED_TEST(StatisticsIncompleteBeta, SymmetryAndLemma8Recurrence) {
  // I(p; a, b) = 1 - I(1-p; b, a), and the identity the proof of Lemma 8 uses for even M = 2l:
  // I(p; l+1, l) + I(p; l, l+1) = 2 I(p; l, l).
  std::vector<BetaCase> cases;  // `want` unused here
  for (double p : beta_ps) {
    for (const auto& ab : std::vector<std::pair<double, double>>{{2.5, 7.25}, {40.5, 13.0}, {100.0, 80.0}, {0.75, 3.0}}) {
      cases.push_back(BetaCase{p, ab.first, ab.second, 0, ""});
      cases.push_back(BetaCase{1 - p, ab.second, ab.first, 0, ""});
    }
  }
  const std::size_t n_sym = cases.size();
  for (double p : beta_ps)
    for (int l = 1; l <= 40; l += 3) {
      cases.push_back(BetaCase{p, l + 1.0, double(l), 0, ""});
      cases.push_back(BetaCase{p, double(l), l + 1.0, 0, ""});
      cases.push_back(BetaCase{p, double(l), double(l), 0, ""});
    }
  const auto got = beta_on_device<TypeParam>(cases);
  // 1 - p is not exact for p < 1/2 (one rounding, relative 1.1e-16); |dI/dp| <= ~10 here, so 1e-13 absolute.
  for (std::size_t k = 0; k < n_sym; k += 2)
    EXPECT_NEAR(got[k] + got[k + 1], 1.0, 1e-13) << "p = " << cases[k].p << ", a = " << cases[k].a << ", b = " << cases[k].b;
  // Each I is within 3e-13 relative (l <= 41); 1e-12 absolute for a sum of three values <= 1.
  for (std::size_t k = n_sym; k < cases.size(); k += 3)
    EXPECT_NEAR(got[k] + got[k + 1], 2 * got[k + 2], 1e-12) << "p = " << cases[k].p << ", l = " << cases[k].b;
}

TEST(StatisticsIncompleteBetaHost, ExpectedVoteSignIsLemma8ByExactBinomialSums) {
  // Lemma 8 (eq. (23)) by exact enumeration: with S ~ Binomial(M, rho) correct signs,
  //   E[sign(vote)] = P(S > M/2) - P(S < M/2)
  // and expected_vote_sign(rho, M) = 2 I(rho; l, l) - 1 with l = floor((M+1)/2). Absolute 1e-12 (two I's).
  std::vector<int> Ms;
  for (int M = 1; M <= 41; ++M) Ms.push_back(M);
  for (int M : {127, 128, 129, 130, 201}) Ms.push_back(M);  // both sides of the sum / continued fraction switch
  for (int M : Ms)
    for (double rho : {0.01, 0.3, 0.5, 0.55, 0.7, 0.9, 0.999}) {
      const long double win = binomial_upper_tail(M, rho, M / 2 + 1);        // S > M/2
      const long double lose = binomial_lower_tail(M, rho, (M - 1) / 2);     // S < M/2
      EXPECT_NEAR(expected_vote_sign(rho, M), static_cast<double>(win - lose), 1e-12) << "M = " << M << ", rho = " << rho;
    }
  EXPECT_EQ(vote_half(1), 1);
  EXPECT_EQ(vote_half(2), 1);
  EXPECT_EQ(vote_half(7), 4);
  EXPECT_EQ(vote_half(8), 4);
}

// ------------------------------------------------------------------------------------------------------------
// Seed 001 Lemma 8 by Monte Carlo
// ------------------------------------------------------------------------------------------------------------

/// Trials t = 0..N-1: M signs, each +1 (correct) when uniform < rho; the vote is sign(sum). Returns
/// (#votes +1) + 2^32 (#votes -1) accumulated in one 64-bit integer (N < 2^31).
template <class ExecSpace>
std::uint64_t vote_trials(int M, double rho, std::size_t N, std::uint64_t config) {
  const CounterRng rng{20240501, static_cast<std::uint32_t>(RandomStream::stochastic_sign)};
  std::uint64_t packed = 0;
  Kokkos::parallel_reduce(
      "test::lemma8_trials", Kokkos::RangePolicy<ExecSpace>(0, N),
      KOKKOS_LAMBDA(std::size_t t, std::uint64_t& acc) {
        int vote = 0;
        for (int m = 0; m < M; ++m) vote += rng.uniform(config, static_cast<std::uint32_t>(m), t) < rho ? 1 : -1;
        acc += vote > 0 ? std::uint64_t(1) : (vote < 0 ? (std::uint64_t(1) << 32) : std::uint64_t(0));
      },
      packed);
  return packed;
}

template <class ExecSpace>
class StatisticsLemma8 : public ::testing::Test {};
TYPED_TEST_SUITE(StatisticsLemma8, ExecSpaces);

TYPED_TEST(StatisticsLemma8, MonteCarloVoteSignMatchesIncompleteBeta) {
  // Seed 001 Lemma 8: E[sign(g^(M)_i g_i)] = 2 I(rho_i; l, l) - 1 with l = floor((M+1)/2), so M = 2l-1 and
  // M = 2l have the same expectation. N trials per (M, rho); the standard error is estimated from the
  // sample: Var(sign) = P(vote != 0) - mean^2.
  const std::size_t N = 200000;
  const int Ms[] = {1, 2, 3, 4, 7, 8};
  const double rhos[] = {0.55, 0.7, 0.9};
  for (double rho : rhos) {
    double mean[9] = {}, se[9] = {};
    for (int M : Ms) {
      const std::uint64_t packed = vote_trials<TypeParam>(M, rho, N, 1000 * M + static_cast<std::uint64_t>(rho * 100));
      const double plus = static_cast<double>(packed & 0xffffffffu), minus = static_cast<double>(packed >> 32);
      mean[M] = (plus - minus) / N;
      const double var = (plus + minus) / N - mean[M] * mean[M];
      se[M] = std::sqrt(var / N);
      const int l = (M + 1) / 2;
      const double predicted = 2 * regularized_incomplete_beta(rho, l, l) - 1;
      EXPECT_LE(std::fabs(mean[M] - predicted), 4 * se[M])
          << "M = " << M << ", rho = " << rho << ": mean " << mean[M] << ", 2 I(rho; " << l << ", " << l
          << ") - 1 = " << predicted << ", se " << se[M];
      // The check has power: the neighbouring choices of l are more than 8 standard errors away.
      for (int wrong_l : {l - 1, l + 1}) {
        if (wrong_l < 1) continue;
        const double other = 2 * regularized_incomplete_beta(rho, wrong_l, wrong_l) - 1;
        EXPECT_GT(std::fabs(other - predicted), 8 * se[M]) << "M = " << M << ", rho = " << rho << ", l' = " << wrong_l;
      }
      // Even M: ties really occur (the vote fails with positive probability) and still the means agree.
      if (M % 2 == 0) {
        EXPECT_GT(N - plus - minus, 0.0) << "M = " << M;
      } else {
        EXPECT_EQ(N - plus - minus, 0.0) << "M = " << M;
      }
    }
    for (int l : {1, 2, 4}) {
      const int odd = 2 * l - 1, even = 2 * l;
      EXPECT_LE(std::fabs(mean[odd] - mean[even]), 4 * std::sqrt(se[odd] * se[odd] + se[even] * se[even]))
          << "M = " << odd << " vs M = " << even << ", rho = " << rho;
    }
  }
}

// ------------------------------------------------------------------------------------------------------------
// rho-norm and rho_M-norm (seed 001 Def. 1, Def. 2)
// ------------------------------------------------------------------------------------------------------------

template <class ExecSpace>
class StatisticsNorms : public ::testing::Test {};
TYPED_TEST_SUITE(StatisticsNorms, ExecSpaces);

template <class T>
std::vector<T> gaussian_values(std::size_t n, unsigned seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(normal(gen));
  return v;
}

template <class T>
std::vector<T> uniform_values(std::size_t n, double lo, double hi, unsigned seed) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(u(gen));
  return v;
}

// Tolerance of the fp64 reductions: the kernel sums n terms in double in some order (per-thread blocks, then
// a tree); the reference sums them in long double. Every term has a relative error <= 1 ulp, and the
// summation error is at most (n-1) u sum|t_i| in the worst case and ~sqrt(n) u sum|t_i| in practice
// (u = 1.1e-16; n = 1e5: 3.5e-14). We allow 1e-12 sum|t_i|: 30x the expected error, and a missing or wrong
// term (>= 1/n ~ 1e-5 of the sum for these inputs) is 1e7 times larger.
template <class ExecSpace, class T>
void check_rho_norm(std::size_t n, unsigned seed) {
  const auto g = gaussian_values<T>(n, seed);
  const auto rho = uniform_values<T>(n, 0.0, 1.0, seed + 1);  // includes rho < 1/2: terms of both signs
  long double want = 0, abs_sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const long double t = (2 * static_cast<long double>(rho[i]) - 1) * std::fabs(static_cast<long double>(g[i]));
    want += t;
    abs_sum += std::fabs(t);
  }
  const double got = rho_norm(ExecSpace(), to_device<ExecSpace>(g, "g"), to_device<ExecSpace>(rho, "rho"));
  EXPECT_LE(std::fabs(got - static_cast<double>(want)), 1e-12 * static_cast<double>(abs_sum))
      << "n = " << n << ": got " << got << ", want " << static_cast<double>(want);
}

TYPED_TEST(StatisticsNorms, RhoNormMatchesScalarLoop) {
  for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(1000), std::size_t(100003)}) {
    check_rho_norm<TypeParam, double>(n, 21 + static_cast<unsigned>(n));
    check_rho_norm<TypeParam, float>(n, 23 + static_cast<unsigned>(n));
  }
}

TYPED_TEST(StatisticsNorms, RhoNormLimits) {
  // Def. 1 comments: rho = 1 gives the l1 norm; rho = 1/2 (pure noise) gives exactly 0.
  const std::size_t n = 50001;
  const auto g = gaussian_values<double>(n, 31);
  long double l1 = 0;
  for (double x : g) l1 += std::fabs(x);
  const auto gd = to_device<TypeParam>(g, "g");
  EXPECT_LE(std::fabs(rho_norm(TypeParam(), gd, to_device<TypeParam>(std::vector<double>(n, 1.0), "one")) -
                      static_cast<double>(l1)),
            1e-12 * static_cast<double>(l1));
  EXPECT_EQ(rho_norm(TypeParam(), gd, to_device<TypeParam>(std::vector<double>(n, 0.5), "half")), 0.0);
}

struct RhoMCase {
  std::vector<double> g, rho;
  std::map<int, long double> reference;  // l -> ||g||_rho_M, filled on first use
};

RhoMCase& rho_M_case() {
  static RhoMCase c = [] {
    RhoMCase r;
    const std::size_t n = 6007;
    r.g = gaussian_values<double>(n, 41);
    r.rho = uniform_values<double>(n, 0.0, 1.0, 42);
    r.rho[3] = 0.0;  // the ends and the branch point of the finite sum
    r.rho[100] = 1.0;
    r.rho[n - 1] = 0.5;
    return r;
  }();
  return c;
}

TYPED_TEST(StatisticsNorms, RhoMNormMatchesBinomialTailReference) {
  // Def. 2 with I(rho; l, l) replaced by the exact binomial tail P(Bin(2l-1, rho) >= l) (eq. (26)).
  // Tolerance: each weight 2I - 1 is within 8e-15 absolute of the exact value for l <= 64 (finite sum) and
  // within 2.2e-13 for l <= 100 (continued fraction; from log B(l, l) = 2 lgamma(l) - lgamma(2l)) -- the
  // largest errors measured on a fine grid of rho -- so the sum is within 2.2e-13 sum|g_i| of the reference
  // even if every error had the same sign, plus the summation error above (<= ~1e-14 sum|g_i| in practice).
  // We allow 1e-12 sum|g_i| (the errors measured are ~1e-16).
  // The reference sums (O(l) long double pow calls per coordinate) are computed once, shared by the backends.
  const RhoMCase& data = rho_M_case();
  const std::size_t n = data.g.size();
  const auto gd = to_device<TypeParam>(data.g, "g");
  const auto rhod = to_device<TypeParam>(data.rho, "rho");
  long double l1 = 0;
  for (double x : data.g) l1 += std::fabs(x);
  std::map<int, long double>& reference = rho_M_case().reference;
  for (int M : {1, 2, 3, 4, 7, 8, 15, 16, 63, 64, 127, 129, 199}) {  // l <= 64: finite sum, l > 64: fraction
    const int l = (M + 1) / 2;
    if (!reference.count(l)) {
      long double sum = 0;
      for (std::size_t i = 0; i < n; ++i)
        sum += (2 * binomial_upper_tail(2 * l - 1, data.rho[i], l) - 1) * std::fabs(data.g[i]);
      reference[l] = sum;
    }
    const long double want = reference[l];
    const double got = rho_M_norm(TypeParam(), gd, rhod, M);
    EXPECT_LE(std::fabs(got - static_cast<double>(want)), 1e-12 * static_cast<double>(l1))
        << "M = " << M << ": got " << got << ", want " << static_cast<double>(want);
  }
}

TYPED_TEST(StatisticsNorms, RhoMNormPropertiesOfSection42) {
  // Under SPB (rho_i > 1/2): ||g||_rho_1 = ||g||_rho (I(p;1,1) = p); ||g||_rho_M increases with l and
  // (1 - exp(-(2 rho_min - 1)^2 l)) ||g||_1 <= ||g||_rho_M <= ||g||_1 (Sec. 4.2, Variance Reduction, App. B.8);
  // M = 2l - 1 and M = 2l give the same norm ("Number of nodes").
  const std::size_t n = 10007;
  const auto g = gaussian_values<double>(n, 51);
  const auto rho = uniform_values<double>(n, 0.55, 0.95, 52);
  double rho_min = 1;
  for (double r : rho) rho_min = std::min(rho_min, r);
  long double l1_sum = 0;
  for (double x : g) l1_sum += std::fabs(x);
  const double l1 = static_cast<double>(l1_sum);
  const auto gd = to_device<TypeParam>(g, "g");
  const auto rhod = to_device<TypeParam>(rho, "rho");
  // I(p;1,1) is computed by the continued fraction, not as p: 1e-12 relative (see the tolerance note above).
  EXPECT_NEAR(rho_M_norm(TypeParam(), gd, rhod, 1), rho_norm(TypeParam(), gd, rhod), 1e-12 * l1);
  double previous = 0;
  for (int l = 1; l <= 20; ++l) {
    const double odd = rho_M_norm(TypeParam(), gd, rhod, 2 * l - 1);
    const double even = rho_M_norm(TypeParam(), gd, rhod, 2 * l);
    EXPECT_NEAR(odd, even, 1e-13 * l1) << "l = " << l;
    EXPECT_GT(odd, previous) << "l = " << l;
    EXPECT_LE(odd, l1 * (1 + 1e-12)) << "l = " << l;
    EXPECT_GE(odd, (1 - std::exp(-(2 * rho_min - 1) * (2 * rho_min - 1) * l)) * l1 * (1 - 1e-12)) << "l = " << l;
    previous = odd;
  }
}

// ------------------------------------------------------------------------------------------------------------
// eta* (seed 000 Prop. 3 eq. (1), estimated as in Sec. II-B)
// ------------------------------------------------------------------------------------------------------------

template <class ExecSpace>
class StatisticsEtaStar : public ::testing::Test {};
TYPED_TEST_SUITE(StatisticsEtaStar, ExecSpaces);

template <class ExecSpace, class T, class Layout = Kokkos::LayoutRight>
Kokkos::View<T**, Layout, DeviceMem<ExecSpace>> batch_to_device(const std::vector<std::vector<T>>& rows) {
  const std::size_t m = rows.size(), d = m ? rows[0].size() : 0;
  Kokkos::View<T**, Layout, DeviceMem<ExecSpace>> v("grads", m, d);
  auto h = Kokkos::create_mirror_view(v);
  for (std::size_t j = 0; j < m; ++j)
    for (std::size_t i = 0; i < d; ++i) h(j, i) = rows[j][i];
  Kokkos::deep_copy(v, h);
  return v;
}

/// Scalar eta* from eq. (1) with the Sec. II-B estimates: g^_i = batch mean, q^_i = sign-mismatch fraction
/// against g (given) or against g^. Returns {eta*, sum_i |term_i| / L}.
template <class T>
std::pair<double, double> reference_eta_star(const std::vector<std::vector<T>>& rows, const std::vector<T>* g, double L) {
  const std::size_t m = rows.size(), d = rows[0].size();
  long double sum = 0, abs_sum = 0;
  for (std::size_t i = 0; i < d; ++i) {
    double gi;
    if (g) {
      gi = (*g)[i];
    } else {
      double s = 0;
      for (std::size_t j = 0; j < m; ++j) s += rows[j][i];
      gi = s / m;
    }
    const bool g_plus = !(gi < 0);
    std::size_t mismatches = 0;
    for (std::size_t j = 0; j < m; ++j) mismatches += (!(rows[j][i] < 0)) != g_plus;
    const long double term = std::fabs(static_cast<long double>(gi)) * (1 - 2 * static_cast<long double>(mismatches) / m);
    sum += term;
    abs_sum += std::fabs(term);
  }
  return {static_cast<double>(sum / L), static_cast<double>(abs_sum / L)};
}

template <class T>
std::vector<std::vector<T>> noisy_batch(const std::vector<double>& g, std::size_t m, double sigma, unsigned seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<std::vector<T>> rows(m, std::vector<T>(g.size()));
  for (auto& row : rows)
    for (std::size_t i = 0; i < g.size(); ++i) {
      row[i] = static_cast<T>(g[i] + sigma * normal(gen));
      if (gen() % 53 == 0) row[i] = (gen() & 1) ? T(0) : -T(0);  // exact zeros count as +1 (the convention)
    }
  return rows;
}

template <class ExecSpace, class T, class Layout>
void check_eta_star(std::size_t m, std::size_t d, unsigned seed) {
  const double L = 3.7;
  const auto g = gaussian_values<double>(d, seed);
  const auto rows = noisy_batch<T>(g, m, 1.5, seed + 1);
  std::vector<T> gt(g.begin(), g.end());
  const auto grads = batch_to_device<ExecSpace, T, Layout>(rows);
  // Tolerance 1e-12 of sum|term|/L: the same summation argument as for the norms (d ~ 4e3 terms here), and
  // the batch mean may differ from the reference's by one rounding (sum * (1/m) vs sum / m).
  const auto want = reference_eta_star<T>(rows, nullptr, L);
  const double got = eta_star(ExecSpace(), grads, L);
  EXPECT_LE(std::fabs(got - want.first), 1e-12 * want.second) << "m = " << m << ", d = " << d;
  const auto want_g = reference_eta_star<T>(rows, &gt, L);
  const double got_g = eta_star(ExecSpace(), grads, to_device<ExecSpace>(gt, "g"), L);
  EXPECT_LE(std::fabs(got_g - want_g.first), 1e-12 * want_g.second) << "m = " << m << ", d = " << d;
  // The noise makes some sign-error rates nonzero: not the noiseless value.
  EXPECT_LT(got_g, 0.99 * reference_eta_star<T>(std::vector<std::vector<T>>{gt}, &gt, L).first);
}

TYPED_TEST(StatisticsEtaStar, MatchesScalarLoopOfEquation1) {
  check_eta_star<TypeParam, double, Kokkos::LayoutRight>(32, 4099, 61);
  check_eta_star<TypeParam, float, Kokkos::LayoutRight>(17, 1000, 63);
  check_eta_star<TypeParam, double, Kokkos::LayoutLeft>(5, 777, 65);
  check_eta_star<TypeParam, float, Kokkos::LayoutLeft>(1, 300, 67);
}

TYPED_TEST(StatisticsEtaStar, ClosedFormBatch) {
  // m = 8 samples per coordinate: (8 - k) equal to +a and k equal to -b. Then g^ = ((8-k) a - k b) / 8 and
  // q^ = k/8 if g^ >= 0, (8-k)/8 otherwise, so eta* = sum_i |g^_i| (1 - 2 q^_i) / L in closed form. All the
  // values are dyadic with few bits, so every sum is exact in any order: bitwise equality.
  struct Pattern {
    double a, b;
    int k;
  };
  const Pattern patterns[] = {
      {1.5, 0.25, 0}, {1.5, 0.25, 1}, {1.5, 0.25, 2}, {1.5, 0.25, 3},  // mean > 0, majority agrees
      {4.0, 0.25, 5},                                                  // mean > 0, majority disagrees: term < 0
      {0.5, 2.0, 6},                                                   // mean < 0
      {1.0, 1.0, 4},                                                   // mean exactly 0: term 0
  };
  const std::size_t m = 8, d = 1001;
  const double L = 4;
  std::vector<std::vector<double>> rows(m, std::vector<double>(d));
  double want = 0;
  for (std::size_t i = 0; i < d; ++i) {
    const Pattern& p = patterns[i % 7];
    for (std::size_t j = 0; j < m; ++j) rows[(j + i) % m][i] = j < m - p.k ? p.a : -p.b;  // rotate positions
    const double mean = ((m - p.k) * p.a - p.k * p.b) / m;
    const double q = (mean >= 0 ? p.k : m - p.k) / double(m);
    want += std::fabs(mean) * (1 - 2 * q);
  }
  want /= L;
  EXPECT_EQ(eta_star(TypeParam(), batch_to_device<TypeParam, double>(rows), L), want);
  EXPECT_LT(want, 0.95 * 1.5 * d / L);  // sanity: the sign errors lower eta*

  // Zero noise (the "ideal case" of seed 000 Fig. 1): every sample equals g, so q^ = 0 and eta* = ||g||_1 / L.
  const auto g = gaussian_values<double>(d, 71);
  long double l1 = 0;
  for (double x : g) l1 += std::fabs(x);
  const auto same = batch_to_device<TypeParam, double>(std::vector<std::vector<double>>(m, g));
  const double ideal = static_cast<double>(l1 / L);
  EXPECT_NEAR(eta_star(TypeParam(), same, to_device<TypeParam>(g, "g"), L), ideal, 1e-12 * ideal);
  EXPECT_NEAR(eta_star(TypeParam(), same, L), ideal, 1e-12 * ideal);  // the mean of 8 copies is g up to 1 ulp
}

TYPED_TEST(StatisticsEtaStar, GaussianNoiseMatchesExactSignErrorProbability) {
  // Seed 000 Sec. III setting with noise on every coordinate: g~ = g + sigma_i N(0, 1). Then
  // P[sign g~_i != sign g_i] = Phi(-|g_i|/sigma_i) and eq. (1) is exactly
  //   eta* = sum_i |g_i| erf(|g_i| / (sigma_i sqrt 2)) / L.
  // With g given, q^_i is an unbiased binomial estimate, so the estimate has mean eta* and standard error
  // sqrt(sum_i 4 g_i^2 q_i (1 - q_i) / m) / L; allow 4 of them.
  const std::size_t m = 64, d = 4096;
  const double L = 1;  // f(x) = |x|^2 / 2 has L = 1
  const auto g = gaussian_values<double>(d, 81);
  std::vector<double> sigma(d);
  for (std::size_t i = 0; i < d; ++i) sigma[i] = 0.1 + 3.0 * (i % 10) / 10.0;
  std::mt19937_64 gen(82);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<std::vector<double>> rows(m, std::vector<double>(d));
  for (auto& row : rows)
    for (std::size_t i = 0; i < d; ++i) row[i] = g[i] + sigma[i] * normal(gen);
  double exact = 0, var = 0;
  for (std::size_t i = 0; i < d; ++i) {
    const double q = 0.5 * std::erfc(std::fabs(g[i]) / (sigma[i] * std::sqrt(2.0)));
    exact += std::fabs(g[i]) * std::erf(std::fabs(g[i]) / (sigma[i] * std::sqrt(2.0)));
    var += 4 * g[i] * g[i] * q * (1 - q) / m;
  }
  const double got = eta_star(TypeParam(), batch_to_device<TypeParam, double>(rows), to_device<TypeParam>(g, "g"), L);
  EXPECT_LE(std::fabs(got - exact / L), 4 * std::sqrt(var) / L) << "got " << got << ", exact " << exact / L;
}

// ------------------------------------------------------------------------------------------------------------
// The per-coordinate functors that GPU backends use (host backends use word/block loops), run on this
// backend so that the device code path is tested on a machine without a GPU.
// ------------------------------------------------------------------------------------------------------------

template <class ExecSpace>
class StatisticsDevicePaths : public ::testing::Test {};
TYPED_TEST_SUITE(StatisticsDevicePaths, ExecSpaces);

TYPED_TEST(StatisticsDevicePaths, PerCoordinateFunctorsMatchScalarLoops) {
  using Policy = Kokkos::RangePolicy<TypeParam>;
  std::mt19937_64 gen(91);
  const std::size_t n = 1000;  // not a multiple of 64
  const int samples = 9;
  const auto ref = random_words(n, gen, true);
  const auto refd = to_device<TypeParam>(ref, "ref");
  const std::size_t nw = packed_words(n);
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, DeviceMem<TypeParam>> batch("batch", samples, nw);
  auto h = Kokkos::create_mirror_view(batch);
  std::vector<std::int32_t> want(n, 3);
  for (int k = 0; k < samples; ++k) {
    const auto row = random_words(n, gen, true);
    for (std::size_t w = 0; w < nw; ++w) h(k, w) = row[w];
    for (std::size_t i = 0; i < n; ++i) want[i] += 2 * (reference_bit(row, i) == reference_bit(ref, i));
  }
  Kokkos::deep_copy(batch, h);
  auto counts = to_device<TypeParam>(std::vector<std::int32_t>(n, 3), "counts");
  using CView = decltype(counts);
  using BView = decltype(batch);
  using RView = decltype(refd);
  Kokkos::parallel_for("test::batch_coords", Policy(0, n),
                       terse::Impl::SignAgreementAccumulateBatchCoords<BView, RView, CView>{batch, refd, counts});
  for (int k = 0; k < samples; ++k) {
    auto row = Kokkos::subview(batch, k, Kokkos::ALL());
    Kokkos::parallel_for("test::coords", Policy(0, n),
                         terse::Impl::SignAgreementAccumulateCoords<decltype(row), RView, CView>{row, refd, counts});
  }
  const auto got = to_host(counts);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], want[i]) << i;

  // The one-word-per-iteration count, padding garbage in `ref`.
  const auto a = random_words(n, gen, false);
  std::uint64_t want_count = 0, got_count = 0;
  for (std::size_t i = 0; i < n; ++i) want_count += reference_bit(a, i) == reference_bit(ref, i);
  const auto ad = to_device<TypeParam>(a, "a");
  Kokkos::parallel_reduce("test::count_words", Policy(0, nw),
                          terse::Impl::SignAgreementCount<decltype(ad), RView>{ad, refd, nw - 1, terse::Impl::tail_mask(n)},
                          got_count);
  EXPECT_EQ(got_count, want_count);

  // rho-norm and eta* per coordinate; tolerances as in the tests above (1e-12 of the sum of |terms|).
  const std::size_t d = 3001, m = 7;
  const auto g = gaussian_values<double>(d, 92);
  const auto rho = uniform_values<double>(d, 0.0, 1.0, 93);
  const auto gd = to_device<TypeParam>(g, "g");
  const auto rhod = to_device<TypeParam>(rho, "rho");
  long double want_rho = 0, abs_rho = 0;
  for (std::size_t i = 0; i < d; ++i) {
    const long double t = (2 * static_cast<long double>(rho[i]) - 1) * std::fabs(g[i]);
    want_rho += t;
    abs_rho += std::fabs(t);
  }
  double got_rho = 0;
  Kokkos::parallel_reduce("test::rho_norm_coords", Policy(0, d), terse::Impl::RhoNorm<decltype(gd), decltype(rhod)>{gd, rhod},
                          got_rho);
  EXPECT_LE(std::fabs(got_rho - static_cast<double>(want_rho)), 1e-12 * static_cast<double>(abs_rho));

  const auto rows = noisy_batch<double>(g, m, 1.0, 94);
  const auto grads = batch_to_device<TypeParam, double>(rows);
  const auto want_mean = reference_eta_star<double>(rows, nullptr, 1.0);
  const auto want_given = reference_eta_star<double>(rows, &g, 1.0);
  double got_mean = 0, got_given = 0;
  Kokkos::parallel_reduce("test::eta_mean_coords", Policy(0, d),
                          terse::Impl::EtaStarBatchMean<decltype(grads)>{grads, 1.0 / m}, got_mean);
  Kokkos::parallel_reduce("test::eta_given_coords", Policy(0, d),
                          terse::Impl::EtaStarGiven<decltype(grads), decltype(gd)>{grads, gd, 1.0 / m}, got_given);
  EXPECT_LE(std::fabs(got_mean - want_mean.first), 1e-12 * want_mean.second);
  EXPECT_LE(std::fabs(got_given - want_given.first), 1e-12 * want_given.second);

  // rho_M-norm per coordinate (l = 4, the finite sum; l = 70, the continued fraction) against the binomial tail.
  for (int l : {4, 70}) {
    long double want_M = 0, l1 = 0;
    for (std::size_t i = 0; i < d; ++i) {
      want_M += (2 * binomial_upper_tail(2 * l - 1, rho[i], l) - 1) * std::fabs(g[i]);
      l1 += std::fabs(g[i]);
    }
    double got_M = 0;
    Kokkos::parallel_reduce("test::rho_M_coords", Policy(0, d),
                            terse::Impl::RhoMNorm<decltype(gd), decltype(rhod)>{gd, rhod, l, log_beta(l, l)}, got_M);
    EXPECT_LE(std::fabs(got_M - static_cast<double>(want_M)), 1e-12 * static_cast<double>(l1)) << "l = " << l;
  }
}

}  // namespace
