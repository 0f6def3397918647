// The convolutional network (problem.kind cnn: drivers/problems/terse_Cnn.cpp, terse_CnnLayers.hpp) against
// double-precision scalar references written here from the definitions (nested loops over images, channels and
// taps), on every backend and both product paths:
//   * each layer: a convolution (im2col, the product, bias and ReLU) against the direct sum over taps; max
//     pooling against the window's maximum; the adjoint of im2col (col2im) by the dot-product identity
//     <im2col(a), b> = <a, col2im(b)>; the pooling's backward pass against the argmax routing;
//   * the whole network's loss against ref_cnn, and its gradient (every parameter) against central finite
//     differences of ref_cnn in double, for "same" and "valid" padding;
//   * the parameters as blocks tile x in the documented order; He initialisation's variances;
//   * a worker's stochastic gradient is the same bits whatever rank holds it, the mean of its per-sample
//     gradients, and (fixed_order) bitwise equal for Serial and OpenMP;
//   * the memory estimate (cnn_bytes) within 10 % of the allocations' high-water mark.
#include "terse_ProblemTestSupport.hpp"

#include <terse_AllocationTracker.hpp>
#include <terse_CnnLayers.hpp>

#include <KokkosKernels_config.h>

#include <cmath>
#include <random>

namespace {

using namespace terse;
using namespace terse::test;
namespace cnn = terse::Impl::cnn;

// ------------------------------------------------------------------------------------------ references

/// The documented network (terse_Problem.hpp) in double over rows [r0, r1): the mean cross-entropy.
struct RefShape {
  int S = 10, c1 = 2, c2 = 3, H = 5, K = 10;
  bool same = true;
};

double ref_cnn(const DenseDataset& D, std::uint64_t r0, std::uint64_t r1, const RefShape& s,
               const std::vector<double>& x, std::vector<int>* predicted = nullptr) {
  const int pad = s.same ? 2 : 0, S = s.S;
  const int h1 = S + 2 * pad - 4, q1 = h1 / 2, h2 = q1 + 2 * pad - 4, q2 = h2 / 2, F = s.c2 * q2 * q2;
  const std::size_t oK1 = 0, oB1 = oK1 + 25 * s.c1, oK2 = oB1 + s.c1, oB2 = oK2 + 25 * s.c1 * s.c2, oW3 = oB2 + s.c2,
                    oB3 = oW3 + static_cast<std::size_t>(s.H) * F, oW4 = oB3 + s.H, oB4 = oW4 + s.K * s.H;
  // conv(in: C channels of side n, kernel offset, bias offset, Cout) -> relu(out) of side n + 2 pad - 4
  using Map = std::vector<std::vector<std::vector<double>>>;  // [c][y][x]
  const auto conv = [&](const Map& in, int C, std::size_t oK, std::size_t oB, int Cout) {
    const int n = static_cast<int>(in[0].size()), m = n + 2 * pad - 4;
    Map out(Cout, std::vector<std::vector<double>>(m, std::vector<double>(m)));
    for (int o = 0; o < Cout; ++o)
      for (int oy = 0; oy < m; ++oy)
        for (int ox = 0; ox < m; ++ox) {
          double v = x[oB + o];
          for (int ky = 0; ky < 5; ++ky)
            for (int kx = 0; kx < 5; ++kx)
              for (int c = 0; c < C; ++c) {
                const int y = oy + ky - pad, xx = ox + kx - pad;
                if (y < 0 || y >= n || xx < 0 || xx >= n) continue;
                v += x[oK + static_cast<std::size_t>(o) * 25 * C + (ky * 5 + kx) * C + c] * in[c][y][xx];
              }
          out[o][oy][ox] = std::max(v, 0.0);
        }
    return out;
  };
  const auto pool = [](const Map& in) {
    const int m = static_cast<int>(in[0].size()) / 2;
    Map out(in.size(), std::vector<std::vector<double>>(m, std::vector<double>(m)));
    for (std::size_t c = 0; c < in.size(); ++c)
      for (int y = 0; y < m; ++y)
        for (int xx = 0; xx < m; ++xx)
          out[c][y][xx] = std::max(std::max(in[c][2 * y][2 * xx], in[c][2 * y][2 * xx + 1]),
                                   std::max(in[c][2 * y + 1][2 * xx], in[c][2 * y + 1][2 * xx + 1]));
    return out;
  };
  double total = 0;
  for (std::uint64_t r = r0; r < r1; ++r) {
    Map img(1, std::vector<std::vector<double>>(S, std::vector<double>(S)));
    for (int y = 0; y < S; ++y)
      for (int xx = 0; xx < S; ++xx) img[0][y][xx] = D.features[r * D.dim + y * S + xx];
    const Map p1 = pool(conv(img, 1, oK1, oB1, s.c1));
    const Map p2 = pool(conv(p1, s.c1, oK2, oB2, s.c2));
    std::vector<double> f(F);
    for (int y = 0; y < q2; ++y)
      for (int xx = 0; xx < q2; ++xx)
        for (int c = 0; c < s.c2; ++c) f[(y * q2 + xx) * s.c2 + c] = p2[c][y][xx];
    std::vector<double> z(s.H), o(s.K);
    for (int h = 0; h < s.H; ++h) {
      double v = x[oB3 + h];
      for (int j = 0; j < F; ++j) v += x[oW3 + static_cast<std::size_t>(h) * F + j] * f[j];
      z[h] = std::max(v, 0.0);
    }
    for (int k = 0; k < s.K; ++k) {
      double v = x[oB4 + k];
      for (int h = 0; h < s.H; ++h) v += x[oW4 + static_cast<std::size_t>(k) * s.H + h] * z[h];
      o[k] = v;
    }
    const double m = *std::max_element(o.begin(), o.end());
    double se = 0;
    for (double v : o) se += std::exp(v - m);
    total += m + std::log(se) - o[D.labels[r]];
    if (predicted) predicted->push_back(static_cast<int>(std::max_element(o.begin(), o.end()) - o.begin()));
  }
  return total / static_cast<double>(r1 - r0);
}

CnnShape shape_of(const RefShape& s) {
  CnnShape c;
  c.channels = {s.c1, s.c2};
  c.hidden = s.H;
  c.same = s.same;
  return c;
}

std::vector<DenseProducts> product_paths() { return {DenseProducts::fixed_order, DenseProducts::library}; }

template <class E>
using HMat = Kokkos::View<float**, Kokkos::LayoutRight, Kokkos::HostSpace>;

/// A (rows, cols) matrix of the space filled from a host vector.
template <class E>
cnn::Mat<typename E::memory_space> matrix(const std::vector<float>& v, std::int64_t rows, std::int64_t cols) {
  cnn::Mat<typename E::memory_space> m("m", rows, cols);
  auto h = Kokkos::create_mirror_view(m);
  for (std::int64_t i = 0; i < rows * cols; ++i) h.data()[i] = v[i];
  Kokkos::deep_copy(m, h);
  return m;
}
template <class V>
std::vector<float> flat(const V& m) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m);
  return std::vector<float>(h.data(), h.data() + h.size());
}

