// Sign packing, unpacking and fused apply against the scalar reference, on every backend.
#include "terse_TestBackends.hpp"
#include "terse_TestReference.hpp"

#include <terse_Sign.hpp>

#include <cmath>
#include <limits>

namespace {

using namespace terse;
using namespace terse::test;

const std::size_t sizes[] = {0, 1, 2, 63, 64, 65, 127, 128, 129, 1000, 4097, 100003};

template <class ExecSpace>
class SignPack : public ::testing::Test {};
TYPED_TEST_SUITE(SignPack, ExecSpaces);

template <class ExecSpace, class T>
void check_pack(std::size_t n, unsigned seed) {
  const auto x = mixed_values<T>(n, seed);
  const auto xd = to_device<ExecSpace>(x, "x");
  // Fill with garbage first so that a word the kernel does not write shows up.
  Kokkos::View<sign_word_t*, typename ExecSpace::memory_space> words("words", packed_words(n));
  Kokkos::deep_copy(words, ~sign_word_t(0));
  sign_pack(ExecSpace(), xd, words);
  const auto got = to_host(words);
  const auto want = reference_pack(x);
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t w = 0; w < want.size(); ++w) ASSERT_EQ(got[w], want[w]) << "word " << w << " of n = " << n;
}

TYPED_TEST(SignPack, Float32MatchesScalarReference) {
  for (auto n : sizes) check_pack<TypeParam, float>(n, 7 + static_cast<unsigned>(n));
}

TYPED_TEST(SignPack, Float64MatchesScalarReference) {
  for (auto n : sizes) check_pack<TypeParam, double>(n, 11 + static_cast<unsigned>(n));
}

TYPED_TEST(SignPack, ConventionZeroNegativeZeroAndNaNArePlusOne) {
  const std::vector<double> x = {1.0, -1.0, 0.0, -0.0, -2.5, 3.0, std::numeric_limits<double>::quiet_NaN(),
                                 -std::numeric_limits<double>::denorm_min(), -std::numeric_limits<double>::infinity()};
  Kokkos::View<sign_word_t*, typename TypeParam::memory_space> words("words", 1);
  sign_pack(TypeParam(), to_device<TypeParam>(x), words);
  // bits (LSB first): +1 -1 +1 +1 -1 +1 +1 -1 -1, padding 0 -> 0b0'0110'1101
  EXPECT_EQ(to_host(words)[0], sign_word_t(0b001101101));
}

TYPED_TEST(SignPack, NegativeNaNIsPlusOneInBothPrecisions) {
  // -NaN has its sign bit set but is not < 0: it encodes +1, like every NaN.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> xd = {-nan, nan, -1.0, std::copysign(nan, -1.0)};
  const std::vector<float> xf = {-std::numeric_limits<float>::quiet_NaN(), -1.0f,
                                 std::copysign(std::numeric_limits<float>::quiet_NaN(), -1.0f)};
  ASSERT_TRUE(std::signbit(xd[3]) && std::signbit(xf[2]));
  Kokkos::View<sign_word_t*, typename TypeParam::memory_space> words("words", 1);
  sign_pack(TypeParam(), to_device<TypeParam>(xd), words);
  EXPECT_EQ(to_host(words)[0], sign_word_t(0b1011));
  sign_pack(TypeParam(), to_device<TypeParam>(xf), words);
  EXPECT_EQ(to_host(words)[0], sign_word_t(0b101));
}

TYPED_TEST(SignPack, TooFewWordsIsRefused) {
  const std::vector<float> x(65, 1.0f);
  Kokkos::View<sign_word_t*, typename TypeParam::memory_space> words("words", 1);
  EXPECT_THROW(sign_pack(TypeParam(), to_device<TypeParam>(x), words), std::invalid_argument);
}

TYPED_TEST(SignPack, UnusedBitsOfTheLastWordAreZero) {
  const std::vector<float> x(70, 1.0f);
  Kokkos::View<sign_word_t*, typename TypeParam::memory_space> words("words", 2);
  sign_pack(TypeParam(), to_device<TypeParam>(x), words);
  const auto got = to_host(words);
  EXPECT_EQ(got[0], ~sign_word_t(0));
  EXPECT_EQ(got[1], sign_word_t(0x3f));
}

template <class ExecSpace, class T>
void check_unpack_and_apply(std::size_t n, unsigned seed, T scale) {
  const auto signs_src = mixed_values<T>(n, seed);
  const auto words_ref = reference_pack(signs_src);
  const auto words = to_device<ExecSpace>(words_ref, "words");

  Kokkos::View<T*, typename ExecSpace::memory_space> y("y", n);
  Kokkos::deep_copy(y, T(12345));
  sign_unpack(ExecSpace(), words, y, scale);
  const auto got = to_host(y);
  for (std::size_t i = 0; i < n; ++i)
    ASSERT_EQ(got[i], reference_bit(words_ref, i) ? scale : -scale) << "coordinate " << i << " of " << n;

  const auto x0 = mixed_values<T>(n, seed + 1);
  auto x = to_device<ExecSpace>(x0, "x");
  sign_apply(ExecSpace(), words, x, scale);
  const auto applied = to_host(x);
  for (std::size_t i = 0; i < n; ++i) {
    const T want = x0[i] - (reference_bit(words_ref, i) ? scale : -scale);
    ASSERT_EQ(applied[i], want) << "coordinate " << i << " of " << n;
  }
}

