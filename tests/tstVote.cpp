// Majority vote on packed words against a scalar count per coordinate, and the mean of scaled signs (sign_mean)
// against an ordered scalar sum, on every backend.
#include "terse_TestBackends.hpp"
#include "terse_TestReference.hpp"

#include <terse_Vote.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <type_traits>

namespace {

using namespace terse;
using namespace terse::test;

template <class ExecSpace>
class MajorityVote : public ::testing::Test {};
TYPED_TEST_SUITE(MajorityVote, ExecSpaces);

struct Votes {
  std::vector<std::vector<std::uint64_t>> signs;  // [voter][word]
  std::vector<std::uint64_t> vote, tie;           // scalar reference
};

Votes make_votes(int voters, std::size_t n, unsigned seed, double p_plus) {
  std::mt19937_64 gen(seed);
  std::bernoulli_distribution plus(p_plus);
  Votes v;
  const std::size_t nw = (n + 63) / 64;
  v.signs.assign(voters, std::vector<std::uint64_t>(nw, 0));
  v.vote.assign(nw, 0);
  v.tie.assign(nw, 0);
  for (std::size_t i = 0; i < n; ++i) {
    int count = 0;
    for (int w = 0; w < voters; ++w) {
      if (plus(gen)) {
        v.signs[w][i / 64] |= std::uint64_t(1) << (i % 64);
        ++count;
      }
    }
    if (2 * count > voters) v.vote[i / 64] |= std::uint64_t(1) << (i % 64);
    if (2 * count == voters) v.tie[i / 64] |= std::uint64_t(1) << (i % 64);
  }
  return v;
}

template <class ExecSpace>
void check_vote(int voters, std::size_t n, unsigned seed, double p_plus) {
  const Votes ref = make_votes(voters, n, seed, p_plus);
  const std::size_t nw = packed_words(n);
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, typename ExecSpace::memory_space> signs("signs", voters, nw);
  auto h = Kokkos::create_mirror_view(signs);
  for (int w = 0; w < voters; ++w)
    for (std::size_t j = 0; j < nw; ++j) h(w, j) = ref.signs[w][j];
  Kokkos::deep_copy(signs, h);
  Kokkos::View<sign_word_t*, typename ExecSpace::memory_space> vote("vote", nw), tie("tie", nw);
  Kokkos::deep_copy(vote, ~sign_word_t(0));
  Kokkos::deep_copy(tie, ~sign_word_t(0));
  majority_vote(ExecSpace(), signs, vote, tie);
  const auto got_vote = to_host(vote);
  const auto got_tie = to_host(tie);
  for (std::size_t j = 0; j < nw; ++j) {
    ASSERT_EQ(got_vote[j], ref.vote[j]) << "W = " << voters << ", word " << j;
    ASSERT_EQ(got_tie[j], ref.tie[j]) << "W = " << voters << ", word " << j;
  }
}

TYPED_TEST(MajorityVote, MatchesScalarCountsForOddAndEvenVoters) {
  for (int voters : {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100})
    check_vote<TypeParam>(voters, 1000 + 37 * voters, 1234 + voters, 0.5);
}

TYPED_TEST(MajorityVote, SkewedInputsGiveUnanimousVotes) {
  check_vote<TypeParam>(9, 5000, 5, 0.95);
  check_vote<TypeParam>(10, 5000, 6, 0.05);
}

TYPED_TEST(MajorityVote, EvenVotersTieOnlyOnExactHalf) {
  // Two voters that disagree everywhere tie everywhere; padding bits never tie.
  const std::size_t n = 100;
  Kokkos::View<sign_word_t**, Kokkos::LayoutRight, typename TypeParam::memory_space> signs("signs", 2, 2);
  auto h = Kokkos::create_mirror_view(signs);
  h(0, 0) = ~sign_word_t(0);
  h(0, 1) = (sign_word_t(1) << (n - 64)) - 1;
  h(1, 0) = 0;
  h(1, 1) = 0;
  Kokkos::deep_copy(signs, h);
  Kokkos::View<sign_word_t*, typename TypeParam::memory_space> vote("vote", 2), tie("tie", 2);
  majority_vote(TypeParam(), signs, vote, tie);
  EXPECT_EQ(to_host(vote), (std::vector<sign_word_t>{0, 0}));
  EXPECT_EQ(to_host(tie), (std::vector<sign_word_t>{~sign_word_t(0), (sign_word_t(1) << (n - 64)) - 1}));
}

TYPED_TEST(MajorityVote, ApplyVotedStepsByPlusMinusOrZero) {
  const int voters = 4;
  const std::size_t n = 777;
  const Votes ref = make_votes(voters, n, 77, 0.5);
  const auto vote = to_device<TypeParam>(ref.vote, "vote");
  const auto tie = to_device<TypeParam>(ref.tie, "tie");
  const auto x0 = mixed_values<float>(n, 8);
  auto x = to_device<TypeParam>(x0, "x");
  sign_apply_voted(TypeParam(), vote, tie, x, 0.125f);
  const auto got = to_host(x);
  for (std::size_t i = 0; i < n; ++i) {
    const float s = reference_bit(ref.tie, i) ? 0.0f : (reference_bit(ref.vote, i) ? 1.0f : -1.0f);
    ASSERT_EQ(got[i], x0[i] - 0.125f * s) << i;
  }
}

// sign_mean: out(i) [+]= inv_count * sum_v scales(v) * (+-1)_{v,i}, against a scalar loop that sums in T in the
// order v = 0..W-1 and multiplies by T(inv_count) at the end. Compared bit for bit (so -0.0 and +0.0 differ).

template <class ExecSpace>
class SignMean : public ::testing::Test {};
TYPED_TEST_SUITE(SignMean, ExecSpaces);

/// The bit pattern of a float or double.
template <class T>
auto bit_pattern(T x) {
  std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t> u;
  static_assert(sizeof(u) == sizeof(T), "");
  std::memcpy(&u, &x, sizeof(T));
  return u;
}

/// [voter][word]: random words, the padding bits of the last word included (sign_mean reads bits < n only).
std::vector<std::vector<std::uint64_t>> random_signs(int voters, std::size_t n, unsigned seed) {
  std::mt19937_64 gen(seed);
  std::vector<std::vector<std::uint64_t>> s(voters, std::vector<std::uint64_t>(packed_words(n)));
  for (auto& row : s)
    for (auto& word : row) word = gen();
  return s;
}

/// Positive scales spread over many binades, so the order of the additions changes the rounding.
template <class T>
std::vector<T> random_scales(int voters, unsigned seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, 3.0);
  std::vector<T> s(voters);
  for (auto& v : s) v = static_cast<T>(std::exp(normal(gen)));
  return s;
}