// ============================================================================================== layers

template <class E>
class CnnLayers : public ::testing::Test {};
TYPED_TEST_SUITE(CnnLayers, ExecSpaces);

// A convolution as terse computes it (im2col, Col K^T, bias, ReLU) against the direct sum over the taps, on
// both padding choices and both product paths; and 2 x 2 max pooling against the window's maximum.
TYPED_TEST(CnnLayers, ConvolutionAndPoolingAgainstLoops) {
  using E = TypeParam;
  using Mem = typename E::memory_space;
  const std::int64_t B = 2, S = 9, C = 3, Co = 4;
  const auto in = random_floats(B * S * S * C, -1, 1, 11);
  const auto K = random_floats(Co * 25 * C, -0.5, 0.5, 12);
  const auto bias = random_floats(Co, -0.3, 0.3, 13);
  for (const bool same : {true, false})
    for (const DenseProducts products : product_paths()) {
      SCOPED_TRACE(std::string(same ? "same" : "valid") + ", " + to_string(products));
      const cnn::Layers<E> L{E(), products == DenseProducts::library};
      const cnn::ConvGeometry g{B, S, C, same ? 2 : 0};
      const std::int64_t Ho = g.out_side();
      ASSERT_EQ(Ho, same ? S : S - 4);
      const auto inv = matrix<E>(in, B * S * S, C);
      cnn::Mat<Mem> col("col", B * Ho * Ho, 25 * C), y("y", B * Ho * Ho, Co);
      L.im2col(g, inv, col);
      L.gemm("test::conv", 'N', 'T', 1.0f, col, matrix<E>(K, Co, 25 * C), 0.0f, y);
      L.bias_relu(y, to_device<E>(bias, "bias"));
      Kokkos::fence();
      const auto got = flat(y);
      for (std::int64_t b = 0; b < B; ++b)
        for (std::int64_t oy = 0; oy < Ho; ++oy)
          for (std::int64_t ox = 0; ox < Ho; ++ox)
            for (std::int64_t o = 0; o < Co; ++o) {
              double v = bias[o];
              for (int ky = 0; ky < 5; ++ky)
                for (int kx = 0; kx < 5; ++kx)
                  for (std::int64_t c = 0; c < C; ++c) {
                    const std::int64_t yy = oy + ky - g.pad, xx = ox + kx - g.pad;
                    if (yy < 0 || yy >= S || xx < 0 || xx >= S) continue;
                    v += static_cast<double>(K[o * 25 * C + (ky * 5 + kx) * C + c]) * in[((b * S + yy) * S + xx) * C + c];
                  }
              ASSERT_NEAR(got[((b * Ho + oy) * Ho + ox) * Co + o], std::max(v, 0.0), 2e-6)
                  << "b " << b << " (" << oy << ", " << ox << ") channel " << o;
            }
      // pooling of the activation: odd side 9 (valid: 5) drops the last row and column
      const std::int64_t So = Ho / 2;
      cnn::Mat<Mem> p("p", B * So * So, Co);
      cnn::Arg<Mem> arg("arg", B * So * So, Co);
      L.max_pool(B, Ho, y, p, arg);
      Kokkos::fence();
      const auto gp = flat(p);
      const auto ga = flat(arg);
      for (std::int64_t b = 0; b < B; ++b)
        for (std::int64_t py = 0; py < So; ++py)
          for (std::int64_t px = 0; px < So; ++px)
            for (std::int64_t o = 0; o < Co; ++o) {
              float best = -1;
              int at = -1;
              for (int q = 0; q < 4; ++q) {
                const float v = got[((b * Ho + 2 * py + q / 2) * Ho + 2 * px + q % 2) * Co + o];
                if (v > best) best = v, at = q;
              }
              const std::size_t i = ((b * So + py) * So + px) * Co + o;
              ASSERT_EQ(gp[i], best);
              ASSERT_EQ(static_cast<int>(ga[i]), at);
            }
    }
}