TYPED_TEST(SignPack, UnpackAndApplyFloat32) {
  for (auto n : sizes) {
    check_unpack_and_apply<TypeParam, float>(n, 3 + static_cast<unsigned>(n), 1.0f);
    check_unpack_and_apply<TypeParam, float>(n, 5 + static_cast<unsigned>(n), 0.375f);
  }
}

TYPED_TEST(SignPack, UnpackAndApplyFloat64) {
  for (auto n : sizes) {
    check_unpack_and_apply<TypeParam, double>(n, 13 + static_cast<unsigned>(n), 1.0);
    check_unpack_and_apply<TypeParam, double>(n, 17 + static_cast<unsigned>(n), 2.5e-3);
  }
}

// Above Impl::streaming_min_coords, fp32 unpacks on host backends write with streaming stores (where the CPU has
// them): a vector past the threshold with a partial last word, and an unaligned subview of it (the ordinary
// path), against the scalar reference; every coordinate is overwritten.
TYPED_TEST(SignPack, LargeFloat32UnpackMatchesTheReference) {
  const std::size_t n = terse::Impl::streaming_min_coords + 4097;
  const auto src = mixed_values<float>(n, 31);
  const auto words_ref = reference_pack(src);
  const auto words = to_device<TypeParam>(words_ref, "words");
  Kokkos::View<float*, typename TypeParam::memory_space> y("y", n + 1);
  for (std::size_t offset : {std::size_t(0), std::size_t(1)}) {
    Kokkos::deep_copy(y, 12345.0f);
    auto yo = Kokkos::subview(y, std::make_pair(offset, offset + n));
    sign_unpack(TypeParam(), words, yo, 0.25f);
    const auto got = to_host(y);
    for (std::size_t i = 0; i < n; ++i)
      ASSERT_EQ(got[offset + i], reference_bit(words_ref, i) ? 0.25f : -0.25f) << "coordinate " << i << ", offset " << offset;
    EXPECT_EQ(got[offset == 0 ? n : 0], 12345.0f) << "a coordinate outside the view was written, offset " << offset;
  }
}

TYPED_TEST(SignPack, PackThenUnpackRoundTrips) {
  const std::size_t n = 4099;
  const auto x = mixed_values<double>(n, 99);
  Kokkos::View<sign_word_t*, typename TypeParam::memory_space> words("words", packed_words(n));
  Kokkos::View<double*, typename TypeParam::memory_space> y("y", n);
  sign_pack(TypeParam(), to_device<TypeParam>(x), words);
  sign_unpack(TypeParam(), words, y, 1.0);
  const auto got = to_host(y);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], (x[i] < 0) ? -1.0 : 1.0) << i;
}

TEST(Backends, OpenMPRunsWithSeveralThreads) {
#if defined(KOKKOS_ENABLE_OPENMP)
  // CTest runs the unit tests with OMP_NUM_THREADS=2: the OpenMP cases above must use real threads.
  EXPECT_GE(Kokkos::OpenMP().concurrency(), 2) << "set OMP_NUM_THREADS >= 2";
#else
  GTEST_SKIP() << "Kokkos was built without OpenMP";
#endif
}

}  // namespace

namespace {

using namespace terse;
using namespace terse::test;

// The one-thread-per-coordinate functors that device backends use, run here on the host backends so that
// CPU-only CI checks them against the same scalar reference.
TYPED_TEST(SignPack, DevicePathFunctorsMatchTheReference) {
  const std::size_t n = 1000;
  const auto src = mixed_values<float>(n, 55);
  const auto ref = reference_pack(src);
  const auto words = to_device<TypeParam>(ref, "words");
  using Words = decltype(words);
  using Vec = Kokkos::View<float*, typename TypeParam::memory_space>;
  Vec y("y", n);
  Kokkos::parallel_for(Kokkos::RangePolicy<TypeParam>(0, n), terse::Impl::SignUnpackCoords<Words, Vec>{words, y, 0.5f});
  const auto x0 = mixed_values<float>(n, 56);
  auto x = to_device<TypeParam>(x0, "x");
  Kokkos::parallel_for(Kokkos::RangePolicy<TypeParam>(0, n), terse::Impl::SignApplyCoords<Words, Vec>{words, x, 0.25f});
  const auto got_y = to_host(y);
  const auto got_x = to_host(x);
  for (std::size_t i = 0; i < n; ++i) {
    const float s = reference_bit(ref, i) ? 1.0f : -1.0f;
    ASSERT_EQ(got_y[i], 0.5f * s) << i;
    ASSERT_EQ(got_x[i], x0[i] - 0.25f * s) << i;
  }
}

}  // namespace
