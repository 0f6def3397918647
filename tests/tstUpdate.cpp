// Optimizer update rules (terse_Update.hpp) against plain scalar loops written from the seed papers'
// formulas, several steps in a row with the state carried over, plus properties of the algorithms:
//   SGD                 seed 002 Alg. 2 (y <- x - eta G)
//   AMSGrad             seed 004 Alg. 1, lines 13-16 (zero initial state, no bias correction)
//   AdaGrad             seed 002 Alg. 1
//   1-bit Adam          Tang et al. 2021 (seed 004 Sec. 7.2's baseline): Adam warm-up, the workers' momentum,
//                       the step with the variance frozen
//   Local AdaAlter      seed 002 Alg. 3 (lazy denominators, sync of models and denominators), Sec. 6.2 warm-up
//
// Tolerance. The references do the same T arithmetic in the same order as the paper's formula (and the
// kernels), with the host scalars rounded to T the documented way, so on host backends the results must
// be bitwise equal (the project compiles with -std=c++17, where GCC does not contract a*b+c into an FMA;
// checked with objdump: the vectorised AMSGrad loop has vmulps/vaddps/vsqrtps/vdivps and no vfmadd).
// Device compilers (nvcc, hipcc) contract by default, so a kernel and its host reference can then differ by
// an ulp per operation: device backends get a relative tolerance of 8 ulps of the vector's largest value.
#include "terse_TestBackends.hpp"
#include "terse_TestReference.hpp"

#include <terse_Update.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace terse;
using namespace terse::test;

// 1003: not a multiple of 64 and less than one host block; 9001: three host blocks, the last one partial.
const std::size_t dims[] = {1003, 9001};

template <class ExecSpace>
class Update : public ::testing::Test {};
TYPED_TEST_SUITE(Update, ExecSpaces);

template <class ExecSpace, class T>
using DView = Kokkos::View<T*, typename ExecSpace::memory_space>;

template <class ExecSpace>
constexpr bool bitwise_v = Kokkos::SpaceAccessibility<ExecSpace, Kokkos::HostSpace>::accessible;

/// Bitwise on host backends; 8 ulps of the largest |want| on device backends (see the top of the file).
template <class ExecSpace, class T>
void expect_match(const std::vector<T>& got, const std::vector<T>& want, const char* what, int step) {
  ASSERT_EQ(got.size(), want.size());
  if (bitwise_v<ExecSpace>) {
    for (std::size_t i = 0; i < want.size(); ++i)
      ASSERT_EQ(got[i], want[i]) << what << " coordinate " << i << " of " << want.size() << " after step " << step;
  } else {
    T scale = 0;
    for (T w : want) scale = std::max(scale, std::abs(w));
    const T tol = 8 * std::numeric_limits<T>::epsilon() * scale;
    for (std::size_t i = 0; i < want.size(); ++i)
      ASSERT_LE(std::abs(got[i] - want[i]), tol) << what << " coordinate " << i << " after step " << step;
  }
}

/// Gradients: Gaussian with magnitudes spread over 1e-2 .. 1e2, and exact zeros (1 in 16).
template <class T>
std::vector<T> gradient(std::size_t d, unsigned seed, double scale = 1.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> exponent(-2.0, 2.0);
  std::uniform_int_distribution<int> pick(0, 15);
  std::vector<T> g(d);
  for (auto& v : g) v = pick(gen) == 0 ? T(0) : static_cast<T>(scale * normal(gen) * std::pow(10.0, exponent(gen)));
  return g;
}

// ---------------------------------------------------------------------------------------------------------
// SGD: x <- x - lr g
template <class ExecSpace, class T>
void check_sgd(std::size_t d) {
  auto x_ref = gradient<T>(d, 1);
  auto x = to_device<ExecSpace>(x_ref, "x");
  const double lrs[] = {0.1, 0.03125, 1e-3, 0.7};
  for (int s = 0; s < 4; ++s) {
    const auto g = gradient<T>(d, 100 + s);
    sgd_step(ExecSpace(), x, to_device<ExecSpace>(g, "g"), lrs[s]);
    const T lr = static_cast<T>(lrs[s]);
    for (std::size_t i = 0; i < d; ++i) x_ref[i] = x_ref[i] - lr * g[i];
    expect_match<ExecSpace>(to_host(x), x_ref, "x", s + 1);
  }
}

