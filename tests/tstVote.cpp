// Majority vote on packed words against a scalar count per coordinate, on every backend.
#include "terse_TestBackends.hpp"
#include "terse_TestReference.hpp"

#include <terse_Vote.hpp>

#include <random>

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

}  // namespace
