#pragma once
// terse_TestReference.hpp: plain scalar reference implementations the kernels are tested against.
// They are written from the documented conventions, not from the kernels' code.

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace terse::test {

/// Bit i of the result is 1 when x[i] encodes +1 (x >= 0, -0.0 or NaN).
template <class T>
std::vector<std::uint64_t> reference_pack(const std::vector<T>& x) {
  std::vector<std::uint64_t> words((x.size() + 63) / 64, 0);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const bool plus = x[i] >= T(0) || std::isnan(x[i]);
    if (plus) words[i / 64] |= std::uint64_t(1) << (i % 64);
  }
  return words;
}

inline bool reference_bit(const std::vector<std::uint64_t>& words, std::size_t i) {
  return (words[i / 64] >> (i % 64)) & 1u;
}

/// Test vectors: Gaussian values with exact zeros, negative zeros, subnormals and large magnitudes mixed in.
template <class T>
std::vector<T> mixed_values(std::size_t n, unsigned seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_int_distribution<int> pick(0, 15);
  std::vector<T> x(n);
  for (auto& v : x) {
    switch (pick(gen)) {
      case 0: v = T(0); break;
      case 1: v = -T(0); break;
      case 2: v = std::numeric_limits<T>::denorm_min() * (normal(gen) < 0 ? -1 : 1); break;
      case 3: v = static_cast<T>(normal(gen) * 1e30); break;
      default: v = static_cast<T>(normal(gen));
    }
  }
  return x;
}

}  // namespace terse::test