// A wrong size is refused in release builds too (the kernels check with Impl::require, not KOKKOS_ASSERT, which
// NDEBUG compiles out): a mismatched view throws std::invalid_argument naming the kernel, and writes nothing.
TYPED_TEST(Update, WrongSizesAreRefusedInReleaseBuilds) {
  using Exec = TypeParam;
  using V = Kokkos::View<float*, typename Exec::memory_space>;
  V x("x", 10), g("g", 9), m("m", 10), v("v", 10), v_hat("v_hat", 10), acc("acc", 9);
  Kokkos::deep_copy(x, 1.0f);
  const auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("nothing thrown");
  };
  EXPECT_NE(message([&] { sgd_step(Exec(), x, g, 0.1); }).find("terse::sgd_step"), std::string::npos);
  EXPECT_NE(message([&] { amsgrad_step(Exec(), x, m, v, v_hat, g, AmsgradParams{0.1}); }).find("terse::amsgrad_step"),
            std::string::npos);
  EXPECT_NE(message([&] { adagrad_step(Exec(), x, acc, x, 0.1, 1e-8); }).find("terse::adagrad_step"), std::string::npos);
  for (float xi : to_host(x)) EXPECT_EQ(xi, 1.0f);
}

TYPED_TEST(Update, SgdMatchesScalarLoop) {
  for (auto d : dims) {
    check_sgd<TypeParam, float>(d);
    check_sgd<TypeParam, double>(d);
  }
}

// ---------------------------------------------------------------------------------------------------------
// AMSGrad, seed 004 Alg. 1 lines 13-16.
template <class T>
struct AmsgradRef {
  std::vector<T> x, m, v, v_hat;
  void step(const std::vector<T>& g, const AmsgradParams& p) {
    // Coefficients rounded to T once; (1 - beta) formed in double (the header's convention).
    const T lr = T(p.lr), b1 = T(p.beta1), c1 = T(1.0 - p.beta1), b2 = T(p.beta2), c2 = T(1.0 - p.beta2), nu = T(p.nu);
    for (std::size_t i = 0; i < x.size(); ++i) {
      m[i] = b1 * m[i] + c1 * g[i];                   // line 13
      v[i] = b2 * v[i] + c2 * (g[i] * g[i]);          // line 14
      if (v[i] > v_hat[i]) v_hat[i] = v[i];           // line 15: max(v_hat_{t-1}, v_t)
      x[i] = x[i] - lr * m[i] / std::sqrt(v_hat[i] + nu);  // line 16: V_hat = diag(v_hat + nu)
    }
  }
};

template <class ExecSpace, class T>
void check_amsgrad(std::size_t d) {
  AmsgradRef<T> ref{gradient<T>(d, 2), std::vector<T>(d, 0), std::vector<T>(d, 0), std::vector<T>(d, 0)};
  auto x = to_device<ExecSpace>(ref.x, "x");
  DView<ExecSpace, T> m("m", d), v("v", d), v_hat("v_hat", d);  // zero initial state (line 1)
  // Large gradients first, then small ones: v decays below v_hat, so the max of line 15 matters.
  const double scales[] = {10.0, 1.0, 0.01, 0.01, 3.0, 0.001};
  const AmsgradParams params[] = {{1e-3}, {1e-3}, {5e-4, 0.8, 0.99, 1e-6}, {5e-4, 0.8, 0.99, 1e-6}, {1e-2}, {1e-3}};
  for (int s = 0; s < 6; ++s) {
    const auto g = gradient<T>(d, 200 + s, scales[s]);
    amsgrad_step(ExecSpace(), x, m, v, v_hat, to_device<ExecSpace>(g, "g"), params[s]);
    ref.step(g, params[s]);
    expect_match<ExecSpace>(to_host(m), ref.m, "m", s + 1);
    expect_match<ExecSpace>(to_host(v), ref.v, "v", s + 1);
    expect_match<ExecSpace>(to_host(v_hat), ref.v_hat, "v_hat", s + 1);
    expect_match<ExecSpace>(to_host(x), ref.x, "x", s + 1);
  }
  // The test exercised the max: in many coordinates v_hat kept an older, larger value.
  std::size_t kept = 0;
  for (std::size_t i = 0; i < d; ++i) kept += ref.v_hat[i] > ref.v[i];
  EXPECT_GT(kept, d / 2);
}

TYPED_TEST(Update, AmsgradMatchesScalarLoop) {
  for (auto d : dims) {
    check_amsgrad<TypeParam, float>(d);
    check_amsgrad<TypeParam, double>(d);
  }
}

