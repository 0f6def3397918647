// Top-k selection, scatter-add and zeroing against scalar references, on every backend; rand-k (its draw, its
// values, its statistics and its memories) against its definition.
//
// The reference sorts the indices by (|x| descending, index ascending), with NaN larger than every number,
// keeps the first k and sorts them by index: an O(n log n) definition written from the specification, not
// from the radix select. Selections are compared bitwise (indices, and values including the sign of zero).
#include "terse_TestBackends.hpp"
#include "terse_TestReference.hpp"

#include <terse_Compress.hpp>
#include <terse_Compressor.hpp>
#include <terse_Random.hpp>
#include <terse_TopK.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace terse;
using namespace terse::test;

/// Indices of x in selection order: |x| descending with NaN first, ties by ascending index.
template <class T>
std::vector<std::uint32_t> reference_order(const std::vector<T>& x) {
  std::vector<std::uint32_t> order(x.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    const bool na = std::isnan(x[a]), nb = std::isnan(x[b]);
    if (na != nb) return na;
    if (na) return false;
    return std::fabs(x[a]) > std::fabs(x[b]);
  });
  return order;
}

/// The first min(k, n) of the order, ascending.
inline std::vector<std::uint32_t> reference_top_k(const std::vector<std::uint32_t>& order, std::size_t k) {
  std::vector<std::uint32_t> sel(order.begin(), order.begin() + std::min(k, order.size()));
  std::sort(sel.begin(), sel.end());
  return sel;
}

template <class T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

template <class ExecSpace, class T>
void expect_selection(const TopKWorkspace<ExecSpace, T>& ws, const std::vector<T>& x,
                      const std::vector<std::uint32_t>& want, const std::string& what) {
  const auto idx = to_host(ws.indices());
  const auto val = to_host(ws.values());
  ASSERT_EQ(idx.size(), want.size()) << what;
  ASSERT_EQ(val.size(), want.size()) << what;
  for (std::size_t j = 0; j < want.size(); ++j) {
    ASSERT_EQ(idx[j], want[j]) << what << ", entry " << j;
    ASSERT_TRUE(same_bits(val[j], x[want[j]])) << what << ", entry " << j << ": " << val[j] << " vs " << x[want[j]];
  }
}

/// Test vectors: 0 mixed (Gaussian, zeros, -0.0, subnormals, 1e30), 1 small set {-2,-1,-0,0,1,2} (heavy ties),
/// 2 all equal magnitude (alternating +-1.5), 3 uniform [0, 1) (a wide first-digit bucket at the threshold).
template <class T>
std::vector<T> make_values(int kind, std::size_t n, unsigned seed) {
  std::mt19937_64 gen(seed);
  std::vector<T> x(n);
  switch (kind) {
    case 0: return mixed_values<T>(n, seed);
    case 1: {
      const T set[] = {T(-2), T(-1), -T(0), T(0), T(1), T(2)};
      std::uniform_int_distribution<int> pick(0, 5);
      for (auto& v : x) v = set[pick(gen)];
      return x;
    }
    case 2:
      for (std::size_t i = 0; i < n; ++i) x[i] = (i % 2) ? T(-1.5) : T(1.5);
      return x;
    default: {
      std::uniform_real_distribution<double> u(0.0, 1.0);
      for (auto& v : x) v = static_cast<T>(u(gen));
      return x;
    }
  }
}

std::vector<std::size_t> k_values(std::size_t n) {
  const std::size_t ef21 = std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(0.016 * double(n))));
  std::vector<std::size_t> ks = {0, 1, ef21, n / 2, n > 0 ? n - 1 : 0, n + 5};
  if (n <= 1000) ks.insert(ks.end(), {2, n / 3, n});  // k = n is the k > n path (select all) too
  std::sort(ks.begin(), ks.end());
  ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
  return ks;
}

/// The option sets that reach every code path: defaults; small chunks (many chunks, chunk boundaries inside
/// the tie runs); no candidate buffer (every pass reads the source); the team kernels on the host.
template <class ExecSpace>
std::vector<std::pair<std::string, TopKOptions>> option_sets(std::size_t n) {
  std::vector<std::pair<std::string, TopKOptions>> sets;
  sets.emplace_back("default", TopKOptions{});
  TopKOptions small;
  small.chunk = n <= 1000 ? 61 : 4001;  // every chunk writes 2049 counters: keep their number moderate
  sets.emplace_back("chunk " + std::to_string(small.chunk), small);
  TopKOptions nobuf;
  nobuf.chunk = 997;
  nobuf.candidate_capacity = 0;
  sets.emplace_back("no buffer", nobuf);
  TopKOptions team;
  team.chunk = std::max<std::size_t>(n / 3 + 1, 50);  // 3 chunks: host team barriers are slow on a busy machine
  team.host_team_size = std::min(2, compat::concurrency(ExecSpace()));
  sets.emplace_back("teams", team);
  return sets;
}

