// The counter-based generator: Philox-4x32-10 known answers, distributions, and independence from the
// backend and thread count.
#include "terse_TestBackends.hpp"

#include <terse_Random.hpp>

#include <cmath>

namespace {

using namespace terse;
using namespace terse::test;

TEST(Philox4x32, KnownAnswerVectors) {
  // Known-answer vectors of the Random123 distribution (kat_vectors, philox4x32 with 10 rounds).
  struct Kat {
    std::uint32_t ctr[4], key[2], out[4];
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const auto& k : kats) {
    const auto r = philox4x32(k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3], k.key[0], k.key[1]);
    for (int j = 0; j < 4; ++j) EXPECT_EQ(r.v[j], k.out[j]) << "word " << j;
  }
}

template <class ExecSpace>
class CounterRngTest : public ::testing::Test {};
TYPED_TEST_SUITE(CounterRngTest, ExecSpaces);

template <class ExecSpace>
std::vector<double> normals(std::size_t n, std::uint64_t seed, std::uint64_t iteration, std::uint32_t worker) {
  Kokkos::View<double*, typename ExecSpace::memory_space> v("normals", n);
  const CounterRng rng{seed, static_cast<std::uint32_t>(RandomStream::gradient_noise)};
  Kokkos::parallel_for(
      "test::normals", Kokkos::RangePolicy<ExecSpace>(0, n),
      KOKKOS_LAMBDA(std::size_t i) { v(i) = rng.normal(iteration, worker, i); });
  return to_host(v);
}

TYPED_TEST(CounterRngTest, NormalHasMeanZeroAndUnitVariance) {
  const std::size_t n = 1 << 20;
  const auto z = normals<TypeParam>(n, 2024, 3, 1);
  double mean = 0, m2 = 0, m4 = 0;
  for (double v : z) mean += v;
  mean /= n;
  for (double v : z) {
    m2 += (v - mean) * (v - mean);
    m4 += std::pow(v - mean, 4);
  }
  m2 /= n;
  m4 /= n;
  // Standard errors: mean 1/sqrt(n), variance sqrt(2/n), fourth moment sqrt(96/n); allow 5 of them.
  EXPECT_NEAR(mean, 0.0, 5.0 / std::sqrt(double(n)));
  EXPECT_NEAR(m2, 1.0, 5.0 * std::sqrt(2.0 / n));
  EXPECT_NEAR(m4, 3.0, 5.0 * std::sqrt(96.0 / n));
}

TYPED_TEST(CounterRngTest, SameNumbersOnEveryBackendAndDifferentKeysDiffer) {
  const std::size_t n = 10007;
  const auto here = normals<TypeParam>(n, 7, 5, 2);
  // Against Serial (one thread; the typed parameter may be OpenMP with several): the same bits on host
  // backends. On a GPU, log/cos may differ in the last ulps: compare with a tolerance there.
  {
  const auto serial = normals<ReferenceHost>(n, 7, 5, 2);
  for (std::size_t i = 0; i < n; ++i) {
    if (Kokkos::SpaceAccessibility<TypeParam, Kokkos::HostSpace>::accessible) {
      ASSERT_EQ(here[i], serial[i]) << i;
    } else {
      ASSERT_NEAR(here[i], serial[i], 1e-12 * (1 + std::fabs(serial[i]))) << i;
    }
  }
  }
  const auto other_worker = normals<TypeParam>(n, 7, 5, 3);
  const auto other_iter = normals<TypeParam>(n, 7, 6, 2);
  const auto other_seed = normals<TypeParam>(n, 8, 5, 2);
  int same_w = 0, same_k = 0, same_s = 0;
  for (std::size_t i = 0; i < n; ++i) {
    same_w += here[i] == other_worker[i];
    same_k += here[i] == other_iter[i];
    same_s += here[i] == other_seed[i];
  }
  EXPECT_EQ(same_w, 0);
  EXPECT_EQ(same_k, 0);
  EXPECT_EQ(same_s, 0);
}

TEST(CounterRng, UniformStaysInsideTheOpenInterval) {
  const CounterRng rng{1, 0};
  double lo = 1, hi = 0, sum = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform(0, 0, i);
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    sum += u;
  }
  EXPECT_GT(lo, 0.0);
  EXPECT_LT(hi, 1.0);
  EXPECT_NEAR(sum / n, 0.5, 5.0 * std::sqrt(1.0 / 12.0 / n));
  EXPECT_EQ(CounterRng::to_uniform(0, 0), 0.5 / 4503599627370496.0);
  EXPECT_LT(CounterRng::to_uniform(~0u, ~0u), 1.0);
  EXPECT_EQ(CounterRng::to_uniform(~0u, ~0u), 1.0 - 0.5 / 4503599627370496.0);
  EXPECT_GT(CounterRng::lane_to_uniform(0), 0.0);
  EXPECT_LT(CounterRng::lane_to_uniform(~0u), 1.0);
  // uniform_lane: coordinate i is lane i % 4 of draw i / 4.
  for (std::uint64_t i = 0; i < 12; ++i)
    EXPECT_EQ(rng.uniform_lane(3, 1, i), CounterRng::lane_to_uniform(rng.draw(3, 1, i / 4).v[i % 4])) << i;
  // below(n) stays below n and reaches both ends.
  std::uint32_t lo_b = 7, hi_b = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::uint32_t b = rng.below(7, 0, 0, i);
    lo_b = std::min(lo_b, b);
    hi_b = std::max(hi_b, b);
  }
  EXPECT_EQ(lo_b, 0u);
  EXPECT_EQ(hi_b, 6u);
}

}  // namespace