// ---------------------------------------------------------------------------------------------------------
// 1-bit Adam: Adam steps (warm-up), then the frozen-variance stage: each worker's momentum b1 m + (1 - b1) g,
// and m <- u, x <- x - lr u / sqrt(v + nu) with v unchanged.
template <class ExecSpace, class T>
void check_onebit_adam(std::size_t d) {
  std::vector<T> xr = gradient<T>(d, 3), mr(d, 0), vr(d, 0);
  auto x = to_device<ExecSpace>(xr, "x");
  DView<ExecSpace, T> m("m", d), v("v", d);
  const AmsgradParams p{2e-3, 0.8, 0.99, 1e-6};
  const T lr = T(p.lr), b1 = T(p.beta1), c1 = T(1.0 - p.beta1), b2 = T(p.beta2), c2 = T(1.0 - p.beta2), nu = T(p.nu);
  int step = 0;
  for (int s = 0; s < 3; ++s, ++step) {  // warm-up: Adam
    const auto g = gradient<T>(d, 300 + s, s == 0 ? 10.0 : 0.1);
    adam_step(ExecSpace(), x, m, v, to_device<ExecSpace>(g, "g"), p);
    for (std::size_t i = 0; i < d; ++i) {
      mr[i] = b1 * mr[i] + c1 * g[i];
      vr[i] = b2 * vr[i] + c2 * (g[i] * g[i]);
      xr[i] = xr[i] - lr * mr[i] / std::sqrt(vr[i] + nu);  // v may fall: no max, unlike AMSGrad
    }
    expect_match<ExecSpace>(to_host(m), mr, "adam m", step);
    expect_match<ExecSpace>(to_host(v), vr, "adam v", step);
    expect_match<ExecSpace>(to_host(x), xr, "adam x", step);
  }
  // The backend's own v after the warm-up (a device may differ from vr by its fused multiply-adds): from here on
  // it must not change by a single bit.
  const std::vector<T> v_frozen = to_host(v);
  for (int s = 0; s < 3; ++s, ++step) {  // compression stage
    auto g = gradient<T>(d, 400 + s);
    auto gd = to_device<ExecSpace>(g, "g");
    momentum_blend(ExecSpace(), m, gd, p.beta1);
    for (std::size_t i = 0; i < d; ++i) g[i] = b1 * mr[i] + c1 * g[i];
    expect_match<ExecSpace>(to_host(gd), g, "worker momentum", step);
    const auto u = gradient<T>(d, 500 + s);  // stands for the server's compressed average
    frozen_adam_step(ExecSpace(), x, m, v, to_device<ExecSpace>(u, "u"), p.lr, p.nu);
    for (std::size_t i = 0; i < d; ++i) {
      mr[i] = u[i];
      xr[i] = xr[i] - lr * u[i] / std::sqrt(vr[i] + nu);
    }
    expect_match<ExecSpace>(to_host(m), mr, "frozen m", step);
    expect_match<ExecSpace>(to_host(x), xr, "frozen x", step);
    EXPECT_EQ(to_host(v), v_frozen) << "v changed after the freeze, step " << step;
  }
}

// Signum's worker momentum, m <- b m + (1 - b) g in place, against the scalar recurrence from m = 0.
template <class ExecSpace, class T>
void check_momentum_update(std::size_t d) {
  const double beta = 0.9;
  const T b = static_cast<T>(beta), c = static_cast<T>(1.0 - beta);
  Kokkos::View<T*, typename ExecSpace::memory_space> m("m", d);
  std::vector<T> mr(d, T(0));
  for (int step = 0; step < 4; ++step) {
    const auto g = gradient<T>(d, 600 + step);
    const auto gd = to_device<ExecSpace>(g, "g");
    momentum_update(ExecSpace(), m, gd, beta);
    for (std::size_t i = 0; i < d; ++i) mr[i] = b * mr[i] + c * g[i];
    expect_match<ExecSpace>(to_host(m), mr, "signum momentum", step);
    EXPECT_EQ(to_host(gd), g) << "the gradient changed, step " << step;
  }
}

TYPED_TEST(Update, MomentumUpdateMatchesScalarLoop) {
  for (auto d : dims) {
    check_momentum_update<TypeParam, float>(d);
    check_momentum_update<TypeParam, double>(d);
  }
}

TYPED_TEST(Update, OnebitAdamStagesMatchScalarLoops) {
  for (auto d : dims) {
    check_onebit_adam<TypeParam, float>(d);
    check_onebit_adam<TypeParam, double>(d);
  }
}