// col2im is the adjoint of im2col: <im2col(a), b> = <a, col2im(b)> for random a and b (the data gradient's
// identity); and the pooling's backward pass routes each pooled gradient to its argmax where the activation is
// positive, nowhere else.
TYPED_TEST(CnnLayers, BackwardPassesAreAdjoints) {
  using E = TypeParam;
  using Mem = typename E::memory_space;
  const std::int64_t B = 2, S = 7, C = 2;
  for (const std::int64_t pad : {std::int64_t{2}, std::int64_t{0}}) {
    const cnn::ConvGeometry g{B, S, C, pad};
    const std::int64_t Ho = g.out_side();
    const cnn::Layers<E> L{E(), true};
    const auto a = random_floats(B * S * S * C, -1, 1, 21), bb = random_floats(B * Ho * Ho * 25 * C, -1, 1, 22);
    cnn::Mat<Mem> col("col", B * Ho * Ho, 25 * C), dx("dx", B * S * S, C);
    L.im2col(g, matrix<E>(a, B * S * S, C), col);
    L.col2im(g, matrix<E>(bb, B * Ho * Ho, 25 * C), dx);
    Kokkos::fence();
    const auto ca = flat(col), db = flat(dx);
    double lhs = 0, rhs = 0;
    for (std::size_t i = 0; i < ca.size(); ++i) lhs += static_cast<double>(ca[i]) * bb[i];
    for (std::size_t i = 0; i < db.size(); ++i) rhs += static_cast<double>(a[i]) * db[i];
    EXPECT_NEAR(lhs, rhs, 1e-5 * (1 + std::fabs(lhs))) << "pad " << pad;
  }
  // Pooling backward on a 4 x 4 map of one image, one channel: activations with a zero window.
  const std::vector<float> act = {0.5f, 0.1f, 0, 0, 0.2f, 0.9f, 0, 0, 1, 2, 3, 4, 2, 1, 4, 3};
  const std::vector<float> dpool = {10, 20, 30, 40};
  cnn::Mat<Mem> y = matrix<E>(act, 16, 1), p("p", 4, 1);
  cnn::Arg<Mem> arg("arg", 4, 1);
  const cnn::Layers<E> L{E(), true};
  L.max_pool(1, 4, y, p, arg);
  L.pool_relu_backward(1, 4, matrix<E>(dpool, 4, 1), arg, y);
  Kokkos::fence();
  const std::vector<float> want = {0, 0, 0, 0, 0, 10, 0, 0, 0, 30, 0, 40, 0, 0, 0, 0};
  const auto got = flat(y);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(got[i], want[i]) << "element " << i;
}