template <class T>
std::vector<T> reference_sign_mean(const std::vector<std::vector<std::uint64_t>>& signs, const std::vector<T>& scales,
                                   std::size_t n, double inv_count, const std::vector<T>* accumulate_into) {
  const T inv = static_cast<T>(inv_count);
  std::vector<T> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    T sum = 0;
    for (std::size_t v = 0; v < signs.size(); ++v) sum += reference_bit(signs[v], i) ? scales[v] : -scales[v];
    out[i] = accumulate_into ? (*accumulate_into)[i] + inv * sum : inv * sum;
  }
  return out;
}

template <class ExecSpace, class Layout>
Kokkos::View<sign_word_t**, Layout, typename ExecSpace::memory_space> signs_to_device(
    const std::vector<std::vector<std::uint64_t>>& s, std::size_t words) {
  Kokkos::View<sign_word_t**, Layout, typename ExecSpace::memory_space> d("signs", s.size(), words);
  auto h = Kokkos::create_mirror_view(d);
  for (std::size_t v = 0; v < s.size(); ++v)
    for (std::size_t j = 0; j < words; ++j) h(v, j) = s[v][j];
  Kokkos::deep_copy(d, h);
  return d;
}

/// Runs sign_mean on the backend (out prefilled with NaN, or with x0 when accumulating) and returns out.
template <class ExecSpace, class T, class Layout = Kokkos::LayoutRight>
std::vector<T> run_sign_mean(const std::vector<std::vector<std::uint64_t>>& signs, const std::vector<T>& scales,
                             std::size_t n, double inv_count, const std::vector<T>* accumulate_into) {
  const auto d_signs = signs_to_device<ExecSpace, Layout>(signs, packed_words(n));
  const auto d_scales = to_device<ExecSpace>(scales, "scales");
  auto out = accumulate_into ? to_device<ExecSpace>(*accumulate_into, "out")
                             : to_device<ExecSpace>(std::vector<T>(n, std::numeric_limits<T>::quiet_NaN()), "out");
  sign_mean(ExecSpace(), d_signs, d_scales, out, inv_count, accumulate_into != nullptr);
  return to_host(out);
}

template <class ExecSpace, class T, class Layout = Kokkos::LayoutRight>
void check_sign_mean(int voters, std::size_t n, unsigned seed, double inv_count) {
  const auto signs = random_signs(voters, n, seed);
  const auto scales = random_scales<T>(voters, seed + 1);
  const auto x0 = mixed_values<T>(n, seed + 2);
  for (const std::vector<T>* acc : {static_cast<const std::vector<T>*>(nullptr), &x0}) {
    const auto ref = reference_sign_mean(signs, scales, n, inv_count, acc);
    const auto got = run_sign_mean<ExecSpace, T, Layout>(signs, scales, n, inv_count, acc);
    ASSERT_EQ(got.size(), n);
    for (std::size_t i = 0; i < n; ++i)
      ASSERT_EQ(bit_pattern(got[i]), bit_pattern(ref[i]))
          << "W = " << voters << ", n = " << n << ", accumulate = " << (acc != nullptr) << ", i = " << i
          << ": got " << got[i] << ", expected " << ref[i];
  }
}