template <class ExecSpace, class T>
void check_amsgrad_vhat_monotone() {
  const std::size_t d = 1003;
  DView<ExecSpace, T> x("x", d), m("m", d), v("v", d), v_hat("v_hat", d);
  std::vector<T> prev(d, T(0));
  for (int s = 0; s < 12; ++s) {
    const auto g = gradient<T>(d, 300 + s, (s % 3 == 0) ? 5.0 : 0.05);
    amsgrad_step(ExecSpace(), x, m, v, v_hat, to_device<ExecSpace>(g, "g"), AmsgradParams{1e-2, 0.9, 0.9});
    const auto h = to_host(v_hat), vv = to_host(v);
    for (std::size_t i = 0; i < d; ++i) {
      ASSERT_GE(h[i], prev[i]) << "v_hat decreased at " << i << " step " << s + 1;
      ASSERT_GE(h[i], vv[i]) << "v_hat < v at " << i << " step " << s + 1;
    }
    prev = h;
  }
}

TYPED_TEST(Update, AmsgradVhatIsNonDecreasingAndBoundsV) {
  check_amsgrad_vhat_monotone<TypeParam, float>();
  check_amsgrad_vhat_monotone<TypeParam, double>();
}

// Constant gradient from zero state: m_t = (1 - b1^t) g, v_t = (1 - b2^t) g^2, v_hat_t = v_t (v increases),
// x_T = x_0 - lr sum_{t<=T} m_t / sqrt(v_t + nu). Tolerance: each step rounds a few times in T and the
// coefficients themselves are rounded to T, so the recursions drift from the exact closed form by at most
// ~3 ulps per step: 4 t ulps relative (x: relative to sum_t |step_t|).
template <class ExecSpace, class T>
void check_amsgrad_closed_form() {
  const std::size_t d = 1003;
  const auto g = gradient<T>(d, 400);
  const AmsgradParams p{1e-2, 0.9, 0.999, 1e-8};
  const auto gd = to_device<ExecSpace>(g, "g");
  const std::vector<T> x0(d, T(1));
  auto x = to_device<ExecSpace>(x0, "x");
  DView<ExecSpace, T> m("m", d), v("v", d), v_hat("v_hat", d);
  std::vector<long double> x_exact(d, 1.0L), moved(d, 0.0L);
  const long double eps = std::numeric_limits<T>::epsilon();
  for (int t = 1; t <= 15; ++t) {
    amsgrad_step(ExecSpace(), x, m, v, v_hat, gd, p);
    const auto mh = to_host(m), vh = to_host(v), hh = to_host(v_hat), xh = to_host(x);
    // The betas the kernel was given are the doubles nearest 0.9 and 0.999; 1 - 0.999 in double is 0.001
    // with a relative error of 9e-16 (4 ulps of fp64), so the closed form uses those doubles, not 0.999L.
    const long double f1 = 1.0L - std::pow(static_cast<long double>(p.beta1), t);
    const long double f2 = 1.0L - std::pow(static_cast<long double>(p.beta2), t);
    for (std::size_t i = 0; i < d; ++i) {
      const long double gi = g[i], m_t = f1 * gi, v_t = f2 * gi * gi;
      const long double step = 1e-2L * m_t / std::sqrt(v_t + 1e-8L);
      x_exact[i] -= step;
      moved[i] += std::abs(step);
      ASSERT_LE(std::abs(mh[i] - m_t), 4 * t * eps * std::abs(m_t)) << "m at " << i << " t = " << t;
      ASSERT_LE(std::abs(vh[i] - v_t), 4 * t * eps * v_t) << "v at " << i << " t = " << t;
      ASSERT_EQ(hh[i], vh[i]) << "v_hat at " << i << " t = " << t;
      ASSERT_LE(std::abs(xh[i] - x_exact[i]), 4 * t * eps * (1 + moved[i])) << "x at " << i << " t = " << t;
    }
  }
}

TYPED_TEST(Update, AmsgradConstantGradientClosedForm) {
  check_amsgrad_closed_form<TypeParam, float>();
  check_amsgrad_closed_form<TypeParam, double>();
}

// ---------------------------------------------------------------------------------------------------------
// AdaGrad, seed 002 Alg. 1: B_t^2 = B_{t-1}^2 + G_t o G_t; x_t = x_{t-1} - eta G_t / sqrt(B_t^2 + eps^2).
template <class ExecSpace, class T>
void check_adagrad(std::size_t d) {
  std::vector<T> x_ref = gradient<T>(d, 3), b2_ref(d, T(0));  // B_0^2 = 0
  auto x = to_device<ExecSpace>(x_ref, "x");
  DView<ExecSpace, T> accum("accum", d);
  const double lr = 0.05, eps = 1e-3;
  for (int s = 0; s < 6; ++s) {
    const auto g = gradient<T>(d, 500 + s, s % 2 ? 0.1 : 2.0);
    adagrad_step(ExecSpace(), x, accum, to_device<ExecSpace>(g, "g"), lr, eps);
    const T eta = T(lr), eps2 = T(eps * eps);
    for (std::size_t i = 0; i < d; ++i) {
      b2_ref[i] = b2_ref[i] + g[i] * g[i];
      x_ref[i] = x_ref[i] - eta * g[i] / std::sqrt(b2_ref[i] + eps2);
    }
    expect_match<ExecSpace>(to_host(accum), b2_ref, "accum", s + 1);
    expect_match<ExecSpace>(to_host(x), x_ref, "x", s + 1);
  }
}