template <class ExecSpace>
class TopK : public ::testing::Test {};
TYPED_TEST_SUITE(TopK, ExecSpaces);

template <class ExecSpace, class T>
void check_against_reference(const std::vector<std::size_t>& sizes) {
  for (int kind = 0; kind < 4; ++kind) {
    for (auto n : sizes) {
      const auto x = make_values<T>(kind, n, 1234 + kind * 7 + static_cast<unsigned>(n));
      const auto xd = to_device<ExecSpace>(x, "x");
      const auto order = reference_order(x);
      const auto options = option_sets<ExecSpace>(n);
      for (auto k : k_values(n)) {
        const auto want = reference_top_k(order, k);
        for (const auto& [name, opt] : options) {
          TopKWorkspace<ExecSpace, T> ws(n, k, opt);
          ASSERT_EQ(ws.k(), std::min(k, n));
          top_k_select(ExecSpace(), xd, ws);
          expect_selection(ws, x, want,
                           "kind " + std::to_string(kind) + ", n " + std::to_string(n) + ", k " + std::to_string(k) +
                               ", " + name);
        }
      }
    }
  }
}

TYPED_TEST(TopK, Float32MatchesScalarReference) {
  check_against_reference<TypeParam, float>({1, 2, 63, 64, 1000, 100003});
}

TYPED_TEST(TopK, Float64MatchesScalarReference) {
  check_against_reference<TypeParam, double>({1, 2, 63, 64, 1000, 100003});
}

TYPED_TEST(TopK, EmptyVectorSelectsNothing) {
  TopKWorkspace<TypeParam, float> ws(0, 3);
  EXPECT_EQ(ws.k(), 0u);
  top_k_select(TypeParam(), Kokkos::View<float*, typename TypeParam::memory_space>("x", 0), ws);
  EXPECT_EQ(ws.indices().extent(0), 0u);
}

TYPED_TEST(TopK, SignedZerosTieAndKeepTheirSign) {
  // All magnitudes are 0: the first k indices win, and -0.0 comes back as -0.0.
  const std::vector<float> x = {-0.0f, 0.0f, -0.0f, 0.0f, 0.0f, -0.0f, 0.0f};
  TopKWorkspace<TypeParam, float> ws(x.size(), 3);
  top_k_select(TypeParam(), to_device<TypeParam>(x), ws);
  expect_selection(ws, x, {0, 1, 2}, "zeros");
  EXPECT_TRUE(std::signbit(to_host(ws.values())[0]));
}

TYPED_TEST(TopK, NaNIsLargestThenInfinity) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const std::vector<double> x = {1.0, -inf, 3.0, -nan, 1e308, nan, -2.0, inf, 0.5};
  const auto order = reference_order(x);
  ASSERT_EQ(order[0], 3u);  // the reference itself: NaNs first by index, then the infinities
  ASSERT_EQ(order[2], 1u);
  for (std::size_t k = 0; k <= x.size(); ++k) {
    TopKWorkspace<TypeParam, double> ws(x.size(), k);
    top_k_select(TypeParam(), to_device<TypeParam>(x), ws);
    expect_selection(ws, x, reference_top_k(order, k), "k " + std::to_string(k));
  }
}

template <class ExecSpace, class T>
struct SumSource {
  Kokkos::View<const T*, typename ExecSpace::memory_space> g, e;
  KOKKOS_INLINE_FUNCTION T operator()(std::size_t i) const { return g(i) + e(i); }
};

template <class ExecSpace, class T>
void check_functor_source(std::size_t n, std::size_t k) {
  const auto g = make_values<T>(0, n, 77);
  const auto e = make_values<T>(3, n, 78);
  std::vector<T> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = g[i] + e[i];  // one rounding, the same on every backend
  for (const auto& [name, opt] : option_sets<ExecSpace>(n)) {
    TopKWorkspace<ExecSpace, T> ws(n, k, opt);
    top_k_select(ExecSpace(), SumSource<ExecSpace, T>{to_device<ExecSpace>(g), to_device<ExecSpace>(e)}, ws);
    expect_selection(ws, p, reference_top_k(reference_order(p), k), "functor source, " + name);
  }
}