TYPED_TEST(SignMean, MatchesOrderedScalarSumBitwise) {
  for (int voters : {1, 2, 3, 7}) {
    for (std::size_t n : {0ul, 1ul, 63ul, 64ul, 65ul, 1000ul, 4099ul}) {
      const unsigned seed = 500 + 10 * static_cast<unsigned>(voters) + static_cast<unsigned>(n);
      check_sign_mean<TypeParam, float>(voters, n, seed, 1.0 / voters);
      check_sign_mean<TypeParam, double>(voters, n, seed, 1.0 / voters);
    }
  }
}

TYPED_TEST(SignMean, InvCountIsRoundedToTheOutputTypeAndAppliedOnce) {
  // A factor that is not 1/W and not exact in float (0.1), and a LayoutLeft signs view.
  for (int voters : {3, 7}) {
    check_sign_mean<TypeParam, float>(voters, 1000, 900 + voters, 0.1);
    check_sign_mean<TypeParam, float, Kokkos::LayoutLeft>(voters, 4099, 950 + voters, 1.0 / voters);
  }
}

TYPED_TEST(SignMean, VoterOrderDoesNotMatterForExactlyRepresentableScales) {
  // Scales 2^k, k in [-4, 4], and W = 7: every partial sum is a multiple of 2^-4 below 2^7, exact in float, so any
  // order of the voters gives the same bits; inv_count = 1/7 (inexact) is applied once to the same exact sum.
  const int voters = 7;
  const std::size_t n = 4099;
  std::mt19937_64 gen(17);
  std::uniform_int_distribution<int> exponent(-4, 4);
  auto signs = random_signs(voters, n, 18);
  std::vector<float> scales(voters);
  for (auto& s : scales) s = std::ldexp(1.0f, exponent(gen));
  const auto x0 = mixed_values<float>(n, 19);
  std::vector<int> order(voters);
  for (int v = 0; v < voters; ++v) order[v] = v;
  for (const std::vector<float>* acc : {static_cast<const std::vector<float>*>(nullptr), &x0}) {
    const auto first = run_sign_mean<TypeParam, float>(signs, scales, n, 1.0 / voters, acc);
    EXPECT_EQ(first, reference_sign_mean(signs, scales, n, 1.0 / voters, acc));
    for (int trial = 0; trial < 5; ++trial) {
      std::shuffle(order.begin(), order.end(), gen);
      std::vector<std::vector<std::uint64_t>> p_signs(voters);
      std::vector<float> p_scales(voters);
      for (int v = 0; v < voters; ++v) p_signs[v] = signs[order[v]], p_scales[v] = scales[order[v]];
      const auto got = run_sign_mean<TypeParam, float>(p_signs, p_scales, n, 1.0 / voters, acc);
      for (std::size_t i = 0; i < n; ++i)
        ASSERT_EQ(bit_pattern(got[i]), bit_pattern(first[i])) << "trial " << trial << ", i = " << i;
    }
  }
}

// Device backends take the per-coordinate functor (one thread per coordinate); host backends the word functor
// the tests above exercise. The per-coordinate one, launched here on the host backends, matches the ordered
// scalar sum and so the word functor, bit for bit. (On device backends sign_mean is the per-coordinate functor
// already, which the tests above check.)
TYPED_TEST(SignMean, DevicePathFunctorMatchesTheWordFunctorBitwise) {
  if constexpr (!terse::Impl::host_loops_v<TypeParam>) {
    GTEST_SKIP() << "sign_mean runs the per-coordinate functor here";
  } else {
    using Mem = typename TypeParam::memory_space;
    for (int voters : {2, 7}) {
      const std::size_t n = 4099;
      const auto signs = random_signs(voters, n, 700 + voters);
      const auto scales = random_scales<float>(voters, 710 + voters);
      const auto x0 = mixed_values<float>(n, 720 + voters);
      const auto d_signs = signs_to_device<TypeParam, Kokkos::LayoutRight>(signs, packed_words(n));
      const auto d_scales = to_device<TypeParam>(scales, "scales");
      for (bool accumulate : {false, true}) {
        auto words_out = to_device<TypeParam>(x0, "words_out");
        auto coords_out = to_device<TypeParam>(x0, "coords_out");
        sign_mean(TypeParam(), d_signs, d_scales, words_out, 1.0 / voters, accumulate);
        using Out = Kokkos::View<float*, Mem>;
        Kokkos::parallel_for(Kokkos::RangePolicy<TypeParam>(0, n),
                             terse::Impl::SignMean<decltype(d_signs), decltype(d_scales), Out>{
                                 d_signs, d_scales, coords_out, static_cast<float>(1.0 / voters), accumulate});
        const auto a = to_host(words_out);
        const auto b = to_host(coords_out);
        const auto ref = reference_sign_mean(signs, scales, n, 1.0 / voters, accumulate ? &x0 : nullptr);
        for (std::size_t i = 0; i < n; ++i) {
          ASSERT_EQ(bit_pattern(b[i]), bit_pattern(ref[i])) << "W = " << voters << ", accumulate = " << accumulate << ", i = " << i;
          ASSERT_EQ(bit_pattern(a[i]), bit_pattern(b[i])) << "W = " << voters << ", accumulate = " << accumulate << ", i = " << i;
        }
      }
    }
  }
}

}  // namespace