TYPED_TEST(Update, AdagradMatchesScalarLoop) {
  for (auto d : dims) {
    check_adagrad<TypeParam, float>(d);
    check_adagrad<TypeParam, double>(d);
  }
}

// The accumulator is the sum of squares of all gradients so far. Gradients k/64 with |k| <= 64: every
// square and every partial sum (< 2^24 / 4096) is exact in fp32, so the sum is checked exactly against an
// integer sum of k^2, independently of rounding and of the order of operations.
template <class ExecSpace, class T>
void check_adagrad_sum_of_squares() {
  const std::size_t d = 1003;
  DView<ExecSpace, T> x("x", d), accum("accum", d);
  std::vector<std::int64_t> sum_k2(d, 0);
  std::mt19937 gen(600);
  std::uniform_int_distribution<int> kdist(-64, 64);
  for (int s = 0; s < 20; ++s) {
    std::vector<T> g(d);
    for (std::size_t i = 0; i < d; ++i) {
      const int k = kdist(gen);
      g[i] = T(k) / T(64);
      sum_k2[i] += std::int64_t(k) * k;
    }
    adagrad_step(ExecSpace(), x, accum, to_device<ExecSpace>(g, "g"), 0.1, 1e-4);
  }
  const auto a = to_host(accum);
  for (std::size_t i = 0; i < d; ++i) ASSERT_EQ(a[i], T(sum_k2[i]) / T(4096)) << i;
}

TYPED_TEST(Update, AdagradAccumulatorIsSumOfSquares) {
  check_adagrad_sum_of_squares<TypeParam, float>();
  check_adagrad_sum_of_squares<TypeParam, double>();
}

// ---------------------------------------------------------------------------------------------------------
// Local AdaAlter, seed 002 Alg. 3, n workers emulated in one process (the allreduce is a host sum in worker
// order). The reference keeps, per worker, x_{i,t}, B^2_{i,t} and B^2_{i,t-t'} (the value at the last sync).
template <class T>
struct AdaAlterRef {
  std::vector<std::vector<T>> x, b2, b2_sync;  // [worker][coordinate]
  void iteration(long t, long H, const std::vector<std::vector<T>>& G, double eta, double eps) {
    const long tp = (t - 1) % H + 1;  // t' = mod(t-1, H) + 1
    const std::size_t n = x.size(), d = x[0].size();
    const T lr = T(eta), placeholder = T(double(tp) * eps * eps);
    std::vector<std::vector<T>> y(n, std::vector<T>(d)), A(n, std::vector<T>(d));
    for (std::size_t k = 0; k < n; ++k)
      for (std::size_t i = 0; i < d; ++i) {
        y[k][i] = x[k][i] - lr * G[k][i] / std::sqrt(b2_sync[k][i] + placeholder);
        A[k][i] = b2[k][i] + G[k][i] * G[k][i];
      }
    if (t % H != 0) {
      x = y;
      b2 = A;
    } else {  // Synchronize: averages of y and of A over the workers
      const T inv = T(1.0 / double(n));
      for (std::size_t i = 0; i < d; ++i) {
        T sy = 0, sa = 0;
        for (std::size_t k = 0; k < n; ++k) {
          sy += y[k][i];
          sa += A[k][i];
        }
        for (std::size_t k = 0; k < n; ++k) {
          x[k][i] = sy * inv;
          b2[k][i] = sa * inv;
        }
      }
      b2_sync = b2;
    }
  }
};