TYPED_TEST(TopK, FunctorSourceComputesGPlusEOnTheFly) {
  check_functor_source<TypeParam, float>(50021, 800);
  check_functor_source<TypeParam, double>(50021, 800);
}

TYPED_TEST(TopK, WorkspaceIsReusableAcrossCalls) {
  const std::size_t n = 20000, k = 320;
  TopKWorkspace<TypeParam, float> ws(n, k);
  for (int kind = 0; kind < 4; ++kind) {
    const auto x = make_values<float>(kind, n, 5 + kind);
    top_k_select(TypeParam(), to_device<TypeParam>(x), ws);
    expect_selection(ws, x, reference_top_k(reference_order(x), k), "call " + std::to_string(kind));
  }
}

// The code paths the comparisons above rely on are really taken.
TYPED_TEST(TopK, SmoothDataReadsTheSourceTwice) {
  const std::size_t n = 100003, k = 1600;
  const auto x = make_values<float>(0, n, 3);
  TopKWorkspace<TypeParam, float> ws(n, k);
  top_k_select(TypeParam(), to_device<TypeParam>(x), ws);
  EXPECT_GT(ws.candidates(), k);  // compacted after the first histogram pass
  EXPECT_LE(ws.candidates(), ws.candidate_capacity());
  EXPECT_EQ(ws.source_passes(), 2);
  EXPECT_GE(ws.candidate_passes(), 2);
}

TYPED_TEST(TopK, AllTiedVectorFallsBackToSourcePasses) {
  const std::size_t n = 100003, k = 1600;
  const auto x = make_values<double>(2, n, 3);
  TopKWorkspace<TypeParam, double> ws(n, k);
  top_k_select(TypeParam(), to_device<TypeParam>(x), ws);
  EXPECT_EQ(ws.candidates(), 0u);
  EXPECT_EQ(ws.source_passes(), 6 + 1);  // 63-bit key: 6 digits, then the write
  std::vector<std::uint32_t> first(k);
  std::iota(first.begin(), first.end(), 0u);
  expect_selection(ws, x, first, "all tied");
}

TYPED_TEST(TopK, StopsWhenTheThresholdBucketIsTakenWhole) {
  // Exactly k entries of magnitude 3 and the rest 1: one histogram pass separates them.
  const std::size_t n = 5000, k = 77;
  std::vector<float> x(n, 1.0f);
  for (std::size_t j = 0; j < k; ++j) x[(j * 61) % n] = (j % 2) ? 3.0f : -3.0f;
  TopKWorkspace<TypeParam, float> ws(n, k);
  top_k_select(TypeParam(), to_device<TypeParam>(x), ws);
  EXPECT_EQ(ws.source_passes(), 2);
  EXPECT_EQ(ws.candidates(), 0u);
  expect_selection(ws, x, reference_top_k(reference_order(x), k), "bucket taken whole");
}

TYPED_TEST(TopK, RejectsASourceOfTheWrongLength) {
  TopKWorkspace<TypeParam, float> ws(10, 2);
  Kokkos::View<float*, typename TypeParam::memory_space> x("x", 11);
  EXPECT_THROW(top_k_select(TypeParam(), x, ws), std::invalid_argument);
}