// =========================================================================================== the network

template <class E>
class ProblemCnn : public ::testing::Test {};
TYPED_TEST_SUITE(ProblemCnn, ExecSpaces);

TYPED_TEST(ProblemCnn, LossAndFiniteDifferences) {
  using E = TypeParam;
  for (const bool same : {true, false})
    for (const DenseProducts products : product_paths()) {
      SCOPED_TRACE(std::string(same ? "same" : "valid") + ", " + to_string(products));
      RefShape s;
      s.same = same;
      s.S = same ? 10 : 16;  // valid: 16 -> 12 -> 6 -> 2 -> 1
      const DenseDataset train = synthetic_dense(12, s.S * s.S, 10, 31), test = synthetic_dense(9, s.S * s.S, 10, 32);
      auto p = make_cnn<E>(train, test, shape_of(s), WorkerRange{2, 0, 2}, products);
      const int h1 = s.S + (same ? 0 : -4), q1 = h1 / 2, q2 = (q1 + (same ? 0 : -4)) / 2, F = s.c2 * q2 * q2;
      const std::size_t d = 25 * s.c1 + s.c1 + 25 * s.c1 * s.c2 + s.c2 + static_cast<std::size_t>(F + 1) * s.H +
                            s.K * s.H + s.K;
      ASSERT_EQ(p->dim(), d);
      const auto x = random_floats(d, -0.6, 0.6, 33);
      const auto f = [&](const std::vector<double>& z) { return ref_cnn(train, 0, 12, s, z); };
      const double f0 = f(widen(x));
      EXPECT_NEAR(loss_of(*p, x), f0, 1e-5 * f0);
      // Every parameter (h = 1e-6 in double: no ReLU kink or pooling tie within h for these values).
      expect_close(gradient_of(*p, x), fd_gradient(f, widen(x), 1e-6), 2e-5, "finite differences");
      // The test accuracy counts the rows whose first maximum is the label.
      std::vector<int> predicted;
      ref_cnn(test, 0, 9, s, widen(x), &predicted);
      int correct = 0;
      for (int r = 0; r < 9; ++r) correct += predicted[r] == test.labels[r];
      EXPECT_DOUBLE_EQ(*p->test_accuracy(to_device<E>(x, "x")), correct / 9.0);
    }
}