/// The driver's side of Alg. 3 for n emulated workers: local steps, then at a sync the allreduce (host
/// sum, worker order) followed by the kernels' averaging.
template <class ExecSpace, class T>
struct AdaAlterWorkers {
  std::vector<DView<ExecSpace, T>> x, denom, accum;
  AdaAlterWorkers(const std::vector<std::vector<T>>& x0, double b0) {
    for (const auto& xk : x0) {
      x.push_back(to_device<ExecSpace>(xk, "x"));
      denom.push_back(DView<ExecSpace, T>("denom", xk.size()));
      accum.push_back(DView<ExecSpace, T>("accum", xk.size()));
      Kokkos::deep_copy(denom.back(), T(b0 * b0));  // B^2_{i,0} = b0^2 1
      Kokkos::deep_copy(accum.back(), T(b0 * b0));
    }
  }
  static void allreduce_sum(const std::vector<DView<ExecSpace, T>>& views) {
    std::vector<T> sum(views[0].extent(0), T(0));
    for (const auto& v : views) {
      const auto h = to_host(v);
      for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += h[i];
    }
    for (const auto& v : views) Kokkos::deep_copy(v, to_device<ExecSpace>(sum, "sum"));
  }
  void iteration(long t, long H, const std::vector<std::vector<T>>& G, double lr, double eps) {
    const std::size_t n = x.size();
    for (std::size_t k = 0; k < n; ++k)
      adaalter_local_step(ExecSpace(), x[k], denom[k], accum[k], to_device<ExecSpace>(G[k], "g"), lr, eps,
                          adaalter_local_index(t, H));
    if (adaalter_is_sync_step(t, H)) {
      allreduce_sum(x);
      for (auto& xk : x) average_in_place(ExecSpace(), xk, 1.0 / double(n));
      allreduce_sum(accum);
      for (std::size_t k = 0; k < n; ++k) adaalter_sync_denominators(ExecSpace(), denom[k], accum[k], 1.0 / double(n));
    }
  }
};

template <class ExecSpace, class T>
void check_adaalter(std::size_t d) {
  const std::size_t n = 3;
  const long H = 4, T_iter = 10, warmup = 5;
  const double eta = 0.5, eps = 1.0, b0 = 1.0;  // seed 002 Sec. 6.1/6.2 values: eps = b0 = 1, eta = 0.5
  std::vector<std::vector<T>> x0;
  for (std::size_t k = 0; k < n; ++k) x0.push_back(gradient<T>(d, 7));  // x_{1,0} = ... = x_{n,0}
  AdaAlterRef<T> ref{x0, std::vector<std::vector<T>>(n, std::vector<T>(d, T(b0 * b0))),
                     std::vector<std::vector<T>>(n, std::vector<T>(d, T(b0 * b0)))};
  AdaAlterWorkers<ExecSpace, T> w(x0, b0);
  for (long t = 1; t <= T_iter; ++t) {
    std::vector<std::vector<T>> G;
    for (std::size_t k = 0; k < n; ++k) G.push_back(gradient<T>(d, 700 + 10 * t + k));  // non-IID workers
    const double eta_t = eta * std::min(1.0, double(t) / double(warmup));            // Sec. 6.2
    ASSERT_EQ(adaalter_warmup_lr(eta, t, warmup), eta_t) << t;
    w.iteration(t, H, G, adaalter_warmup_lr(eta, t, warmup), eps);
    ref.iteration(t, H, G, eta_t, eps);
    for (std::size_t k = 0; k < n; ++k) {
      expect_match<ExecSpace>(to_host(w.x[k]), ref.x[k], "x", int(t));
      expect_match<ExecSpace>(to_host(w.accum[k]), ref.b2[k], "accum = B^2_{i,t}", int(t));
      expect_match<ExecSpace>(to_host(w.denom[k]), ref.b2_sync[k], "denom = B^2_{i,t-t'}", int(t));
    }
    // Sec. 4.2: the denominators are the same on all workers in the local iterations; models agree
    // right after a sync and drift apart in between (non-IID gradients).
    const auto x0h = to_host(w.x[0]), x1h = to_host(w.x[1]);
    EXPECT_EQ(to_host(w.denom[0]), to_host(w.denom[n - 1])) << t;
    if (t % H == 0) {
      EXPECT_EQ(x0h, x1h) << t;
      EXPECT_EQ(to_host(w.accum[0]), to_host(w.accum[n - 1])) << t;
    } else {
      EXPECT_NE(x0h, x1h) << t;
    }
  }
}

TYPED_TEST(Update, AdaAlterMatchesScalarLoopOfAlgorithm3) {
  for (auto d : dims) {
    check_adaalter<TypeParam, float>(d);
    check_adaalter<TypeParam, double>(d);
  }
}

