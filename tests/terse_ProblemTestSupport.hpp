#pragma once
// terse_ProblemTestSupport.hpp: what the problems' tests share (tstProblem.cpp, tstCnn.cpp): calls of a Problem
// on host vectors, central finite differences, comparisons, synthetic dense data.
#include "terse_TestBackends.hpp"

#include <terse_Problem.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace terse {
namespace test {

template <class E>
using Vec = Kokkos::View<float*, typename E::memory_space>;
template <class E>
using Mat = Kokkos::View<float**, Kokkos::LayoutRight, typename E::memory_space>;
template <class E>
using ProblemPtr = std::unique_ptr<Problem<E>>;


// ------------------------------------------------------------------------------------------------ helpers

inline std::vector<float> random_floats(std::size_t n, double lo, double hi, unsigned seed) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(u(gen));
  return v;
}

inline std::vector<double> widen(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

template <class E>
std::vector<float> gradient_of(Problem<E>& p, const std::vector<float>& x) {
  const auto xv = to_device<E>(x, "x");
  Vec<E> g("g", p.dim());
  p.gradient(xv, g);
  return to_host(g);
}

template <class E>
std::vector<float> local_grad_of(Problem<E>& p, const std::vector<float>& x) {
  const auto xv = to_device<E>(x, "x");
  Vec<E> g("g", p.dim());
  p.local_grad_sum(xv, g);
  return to_host(g);
}

template <class E>
std::vector<float> sg_of(Problem<E>& p, const std::vector<float>& x, int w, std::uint64_t k, Batch batch,
                         std::uint64_t seed) {
  const auto xv = to_device<E>(x, "x");
  Vec<E> g("g", p.dim());
  p.stochastic_gradient(xv, w, k, batch, seed, g);
  return to_host(g);
}

/// Per-sample gradients as rows of doubles.
template <class E>
std::vector<std::vector<double>> samples_of(Problem<E>& p, const std::vector<float>& x, int w, std::uint64_t k,
                                            Batch batch, std::uint64_t seed) {
  const auto xv = to_device<E>(x, "x");
  Mat<E> G("G", p.batch_rows(w, batch), p.dim());
  p.per_sample_gradients(xv, w, k, batch, seed, G);
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), G);
  std::vector<std::vector<double>> rows(G.extent(0), std::vector<double>(G.extent(1)));
  for (std::size_t b = 0; b < G.extent(0); ++b)
    for (std::size_t j = 0; j < G.extent(1); ++j) rows[b][j] = h(b, j);
  return rows;
}

template <class E>
double loss_of(Problem<E>& p, const std::vector<float>& x) {
  return p.loss(to_device<E>(x, "x"));
}

/// Central finite differences of f at x (in double), step h.
inline std::vector<double> fd_gradient(const std::function<double(const std::vector<double>&)>& f, std::vector<double> x,
                                double h, const std::vector<std::size_t>& coords = {}) {
  std::vector<std::size_t> which = coords;
  if (which.empty()) {
    which.resize(x.size());
    std::iota(which.begin(), which.end(), 0);
  }
  std::vector<double> g(x.size(), 0.0);
  for (std::size_t j : which) {
    const double xj = x[j];
    x[j] = xj + h;
    const double fp = f(x);
    x[j] = xj - h;
    const double fm = f(x);
    x[j] = xj;
    g[j] = (fp - fm) / (2 * h);
  }
  return g;
}

/// Mean of rows (double) and the standard error of each column's mean.
inline void column_stats(const std::vector<std::vector<double>>& rows, std::vector<double>& mean, std::vector<double>& se) {
  const std::size_t n = rows.size(), d = rows[0].size();
  mean.assign(d, 0.0);
  se.assign(d, 0.0);
  for (const auto& r : rows)
    for (std::size_t j = 0; j < d; ++j) mean[j] += r[j];
  for (auto& m : mean) m /= n;
  for (const auto& r : rows)
    for (std::size_t j = 0; j < d; ++j) se[j] += (r[j] - mean[j]) * (r[j] - mean[j]);
  for (auto& s : se) s = std::sqrt(s / (n - 1) / n);
}

inline std::vector<double> row_mean(const std::vector<std::vector<double>>& rows) {
  std::vector<double> m(rows[0].size(), 0.0);
  for (const auto& r : rows)
    for (std::size_t j = 0; j < m.size(); ++j) m[j] += r[j];
  for (auto& v : m) v /= rows.size();
  return m;
}

/// A stochastic gradient equals the mean of its per-sample gradients up to float rounding: each G entry and
/// each g entry is a double rounded once to float (relative 2^-24), so |g_j - mean_b G_bj| <= 2^-23 max_b |G_bj|
/// plus the double sums' error; 4e-7 max(1e-30, max_b |G_bj|) has margin over that bound. The mlp's library path
/// multiplies in float (its batch products sum up to B = 300 terms: B 2^-24 < 2e-5): tol 2e-5 there.
inline void expect_mean_of_samples(const std::vector<float>& g, const std::vector<std::vector<double>>& G, double tol = 4e-7) {
  const auto m = row_mean(G);
  for (std::size_t j = 0; j < g.size(); ++j) {
    double scale = 1e-30;
    for (const auto& r : G) scale = std::max(scale, std::fabs(r[j]));
    EXPECT_NEAR(g[j], m[j], tol * scale) << "coordinate " << j;
  }
}

/// |got - want| <= tol (1 + |want|) for every coordinate.
template <class A, class B>
void expect_close(const A& got, const B& want, double tol, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t j = 0; j < got.size(); ++j)
    EXPECT_NEAR(got[j], want[j], tol * (1 + std::fabs(want[j]))) << what << ", coordinate " << j;
}

template <class T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}


inline DenseDataset synthetic_dense(std::uint64_t n, std::uint64_t P, int K, unsigned seed) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::uniform_int_distribution<int> label(0, K - 1);
  DenseDataset d;
  d.dim = P;
  d.num_classes = K;
  d.source = "synthetic dense";
  for (std::uint64_t i = 0; i < n * P; ++i) d.features.push_back(static_cast<float>(u(gen)));
  for (std::uint64_t r = 0; r < n; ++r) d.labels.push_back(label(gen));
  return d;
}

}  // namespace test
}  // namespace terse