TYPED_TEST(ProblemCnn, BlocksAndInitialModel) {
  using E = TypeParam;
  const DenseDataset train = synthetic_dense(8, 28 * 28, 10, 41);
  CnnShape shape;  // the defaults: 32, 64, same, 512
  auto p = make_cnn<E>(train, train, shape, WorkerRange{1, 0, 1});
  ASSERT_EQ(p->dim(), 1663370u);  // terse_Problem.hpp's count for 28 x 28, same, 32, 64, 512
  const auto blocks = p->blocks();
  ASSERT_EQ(blocks.size(), 8u);
  std::size_t next = 0;
  for (const auto& b : blocks) {
    EXPECT_EQ(b.offset, next) << b.name;
    next += b.size();
  }
  EXPECT_EQ(next, p->dim());
  EXPECT_EQ(blocks[2].name, "conv2.kernel");
  EXPECT_TRUE(blocks[2].matrix);
  EXPECT_EQ(blocks[2].rows, 64u);
  EXPECT_EQ(blocks[2].cols, 800u);
  EXPECT_EQ(blocks[4].cols, 7u * 7 * 64);  // the dense layer sees the pooled 7 x 7 x 64 map
  EXPECT_FALSE(blocks[5].matrix);
  // He: each weight block's mean square is 2 / fan_in (within 5 standard errors of the mean of chi-square draws:
  // the standard error of a mean square of n normals is sqrt(2 / n) times the variance); biases 0.
  Vec<E> xv("x", p->dim());
  p->initial_model(xv, 7);
  const auto x = to_host(xv);
  const double fan_in[4] = {25, 25 * 32, 7 * 7 * 64, 512};
  for (int l = 0; l < 4; ++l) {
    const auto& w = blocks[2 * l];
    double ms = 0;
    for (std::size_t i = 0; i < w.size(); ++i) ms += static_cast<double>(x[w.offset + i]) * x[w.offset + i];
    ms /= static_cast<double>(w.size());
    const double want = 2 / fan_in[l];
    EXPECT_NEAR(ms, want, 5 * want * std::sqrt(2.0 / static_cast<double>(w.size()))) << w.name;
    const auto& b = blocks[2 * l + 1];
    for (std::size_t i = 0; i < b.size(); ++i) ASSERT_EQ(x[b.offset + i], 0.0f) << b.name;
  }
  Vec<E> again("again", p->dim());
  p->initial_model(again, 7);
  EXPECT_TRUE(bitwise_equal(x, to_host(again)));
}

// A worker's stochastic gradient does not depend on which rank holds it (a fixed sequence of calls on fixed
// shapes), is the mean of its per-sample gradients, and for a batch of several chunks (130 > 64 rows) still
// the gradient of the whole batch.
TYPED_TEST(ProblemCnn, WorkersGradientsAreLayoutFree) {
  using E = TypeParam;
  RefShape s;
  const DenseDataset train = synthetic_dense(30, s.S * s.S, 10, 51), test = synthetic_dense(5, s.S * s.S, 10, 52);
  for (const DenseProducts products : product_paths()) {
    SCOPED_TRACE(to_string(products));
    auto one = make_cnn<E>(train, test, shape_of(s), WorkerRange{3, 0, 3}, products);
    auto r1 = make_cnn<E>(train, test, shape_of(s), WorkerRange{3, 1, 2}, products);
    const auto x = random_floats(one->dim(), -0.5, 0.5, 53);
    for (int w = 1; w < 3; ++w)
      for (Batch batch : {Batch{false, 5}, Batch{false, 130}, Batch{true, 0}}) {
        SCOPED_TRACE("worker " + std::to_string(w) + (batch.full ? " full" : " batch " + std::to_string(batch.size)));
        const auto g = sg_of(*one, x, w, 4, batch, 9);
        EXPECT_TRUE(bitwise_equal(g, sg_of(*r1, x, w, 4, batch, 9)));
        if (batch.size == 5 || batch.full) expect_mean_of_samples(g, samples_of(*r1, x, w, 4, batch, 9), 2e-5);
        if (batch.full) {  // the block's mean gradient: finite differences of the reference over its rows
          const std::uint64_t b0 = w * 10, b1 = b0 + 10;
          const auto block = fd_gradient([&](const std::vector<double>& z) { return ref_cnn(train, b0, b1, s, z); },
                                         widen(x), 1e-6);
          expect_close(g, block, 2e-5, "full batch");
        }
      }
  }
}