// H = 1 (sync every iteration), one worker, no warm-up: seed 002 Sec. 4.2 says AdaAlter is then still not
// AdaGrad because of the lazy update: x_t = x_{t-1} - eta G_t / sqrt(B^2_{t-1} + eps^2) and
// B^2_t = B^2_{t-1} + G_t o G_t, i.e. AdaGrad with the denominator one step behind (eps^2 standing in for
// the G_t o G_t AdaGrad already has). Checked against that recursion, and shown to differ from adagrad_step.
template <class ExecSpace, class T>
void check_adaalter_h1() {
  const std::size_t d = 1003;
  const double eta = 0.1, eps = 0.5;
  std::vector<T> x_ref = gradient<T>(d, 8), b2(d, T(0));  // b0 = 0, as AdaGrad's B_0^2 = 0
  AdaAlterWorkers<ExecSpace, T> w({x_ref}, 0.0);
  auto x_ag = to_device<ExecSpace>(x_ref, "x_adagrad");
  DView<ExecSpace, T> acc_ag("accum_adagrad", d);
  for (long t = 1; t <= 6; ++t) {
    const auto g = gradient<T>(d, 800 + t);
    w.iteration(t, 1, {g}, adaalter_warmup_lr(eta, t, 0), eps);
    adagrad_step(ExecSpace(), x_ag, acc_ag, to_device<ExecSpace>(g, "g"), eta, eps);
    for (std::size_t i = 0; i < d; ++i) {
      x_ref[i] = x_ref[i] - T(eta) * g[i] / std::sqrt(b2[i] + T(eps * eps));
      b2[i] = b2[i] + g[i] * g[i];
    }
    expect_match<ExecSpace>(to_host(w.x[0]), x_ref, "x", int(t));
    expect_match<ExecSpace>(to_host(w.denom[0]), b2, "denom", int(t));
    expect_match<ExecSpace>(to_host(w.accum[0]), b2, "accum", int(t));
    // The accumulated denominators coincide with AdaGrad's, the models do not.
    expect_match<ExecSpace>(to_host(acc_ag), b2, "AdaGrad accum", int(t));
    const auto xa = to_host(x_ag), xw = to_host(w.x[0]);
    std::size_t differ = 0;
    for (std::size_t i = 0; i < d; ++i) differ += xa[i] != xw[i];
    EXPECT_GT(differ, d / 2) << "H = 1 AdaAlter should not be AdaGrad, t = " << t;
  }
}

TYPED_TEST(Update, AdaAlterWithSyncPeriodOneIsAdaGradWithLaggedDenominator) {
  check_adaalter_h1<TypeParam, float>();
  check_adaalter_h1<TypeParam, double>();
}

// Sec. 4.2: eps^2 is a placeholder for the G o G not added yet. When every gradient coordinate is +-eps,
// the placeholder is exact: denom + t' eps^2 = b0^2 + t eps^2 = AdaGrad's B_t^2 + b0^2, so Local AdaAlter
// (any H, workers with equal gradients) is exactly AdaGrad with epsilon_AdaGrad = b0. With eps = 1/2 and
// b0 = 1 every quantity is a dyadic rational, exact in T: the two must agree bitwise on every backend.
template <class ExecSpace, class T>
void check_adaalter_placeholder() {
  const std::size_t d = 1003;
  const double eta = 0.25, eps = 0.5, b0 = 1.0;
  const long H = 3;
  const std::vector<T> x0 = gradient<T>(d, 9);
  AdaAlterWorkers<ExecSpace, T> w({x0, x0}, b0);
  auto x_ag = to_device<ExecSpace>(x0, "x_adagrad");
  DView<ExecSpace, T> acc_ag("accum_adagrad", d);
  std::mt19937 gen(900);
  for (long t = 1; t <= 8; ++t) {
    std::vector<T> g(d);
    for (auto& v : g) v = (gen() & 1u) ? T(eps) : T(-eps);
    w.iteration(t, H, {g, g}, eta, eps);
    adagrad_step(ExecSpace(), x_ag, acc_ag, to_device<ExecSpace>(g, "g"), eta, b0);
    const auto xa = to_host(x_ag);
    for (std::size_t k = 0; k < 2; ++k) {
      const auto xw = to_host(w.x[k]);
      for (std::size_t i = 0; i < d; ++i) ASSERT_EQ(xw[i], xa[i]) << "worker " << k << " coordinate " << i << " t = " << t;
    }
  }
}

TYPED_TEST(Update, AdaAlterPlaceholderIsExactForGradientsOfSizeEps) {
  check_adaalter_placeholder<TypeParam, float>();
  check_adaalter_placeholder<TypeParam, double>();
}