// Seed 004 Assumption 4.1 for top-k with pi = k/d: ||C(x) - x||^2 <= (1 - k/d) ||x||^2, and the error-feedback
// split x = C(x) + (x - C(x)) built from top_k_scatter_add and top_k_zero is exact.
TYPED_TEST(TopK, ContractionAndErrorFeedbackSplit) {
  using Mem = typename TypeParam::memory_space;
  const std::size_t n = 30011;
  for (std::size_t k : {std::size_t(1), std::size_t(480), std::size_t(10000)}) {
    const auto x = make_values<double>(3, n, 41 + static_cast<unsigned>(k));
    TopKWorkspace<TypeParam, double> ws(n, k);
    top_k_select(TypeParam(), to_device<TypeParam>(x), ws);
    Kokkos::View<double*, Mem> cx("cx", n);
    top_k_scatter_add(TypeParam(), ws.indices(), ws.values(), cx);
    auto rest = to_device<TypeParam>(x, "rest");
    top_k_zero(TypeParam(), ws.indices(), rest);
    const auto c = to_host(cx), r = to_host(rest);
    double err = 0, norm = 0;
    std::size_t nonzero = 0;
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_EQ(c[i] + r[i], x[i]) << i;  // one of the two is exactly 0
      ASSERT_TRUE(c[i] == 0 || r[i] == 0) << i;
      nonzero += (c[i] != 0);
      err += r[i] * r[i];
      norm += x[i] * x[i];
    }
    EXPECT_EQ(nonzero, k);  // uniform draws are nonzero
    // Tolerance: each sum of n non-negative terms carries a relative rounding error below n * eps = 3.3e-12,
    // hence the 1e-10 relative slack. The lemma's margin here is far larger (for k = 1 it is
    // max_i x_i^2 - ||x||^2 / n, about 0.67 against ||x||^2 of about 1e4), so the slack decides nothing; the
    // exact choice of the k entries is checked against the reference in the tests above.
    EXPECT_LE(err, (1.0 - double(k) / double(n)) * norm * (1 + 1e-10));
  }
}

template <class ExecSpace, class T>
void check_scatter(std::size_t n, std::size_t m, std::size_t count, T alpha, unsigned seed) {
  std::mt19937_64 gen(seed);
  std::vector<std::uint32_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0u);
  std::shuffle(perm.begin(), perm.end(), gen);
  const std::vector<std::uint32_t> idx(perm.begin(), perm.begin() + m);  // distinct, unsorted
  const auto val = make_values<T>(0, m, seed + 1);
  const auto y0 = make_values<T>(3, n, seed + 2);

  auto y = to_device<ExecSpace>(y0, "y");
  const auto idx_d = to_device<ExecSpace>(idx, "idx");
  if (count == m) top_k_scatter_add(ExecSpace(), idx_d, to_device<ExecSpace>(val, "val"), y, alpha);
  else top_k_scatter_add(ExecSpace(), idx_d, to_device<ExecSpace>(val, "val"), y, alpha, count);
  // alpha is a power of two (or 1), so alpha * val is exact and an FMA contraction cannot change the result.
  std::vector<T> want = y0;
  for (std::size_t j = 0; j < count; ++j) want[idx[j]] += alpha * val[j];
  const auto got = to_host(y);
  for (std::size_t i = 0; i < n; ++i) ASSERT_TRUE(same_bits(got[i], want[i])) << "scatter, coordinate " << i;

  auto z = to_device<ExecSpace>(y0, "z");
  if (count == m) top_k_zero(ExecSpace(), idx_d, z);
  else top_k_zero(ExecSpace(), idx_d, z, count);
  std::vector<T> zwant = y0;
  for (std::size_t j = 0; j < count; ++j) zwant[idx[j]] = 0;
  const auto zgot = to_host(z);
  for (std::size_t i = 0; i < n; ++i) ASSERT_TRUE(same_bits(zgot[i], zwant[i])) << "zero, coordinate " << i;
}

TYPED_TEST(TopK, ScatterAddAndZeroMatchScalarLoops) {
  check_scatter<TypeParam, float>(1000, 16, 16, 1.0f, 1);
  check_scatter<TypeParam, float>(100003, 1600, 1600, -0.5f, 2);
  check_scatter<TypeParam, float>(100003, 1600, 1000, 2.0f, 3);  // count < extent
  check_scatter<TypeParam, double>(100003, 1600, 1600, 0.25, 4);
  check_scatter<TypeParam, double>(64, 0, 0, 1.0, 5);
}

// ---- rand-k -------------------------------------------------------------------------------------------------

/// The rand-k draw from its definition: coordinate i's key is the top 24 bits of lane i % 4 of the generator's
/// draw (iteration, worker, i / 4), plus one, over 2^24; the k largest keys, ties to the lower index; ascending.
std::vector<std::uint32_t> reference_rand_k(const CounterRng& rng, std::uint64_t it, std::uint32_t worker,
                                            std::size_t n, std::size_t k) {
  std::vector<double> key(n);
  for (std::size_t i = 0; i < n; ++i) key[i] = (static_cast<double>(rng.draw(it, worker, i / 4).v[i % 4] >> 8) + 1) / 16777216.0;
  std::vector<std::uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) { return key[a] > key[b]; });
  std::vector<std::uint32_t> sel(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k));
  std::sort(sel.begin(), sel.end());
  return sel;
}