TEST(ProblemCnnEstimate, MemoryWithinTenPercentOfThePeak) {
  using E = Kokkos::DefaultExecutionSpace;
  const DenseDataset train = synthetic_dense(300, 28 * 28, 10, 61), test = synthetic_dense(100, 28 * 28, 10, 62);
  const CnnShape shape{};  // the seed's network
  std::int64_t peak = 0;
  {
    AllocationTracker tracker;
    auto p = make_cnn<E>(train, test, shape, WorkerRange{2, 0, 2});
    Vec<E> x("x", p->dim()), g("g", p->dim());
    const std::int64_t before = tracker.current();
    p->initial_model(x, 1);
    p->stochastic_gradient(x, 1, 0, Batch{false, 64}, 2, g);
    p->local_test_correct(x);
    p->local_loss_sum(x);
    peak = tracker.peak() - 2 * static_cast<std::int64_t>(p->dim() * sizeof(float));  // less x and g
    EXPECT_GE(before, 0);
  }
  const double estimate = static_cast<double>(cnn_bytes(shape, 300, 100));
  EXPECT_NEAR(static_cast<double>(peak), estimate, 0.10 * estimate) << "peak " << peak << " estimate " << estimate;
}

#if defined(KOKKOS_ENABLE_SERIAL) && defined(KOKKOS_ENABLE_OPENMP)
// fixed_order: the same bits on Serial and OpenMP (at this process's thread count); the library path too where
// both call the same host BLAS (as the mlp).
TEST(ProblemCnnDeterminism, SerialAndOpenMPBitwise) {
  RefShape s;
  const DenseDataset train = synthetic_dense(40, s.S * s.S, 10, 71), test = synthetic_dense(10, s.S * s.S, 10, 72);
  std::vector<DenseProducts> paths{DenseProducts::fixed_order};
#if defined(KOKKOSKERNELS_ENABLE_TPL_BLAS)
  paths.push_back(DenseProducts::library);
#endif
  for (const DenseProducts products : paths) {
    SCOPED_TRACE(to_string(products));
    auto a = make_cnn<Kokkos::Serial>(train, test, shape_of(s), WorkerRange{2, 0, 2}, products);
    auto b = make_cnn<Kokkos::OpenMP>(train, test, shape_of(s), WorkerRange{2, 0, 2}, products);
    const auto x = random_floats(a->dim(), -0.5, 0.5, 73);
    EXPECT_TRUE(bitwise_equal(sg_of(*a, x, 1, 3, Batch{false, 70}, 5), sg_of(*b, x, 1, 3, Batch{false, 70}, 5)));
    EXPECT_TRUE(bitwise_equal(local_grad_of(*a, x), local_grad_of(*b, x)));
    EXPECT_EQ(loss_of(*a, x), loss_of(*b, x));
  }
}
#endif

TEST(ProblemCnnEstimate, ShapeErrors) {
  using E = Kokkos::DefaultExecutionSpace;
  CnnShape shape;
  shape.same = false;
  const DenseDataset small = synthetic_dense(4, 12 * 12, 10, 81);  // valid: 12 -> 8 -> 4 -> 0
  EXPECT_THROW(make_cnn<E>(small, small, shape, WorkerRange{1, 0, 1}), UserError);
  const DenseDataset odd = synthetic_dense(4, 30, 10, 82);  // not a square image
  EXPECT_THROW(make_cnn<E>(odd, odd, shape, WorkerRange{1, 0, 1}), DataError);
}

}  // namespace