// average_in_place: y * T(1/n); with n = 4 and dyadic data the average is exact.
template <class ExecSpace, class T>
void check_average() {
  for (std::size_t d : {std::size_t(0), std::size_t(1), std::size_t(9001)}) {
    std::vector<T> y(d);
    std::mt19937 gen(1000);
    for (auto& v : y) v = T(int(gen() % 2001) - 1000) / T(8);  // a sum of 4 workers' values
    auto yd = to_device<ExecSpace>(y, "y");
    average_in_place(ExecSpace(), yd, 0.25);
    const auto got = to_host(yd);
    for (std::size_t i = 0; i < d; ++i) ASSERT_EQ(got[i], y[i] / T(4)) << i;
    auto yd3 = to_device<ExecSpace>(y, "y");
    average_in_place(ExecSpace(), yd3, 1.0 / 3.0);
    std::vector<T> want(d);
    for (std::size_t i = 0; i < d; ++i) want[i] = y[i] * T(1.0 / 3.0);
    expect_match<ExecSpace>(to_host(yd3), want, "y / 3", 0);
  }
}

TYPED_TEST(Update, AverageInPlace) {
  check_average<TypeParam, float>();
  check_average<TypeParam, double>();
}

TYPED_TEST(Update, EmptyAndSingleCoordinate) {
  for (std::size_t d : {std::size_t(0), std::size_t(1)}) {
    DView<TypeParam, double> x("x", d), m("m", d), v("v", d), h("h", d), a("a", d), b("b", d);
    auto g = to_device<TypeParam>(std::vector<double>(d, 2.0), "g");
    amsgrad_step(TypeParam(), x, m, v, h, g, AmsgradParams{0.5});
    adagrad_step(TypeParam(), x, a, g, 0.5, 0.0);
    adaalter_local_step(TypeParam(), x, b, a, g, 0.5, 1.0, 1);
    sgd_step(TypeParam(), x, g, 0.5);
    adaalter_sync_denominators(TypeParam(), b, a, 1.0);
    if (d == 1) {
      // AMSGrad: m = 0.2, v = 0.004, x = -0.5 * 0.2 / sqrt(0.004 + 1e-8); AdaGrad: a = 4, x -= 0.5;
      // AdaAlter: x -= 0.5 * 2 / sqrt(0 + 1), a = 8; SGD: x -= 1.
      const double x_ams = -0.5 * (0.1 * 2.0) / std::sqrt(0.001 * 4.0 + 1e-8);
      EXPECT_NEAR(to_host(x)[0], x_ams - 0.5 - 1.0 - 1.0, 1e-12);
      EXPECT_EQ(to_host(a)[0], 8.0);
      EXPECT_EQ(to_host(b)[0], 8.0);
    }
  }
}

// Host-side schedule of Alg. 3 and Sec. 6.2.
TEST(UpdateSchedule, WarmupLearningRate) {
  // Sec. 6.2: eta_t = eta min(1, t / warm_up_steps); eta = 0.5, warm_up_steps = 600 in the paper.
  EXPECT_DOUBLE_EQ(adaalter_warmup_lr(0.5, 1, 600), 0.5 / 600);
  EXPECT_DOUBLE_EQ(adaalter_warmup_lr(0.5, 300, 600), 0.25);
  EXPECT_DOUBLE_EQ(adaalter_warmup_lr(0.5, 599, 600), 0.5 * 599 / 600);
  EXPECT_EQ(adaalter_warmup_lr(0.5, 600, 600), 0.5);
  EXPECT_EQ(adaalter_warmup_lr(0.5, 10000, 600), 0.5);
  EXPECT_EQ(adaalter_warmup_lr(0.5, 1, 0), 0.5);
  EXPECT_EQ(adaalter_warmup_lr(0.5, 1, 1), 0.5);
  for (long t = 1; t < 600; ++t) EXPECT_LT(adaalter_warmup_lr(0.5, t, 600), adaalter_warmup_lr(0.5, t + 1, 600));
}

TEST(UpdateSchedule, LocalIndexAndSyncSteps) {
  // t' = mod(t-1, H) + 1; sync when mod(t, H) = 0.
  const long want_tp[] = {1, 2, 3, 4, 1, 2, 3, 4, 1};
  for (long t = 1; t <= 9; ++t) {
    EXPECT_EQ(adaalter_local_index(t, 4), want_tp[t - 1]) << t;
    EXPECT_EQ(adaalter_is_sync_step(t, 4), t == 4 || t == 8) << t;
    EXPECT_EQ(adaalter_local_index(t, 1), 1) << t;
    EXPECT_TRUE(adaalter_is_sync_step(t, 1)) << t;
  }
}

}  // namespace