TYPED_TEST(TopK, RandKFollowsItsDefinitionAndIsUnbiased) {
  using Exec = TypeParam;
  const std::size_t n = 200, k = 25;
  const auto x = make_values<float>(0, n, 77);
  const auto xd = to_device<Exec>(x, "x");
  const CounterRng rng{9, static_cast<std::uint32_t>(RandomStream::rand_k)};
  TopKWorkspace<Exec, float> ws(n, k);
  const float scale = static_cast<float>(static_cast<double>(n) / k);
  const int draws = 4000;
  std::vector<double> count(n, 0), sum(n, 0);
  for (int it = 0; it < draws; ++it) {
    const auto m = rand_k_compress(Exec(), xd, rng, static_cast<std::uint64_t>(it), 3u, ws);
    const auto idx = to_host(m.indices);
    const auto val = to_host(m.values);
    ASSERT_EQ(idx.size(), k);
    if (it < 20) {  // the draw itself, and the values (n / k) x_i bit for bit
      ASSERT_EQ(idx, reference_rand_k(rng, static_cast<std::uint64_t>(it), 3u, n, k)) << "draw " << it;
      for (std::size_t j = 0; j < k; ++j) ASSERT_TRUE(same_bits(val[j], scale * x[idx[j]])) << "draw " << it;
    }
    for (std::size_t j = 0; j < k; ++j) {
      count[idx[j]] += 1;
      sum[idx[j]] += val[j];
    }
  }
  // Each coordinate is drawn with probability k / n and E C(x)_i = x_i: within 5 standard errors of each.
  const double p = static_cast<double>(k) / n;
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_NEAR(count[i], draws * p, 5 * std::sqrt(draws * p * (1 - p))) << "coordinate " << i;
    const double se = std::fabs(x[i]) * std::sqrt((1.0 / p - 1) / draws);
    EXPECT_NEAR(sum[i] / draws, x[i], 5 * se + 1e-12) << "coordinate " << i;
  }
  // Workers draw independently: another worker's first draw is another set.
  EXPECT_NE(reference_rand_k(rng, 0, 3u, n, k), reference_rand_k(rng, 0, 4u, n, k));
  const auto other = rand_k_compress(Exec(), xd, rng, 0, 4u, ws);
  EXPECT_EQ(to_host(other.indices), reference_rand_k(rng, 0, 4u, n, k));
}

TYPED_TEST(TopK, RandKMemoriesFollowTheirRecurrences) {
  using Exec = TypeParam;
  const std::size_t n = 150, k = 40;
  const CounterRng rng{5, static_cast<std::uint32_t>(RandomStream::rand_k)};
  const double scale = static_cast<double>(static_cast<float>(static_cast<double>(n) / k));
  MarkovCompressor<Exec, float, RandK> markov(n, k, rng, 2u);
  ErrorFeedback<Exec, float, RandK> ef(n, k, rng, 2u);
  std::vector<double> w_hat(n, 0), e(n, 0);
  for (std::uint64_t it = 0; it < 4; ++it) {
    const auto g = make_values<float>(0, n, 100 + static_cast<unsigned>(it));
    const auto gd = to_device<Exec>(g, "g");
    const auto sel = reference_rand_k(rng, it, 2u, n, k);
    markov.compress(Exec(), gd, it);
    ef.compress(Exec(), gd, it);
    // Markov: w_hat <- w_hat + (n/k)(g - w_hat) on the draw; error feedback: p = g + e, e <- p - (n/k) p there.
    for (std::size_t i = 0; i < n; ++i) e[i] += g[i];
    for (auto i : sel) {
      w_hat[i] += scale * (g[i] - w_hat[i]);
      e[i] -= scale * e[i];
    }
    const auto got_w = to_host(markov.estimate(Exec()));
    const auto got_e = to_host(ef.error(Exec()));
    for (std::size_t i = 0; i < n; ++i) {
      EXPECT_NEAR(got_w[i], w_hat[i], 1e-5 * (1 + std::fabs(w_hat[i]))) << "Markov, round " << it << ", coordinate " << i;
      EXPECT_NEAR(got_e[i], e[i], 1e-5 * (1 + std::fabs(e[i]))) << "error feedback, round " << it << ", coordinate " << i;
    }
  }
}

}  // namespace
