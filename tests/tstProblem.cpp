// The problems of `terse run` (drivers/problems/terse_Problem.hpp) against plain double-precision scalar references of
// their objectives written in this file from the seed papers' formulas (seed 000 Sec. III, seed 001 Sec. 5.1,
// seed 004 eq. (7.1), and the documented one-hidden-layer MLP), on every backend:
//   * objectives against the references, gradients against central finite differences of the references;
//   * quadratic noise: mean x and variance noise_std^2 / B over many iterations, only coordinate 0 with `first`;
//   * Rosenbrock: zero gradient at (1, ..., 1), sample gradients unbiased for grad f / (d - 1), i uniform;
//   * logistic and mlp: a rank's local sums combine to the full objective for W = 3 workers on 1 or 2
//     simulated ranks, and a worker's stochastic gradient is bitwise the same whatever rank computes it;
//   * every stochastic gradient is the mean of the per-sample gradients of the same (k, w, B);
//   * Serial and OpenMP give bitwise equal results;
//   * Fashion-MNIST (skipped when the Debian files are absent): MLP finite differences, initial accuracy ~10 %.
//
// Statistical checks use fixed seeds and allow 5 standard errors (estimated from the samples themselves), so a
// correct implementation passes with overwhelming probability and a biased or mis-scaled one fails.
#include "terse_ProblemTestSupport.hpp"

#include <terse_Problem.hpp>
#include <terse_Random.hpp>

#include <KokkosKernels_config.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace terse;
using namespace terse::test;

const std::string tiny_svm = std::string(TERSE_TEST_DATA_DIR) + "/tiny_binary.svm";

// ------------------------------------------------------------------------------------------ references

double ref_quadratic(const std::vector<double>& x) {
  double s = 0;
  for (double v : x) s += 0.5 * v * v;
  return s;
}

/// seed 001 Sec. 5.1: f(x) = sum_{i=1}^{d-1} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2.
double ref_rosenbrock(const std::vector<double>& x) {
  double s = 0;
  for (std::size_t i = 0; i + 1 < x.size(); ++i)
    s += 100 * std::pow(x[i + 1] - x[i] * x[i], 2) + std::pow(1 - x[i], 2);
  return s;
}

/// grad f_i (i 0-based: the i-th term) by finite differences of the single term.
std::vector<double> ref_rosenbrock_term_grad(const std::vector<double>& x, std::size_t i) {
  const auto fi = [i](const std::vector<double>& z) {
    return 100 * std::pow(z[i + 1] - z[i] * z[i], 2) + std::pow(1 - z[i], 2);
  };
  return fd_gradient(fi, x, 1e-6);
}

/// seed 004 eq. (7.1) over rows [r0, r1): 1/n sum log(1 + exp(-y_i a_i^T x)) + lambda sum x_j^2 / (1 + x_j^2).
double ref_logistic(const SparseDataset& D, double lambda, const std::vector<double>& x, std::uint64_t r0,
                    std::uint64_t r1) {
  double s = 0;
  for (std::uint64_t r = r0; r < r1; ++r) {
    double m = 0;
    for (std::uint64_t e = D.row_ptr[r]; e < D.row_ptr[r + 1]; ++e) m += D.val[e] * x[D.col[e]];
    s += std::log(1 + std::exp(-D.labels[r] * m));
  }
  s /= static_cast<double>(r1 - r0);
  for (double v : x) s += lambda * v * v / (1 + v * v);
  return s;
}

/// The documented MLP over rows [r0, r1): x = W1 (H x P), b1 (H), W2 (K x H), b2 (K); mean cross-entropy.
double ref_mlp(const DenseDataset& D, std::uint64_t r0, std::uint64_t r1, int H, const std::vector<double>& x) {
  const std::size_t P = D.dim, K = D.num_classes;
  const std::size_t oB1 = H * P, oW2 = oB1 + H, oB2 = oW2 + K * H;
  double total = 0;
  std::vector<double> relu(H), o(K);
  for (std::uint64_t r = r0; r < r1; ++r) {
    const float* a = &D.features[r * P];
    for (int h = 0; h < H; ++h) {
      double z = x[oB1 + h];
      for (std::size_t p = 0; p < P; ++p) z += x[h * P + p] * a[p];
      relu[h] = std::max(z, 0.0);
    }
    double mx = -1e300;
    for (std::size_t k = 0; k < K; ++k) {
      o[k] = x[oB2 + k];
      for (int h = 0; h < H; ++h) o[k] += x[oW2 + k * H + h] * relu[h];
      mx = std::max(mx, o[k]);
    }
    double s = 0;
    for (std::size_t k = 0; k < K; ++k) s += std::exp(o[k] - mx);
    total += mx + std::log(s) - o[D.labels[r]];
  }
  return total / static_cast<double>(r1 - r0);
}

// ------------------------------------------------------------------------------------------ test data

SparseDataset tiny_data() {
  SparseDataset d = read_libsvm(tiny_svm);
  make_binary(d);  // 0/1 -> -1/+1
  return d;
}

SparseDataset synthetic_sparse(std::uint64_t n, std::uint64_t d, double density, unsigned seed) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(0, 1);
  SparseDataset s;
  s.dim = d;
  s.source = "synthetic sparse";
  for (std::uint64_t r = 0; r < n; ++r) {
    for (std::uint64_t j = 0; j < d; ++j)
      if (u(gen) < density) {
        s.col.push_back(static_cast<std::uint32_t>(j));
        s.val.push_back(static_cast<float>(2 * u(gen) - 1));
      }
    s.row_ptr.push_back(s.col.size());
    s.labels.push_back(u(gen) < 0.5 ? -1.0 : 1.0);
  }
  return s;
}


bool have_fashion_mnist() {
  for (const char* p : {fashion_mnist_test_images, fashion_mnist_test_labels})
    if (!std::filesystem::exists(p)) return false;
  return true;
}

// ============================================================================================ quadratic

template <class E>
class ProblemQuadratic : public ::testing::Test {};
TYPED_TEST_SUITE(ProblemQuadratic, ExecSpaces);

TYPED_TEST(ProblemQuadratic, LossAndGradient) {
  using E = TypeParam;
  const std::size_t d = 37;
  auto p = make_quadratic<E>(d, 1.5, 3.0, NoiseCoords::all, WorkerRange{1, 0, 1});
  EXPECT_EQ(p->dim(), d);
  EXPECT_EQ(p->rows(), 0u);
  EXPECT_EQ(p->kind(), ProblemKind::quadratic);
  const auto x = random_floats(d, -3, 3, 1);
  // Terms 0.5 x^2 of floats are exact in double; 37 double additions: relative error < 1e-14.
  EXPECT_NEAR(loss_of(*p, x), ref_quadratic(widen(x)), 1e-14 * ref_quadratic(widen(x)));
  const auto g = gradient_of(*p, x);
  EXPECT_TRUE(bitwise_equal(g, x)) << "grad 0.5 ||x||^2 = x exactly";
  // Against finite differences of the reference (exact up to 1e-9 for a quadratic with h = 1e-4).
  expect_close(g, fd_gradient(ref_quadratic, widen(x), 1e-4), 1e-8, "finite differences");

  // initial model: x0 everywhere.
  Vec<E> x0("x0", d);
  p->initial_model(x0, 7);
  for (float v : to_host(x0)) EXPECT_EQ(v, 1.5f);

  // A rank without worker 0 contributes nothing; finish_* keep the sum.
  auto other = make_quadratic<E>(d, 1.5, 3.0, NoiseCoords::all, WorkerRange{2, 1, 1});
  const auto xv = to_device<E>(x, "x");
  EXPECT_EQ(other->local_loss_sum(xv), 0.0);
  for (float v : local_grad_of(*other, x)) EXPECT_EQ(v, 0.0f);
  EXPECT_EQ(other->finish_loss(2.5, xv), 2.5);
  EXPECT_THROW(other->loss(xv), std::logic_error);
}

/// Mean and variance over K iterations of the stochastic gradient of worker w, per coordinate.
template <class E>
void sg_moments(Problem<E>& p, const std::vector<float>& x, int w, std::int64_t B, int K, std::vector<double>& mean,
                std::vector<double>& var, std::vector<std::vector<float>>* all = nullptr) {
  const std::size_t d = x.size();
  std::vector<std::vector<double>> rows;
  for (int k = 0; k < K; ++k) {
    const auto g = sg_of(p, x, w, k, Batch{false, B}, 2024);
    rows.push_back(widen(g));
    if (all) all->push_back(g);
  }
  std::vector<double> se;
  column_stats(rows, mean, se);
  var.assign(d, 0.0);
  for (std::size_t j = 0; j < d; ++j) var[j] = se[j] * se[j] * K;
}

TYPED_TEST(ProblemQuadratic, NoiseMeanAndVariance) {
  using E = TypeParam;
  const std::vector<float> x = {0.5f, -1.0f, 2.0f};
  const double sigma = 2.0;
  const int K = 2000;
  for (NoiseCoords coords : {NoiseCoords::all, NoiseCoords::first}) {
    auto p = make_quadratic<E>(3, 1.0, sigma, coords, WorkerRange{2, 0, 2});
    for (std::int64_t B : {1, 16}) {
      SCOPED_TRACE(std::string(to_string(coords)) + ", batch " + std::to_string(B));
      std::vector<double> mean, var;
      std::vector<std::vector<float>> all;
      sg_moments(*p, x, 1, B, K, mean, var, &all);
      const double v = sigma * sigma / B;  // noise variance of a batch mean
      for (std::size_t j = 0; j < 3; ++j) {
        if (coords == NoiseCoords::all || j == 0) {
          // Mean within 5 standard errors sqrt(v / K); sample variance within 5 of its standard errors
          // v sqrt(2 / (K - 1)) (Gaussian noise).
          EXPECT_NEAR(mean[j], x[j], 5 * std::sqrt(v / K)) << "coordinate " << j;
          EXPECT_NEAR(var[j], v, 5 * v * std::sqrt(2.0 / (K - 1))) << "coordinate " << j;
        } else {
          for (const auto& g : all) ASSERT_EQ(g[j], x[j]) << "coordinate " << j << " must be noise-free";
        }
      }
    }
  }
}

TYPED_TEST(ProblemQuadratic, BatchIsMeanOfSamplesAndKeyed) {
  using E = TypeParam;
  const std::size_t d = 50;
  auto p = make_quadratic<E>(d, 1.0, 3.0, NoiseCoords::all, WorkerRange{4, 1, 2});
  const auto x = random_floats(d, -2, 2, 3);
  const Batch batch{false, 7};
  const auto g = sg_of(*p, x, 2, 11, batch, 5);
  const auto G = samples_of(*p, x, 2, 11, batch, 5);
  ASSERT_EQ(G.size(), 7u);
  expect_mean_of_samples(g, G);
  // A pure function of (seed, k, w): repeatable, and different for another k, w or seed.
  EXPECT_TRUE(bitwise_equal(g, sg_of(*p, x, 2, 11, batch, 5)));
  EXPECT_FALSE(bitwise_equal(g, sg_of(*p, x, 2, 12, batch, 5)));
  EXPECT_FALSE(bitwise_equal(g, sg_of(*p, x, 1, 11, batch, 5)));
  EXPECT_FALSE(bitwise_equal(g, sg_of(*p, x, 2, 11, batch, 6)));
  // The same worker computed by a "rank" holding only it.
  auto alone = make_quadratic<E>(d, 1.0, 3.0, NoiseCoords::all, WorkerRange{4, 2, 1});
  EXPECT_TRUE(bitwise_equal(g, sg_of(*alone, x, 2, 11, batch, 5)));
  // `full`: the noise-free gradient x, one sample row.
  EXPECT_TRUE(bitwise_equal(sg_of(*p, x, 1, 3, Batch{true, 0}, 5), x));
  const auto Gf = samples_of(*p, x, 1, 3, Batch{true, 0}, 5);
  ASSERT_EQ(Gf.size(), 1u);
  expect_close(Gf[0], widen(x), 0.0, "full batch sample");
}

// =========================================================================================== rosenbrock

template <class E>
class ProblemRosenbrock : public ::testing::Test {};
TYPED_TEST_SUITE(ProblemRosenbrock, ExecSpaces);

TYPED_TEST(ProblemRosenbrock, MinimumLossAndGradient) {
  using E = TypeParam;
  const std::size_t d = 10;
  auto p = make_rosenbrock<E>(d, 0.0, 0.5, WorkerRange{1, 0, 1});
  EXPECT_DOUBLE_EQ(p->sample_gradient_scale(), 1.0 / 9);
  const std::vector<float> ones(d, 1.0f);
  EXPECT_EQ(loss_of(*p, ones), 0.0);
  for (float v : gradient_of(*p, ones)) EXPECT_EQ(v, 0.0f);
  EXPECT_GT(loss_of(*p, std::vector<float>(d, 0.0f)), 0.0);
  EXPECT_EQ(loss_of(*p, std::vector<float>(d, 0.0f)), 9.0);  // (1 - 0)^2 per term

  for (unsigned seed : {1u, 2u, 3u}) {
    const auto x = random_floats(d, -2, 2, seed);
    const double f = ref_rosenbrock(widen(x));
    EXPECT_NEAR(loss_of(*p, x), f, 1e-13 * f);
    // FD with h = 1e-6: truncation ~ h^2 f''' ~ 1e-9, cancellation ~ 1e-16 f / h ~ 1e-8; the kernel's float
    // output adds 6e-8 relative.
    expect_close(gradient_of(*p, x), fd_gradient(ref_rosenbrock, widen(x), 1e-6), 2e-6, "finite differences");
  }
}

TYPED_TEST(ProblemRosenbrock, SampleGradientsAreUnbiased) {
  using E = TypeParam;
  const std::size_t d = 6;
  const auto x = random_floats(d, -1.5, 1.5, 9);
  const auto full = fd_gradient(ref_rosenbrock, widen(x), 1e-6);
  std::vector<double> expected(d);
  for (std::size_t j = 0; j < d; ++j) expected[j] = full[j] / (d - 1);  // E[grad f_i] with i uniform

  // With noise: mean of 20000 samples within 5 standard errors of grad f / (d - 1).
  auto p = make_rosenbrock<E>(d, 0.0, 0.5, WorkerRange{3, 0, 3});
  const std::int64_t B = 20000;
  const auto G = samples_of(*p, x, 2, 4, Batch{false, B}, 77);
  std::vector<double> mean, se;
  column_stats(G, mean, se);
  for (std::size_t j = 0; j < d; ++j) EXPECT_NEAR(mean[j], expected[j], 5 * se[j] + 1e-6) << "coordinate " << j;
  expect_mean_of_samples(sg_of(*p, x, 2, 4, Batch{false, B}, 77), G);

  // Without noise every sample is exactly one grad f_i, and i is uniform over the d - 1 terms.
  auto quiet = make_rosenbrock<E>(d, 0.0, 0.0, WorkerRange{3, 0, 3});
  std::vector<std::vector<double>> terms;
  for (std::size_t i = 0; i + 1 < d; ++i) terms.push_back(ref_rosenbrock_term_grad(widen(x), i));
  std::vector<int> count(d - 1, 0);
  for (const auto& row : samples_of(*quiet, x, 0, 4, Batch{false, B}, 77)) {
    int found = -1;
    for (std::size_t i = 0; i + 1 < d && found < 0; ++i) {
      bool same = true;
      for (std::size_t j = 0; j < d; ++j) same = same && std::fabs(row[j] - terms[i][j]) <= 1e-5 * (1 + std::fabs(terms[i][j]));
      if (same) found = static_cast<int>(i);
    }
    ASSERT_GE(found, 0) << "a noise-free sample gradient is no grad f_i";
    ++count[found];
  }
  const double pr = 1.0 / (d - 1), sd = std::sqrt(B * pr * (1 - pr));
  for (std::size_t i = 0; i + 1 < d; ++i) EXPECT_NEAR(count[i], B * pr, 5 * sd) << "term " << i;

  // `full`: the mean over all terms, no noise; its per-sample rows are grad f_i in order.
  expect_close(sg_of(*p, x, 1, 0, Batch{true, 0}, 77), expected, 2e-6, "full batch");
  const auto Gf = samples_of(*p, x, 1, 0, Batch{true, 0}, 77);
  ASSERT_EQ(Gf.size(), d - 1);
  for (std::size_t i = 0; i + 1 < d; ++i) expect_close(Gf[i], terms[i], 2e-6, "full batch sample");
}

// ============================================================================================= logistic

template <class E>
class ProblemLogistic : public ::testing::Test {};
TYPED_TEST_SUITE(ProblemLogistic, ExecSpaces);

TYPED_TEST(ProblemLogistic, TinyAgainstReference) {
  using E = TypeParam;
  const SparseDataset D = tiny_data();
  for (double lambda : {0.1, 0.7}) {
    ProblemConfig cfg;
    cfg.kind = ProblemKind::logistic;
    cfg.data = tiny_svm;
    cfg.lambda = lambda;
    auto p = make_problem<E>(cfg, WorkerRange{1, 0, 1});
    ASSERT_EQ(p->dim(), 4u);
    ASSERT_EQ(p->rows(), 8u);
    Vec<E> x0("x0", 4);
    p->initial_model(x0, 1);
    for (float v : to_host(x0)) EXPECT_EQ(v, 0.0f);
    EXPECT_NEAR(p->loss(x0), std::log(2.0), 1e-15);
    for (unsigned seed : {1u, 2u, 3u}) {
      const auto x = random_floats(4, -2, 2, seed);
      const auto f = [&](const std::vector<double>& z) { return ref_logistic(D, lambda, z, 0, 8); };
      // Margins, losses and the sum run in double from the same floats: agreement to rounding.
      EXPECT_NEAR(loss_of(*p, x), f(widen(x)), 1e-13);
      expect_close(gradient_of(*p, x), fd_gradient(f, widen(x), 1e-6), 1e-6, "finite differences");
    }
  }
}

TYPED_TEST(ProblemLogistic, RanksCombineAndWorkersAreLayoutFree) {
  using E = TypeParam;
  const SparseDataset D = tiny_data();
  const double lambda = 0.2;
  auto one = make_logistic<E>(D, lambda, WorkerRange{3, 0, 3});
  auto r0 = make_logistic<E>(D, lambda, WorkerRange{3, 0, 2});
  auto r1 = make_logistic<E>(D, lambda, WorkerRange{3, 2, 1});
  const auto x = random_floats(4, -1, 1, 4);
  const auto xv = to_device<E>(x, "x");
  const double f = ref_logistic(D, lambda, widen(x), 0, 8);

  // Loss: the sum of the two ranks' local sums, finished, equals the one-rank loss and the reference.
  const double split = r0->finish_loss(r0->local_loss_sum(xv) + r1->local_loss_sum(xv), xv);
  EXPECT_NEAR(split, f, 1e-13);
  EXPECT_NEAR(one->loss(xv), f, 1e-13);
  // Gradient: float sums of the local gradients (as MPI_Allreduce of floats), finished.
  const auto g0 = local_grad_of(*r0, x), g1 = local_grad_of(*r1, x);
  std::vector<float> sum(4);
  for (int j = 0; j < 4; ++j) sum[j] = g0[j] + g1[j];
  Vec<E> gv = to_device<E>(sum, "g");
  r1->finish_grad(gv, xv);
  const auto fd = fd_gradient([&](const std::vector<double>& z) { return ref_logistic(D, lambda, z, 0, 8); },
                              widen(x), 1e-6);
  expect_close(to_host(gv), fd, 1e-6, "two ranks");
  expect_close(gradient_of(*one, x), fd, 1e-6, "one rank");

  // Blocks of W = 3 over 8 rows: 0-1, 2-4, 5-7.
  EXPECT_EQ(one->worker_rows(0), 2u);
  EXPECT_EQ(one->worker_rows(1), 3u);
  EXPECT_EQ(r1->worker_rows(2), 3u);
  EXPECT_THROW(r1->worker_rows(1), std::out_of_range);

  // A worker's stochastic gradients and samples are the same bits on either layout.
  for (int w = 0; w < 3; ++w) {
    Problem<E>& mine = w < 2 ? *r0 : *r1;
    for (Batch batch : {Batch{false, 5}, Batch{false, 100}, Batch{true, 0}}) {
      SCOPED_TRACE("worker " + std::to_string(w) + (batch.full ? " full" : " batch " + std::to_string(batch.size)));
      const auto g = sg_of(*one, x, w, 3, batch, 8);
      EXPECT_TRUE(bitwise_equal(g, sg_of(mine, x, w, 3, batch, 8)));
      const auto G = samples_of(*one, x, w, 3, batch, 8);
      const auto Gm = samples_of(mine, x, w, 3, batch, 8);
      EXPECT_EQ(G, Gm);
      expect_mean_of_samples(g, G);
    }
  }
}

TYPED_TEST(ProblemLogistic, WorkerBatches) {
  using E = TypeParam;
  const SparseDataset D = tiny_data();
  const double lambda = 0.3;
  auto p = make_logistic<E>(D, lambda, WorkerRange{3, 0, 3});
  const auto x = random_floats(4, -1, 1, 5);
  const std::uint64_t begin[4] = {0, 2, 5, 8};
  for (int w = 0; w < 3; ++w) {
    SCOPED_TRACE("worker " + std::to_string(w));
    const std::uint64_t r0 = begin[w], r1 = begin[w + 1];
    // `full`: the gradient of the block's objective, eq. (7.1) over the block's rows.
    const auto block = fd_gradient([&](const std::vector<double>& z) { return ref_logistic(D, lambda, z, r0, r1); },
                                   widen(x), 1e-6);
    expect_close(sg_of(*p, x, w, 0, Batch{true, 0}, 1), block, 1e-6, "full batch");
    // Its per-sample rows: the gradient of each row's objective (loss + regulariser), in block order.
    std::vector<std::vector<double>> row_grads;
    for (std::uint64_t r = r0; r < r1; ++r)
      row_grads.push_back(fd_gradient([&](const std::vector<double>& z) { return ref_logistic(D, lambda, z, r, r + 1); },
                                      widen(x), 1e-6));
    const auto Gf = samples_of(*p, x, w, 0, Batch{true, 0}, 1);
    ASSERT_EQ(Gf.size(), r1 - r0);
    for (std::size_t b = 0; b < Gf.size(); ++b) expect_close(Gf[b], row_grads[b], 1e-6, "full batch sample");

    // Sampled: every sample is a row of the block, rows are uniform, and the mean is the block gradient.
    const std::int64_t B = 6000;
    const auto G = samples_of(*p, x, w, 9, Batch{false, B}, 1);
    std::vector<int> count(r1 - r0, 0);
    for (const auto& row : G) {
      int found = -1;
      for (std::size_t i = 0; i < row_grads.size() && found < 0; ++i) {
        bool same = true;
        for (int j = 0; j < 4; ++j) same = same && std::fabs(row[j] - row_grads[i][j]) <= 1e-6 * (1 + std::fabs(row_grads[i][j]));
        if (same) found = static_cast<int>(i);
      }
      ASSERT_GE(found, 0) << "a sample gradient is no row of worker " << w << "'s block";
      ++count[found];
    }
    const double pr = 1.0 / (r1 - r0), sd = std::sqrt(B * pr * (1 - pr));
    for (std::size_t i = 0; i < count.size(); ++i) EXPECT_NEAR(count[i], B * pr, 5 * sd) << "row " << r0 + i;
    std::vector<double> mean, se;
    column_stats(G, mean, se);
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(mean[j], block[j], 5 * se[j] + 1e-6) << "coordinate " << j;
    expect_mean_of_samples(sg_of(*p, x, w, 9, Batch{false, B}, 1), G);
  }
}

TYPED_TEST(ProblemLogistic, LargerSparseData) {
  using E = TypeParam;
  // 300 rows, 70 features: the chunked batch path (several chunks for B = 150) and the per-worker CSC copies.
  const SparseDataset D = synthetic_sparse(300, 70, 0.2, 6);
  const double lambda = 0.05;
  auto one = make_logistic<E>(D, lambda, WorkerRange{3, 0, 3});
  auto r1 = make_logistic<E>(D, lambda, WorkerRange{3, 1, 2});
  const auto x = random_floats(70, -0.5, 0.5, 7);
  const auto f = [&](const std::vector<double>& z) { return ref_logistic(D, lambda, z, 0, 300); };
  EXPECT_NEAR(loss_of(*one, x), f(widen(x)), 1e-13);
  expect_close(gradient_of(*one, x), fd_gradient(f, widen(x), 1e-6), 1e-6, "finite differences");
  for (int w : {1, 2}) {
    const Batch batch{false, 150};
    const auto g = sg_of(*one, x, w, 2, batch, 3);
    EXPECT_TRUE(bitwise_equal(g, sg_of(*r1, x, w, 2, batch, 3)));
    expect_mean_of_samples(g, samples_of(*r1, x, w, 2, batch, 3));
    const auto full = fd_gradient([&](const std::vector<double>& z) { return ref_logistic(D, lambda, z, w * 100, w * 100 + 100); },
                                  widen(x), 1e-6);
    expect_close(sg_of(*r1, x, w, 0, Batch{true, 0}, 3), full, 1e-6, "full batch");
  }
}

// ================================================================================================== mlp

template <class E>
class ProblemMlp : public ::testing::Test {};
TYPED_TEST_SUITE(ProblemMlp, ExecSpaces);

/// The loss's relative tolerance against the double reference: the fixed-order kernels sum in double; the
/// library path multiplies in float (784- or 20-term dot products, each rounding 2^-24: measured 1e-9).
double mlp_loss_tolerance(DenseProducts products) { return products == DenseProducts::fixed_order ? 1e-13 : 1e-6; }

TYPED_TEST(ProblemMlp, FiniteDifferencesAndLayouts) {
  using E = TypeParam;
  for (const DenseProducts products : {DenseProducts::fixed_order, DenseProducts::library}) {
    SCOPED_TRACE(std::string("products: ") + to_string(products));
    const int H = 5;
    // 20 pixels: the host's 16-pixel groups of the W1 gradient get one full group and a partial one.
    const DenseDataset train = synthetic_dense(40, 20, 10, 1), test = synthetic_dense(25, 20, 10, 2);
    auto one = make_mlp<E>(train, test, H, WorkerRange{3, 0, 3}, products);
    const std::size_t d = 20 * H + H + 10 * H + 10;
    ASSERT_EQ(one->dim(), d);
    EXPECT_EQ(one->rows(), 40u);
    EXPECT_EQ(one->test_rows(), 25u);
    const auto x = random_floats(d, -0.8, 0.8, 3);
    const auto f = [&](const std::vector<double>& z) { return ref_mlp(train, 0, 40, H, z); };
    EXPECT_NEAR(loss_of(*one, x), f(widen(x)), mlp_loss_tolerance(products) * f(widen(x)));
    // Every parameter: FD with h = 1e-6 (no ReLU kink within h for these random values; error ~1e-9).
    expect_close(gradient_of(*one, x), fd_gradient(f, widen(x), 1e-6), 2e-6, "finite differences");

    // Two simulated ranks: worker 0, workers 1-2.
    auto r0 = make_mlp<E>(train, test, H, WorkerRange{3, 0, 1}, products);
    auto r1 = make_mlp<E>(train, test, H, WorkerRange{3, 1, 2}, products);
    const auto xv = to_device<E>(x, "x");
    EXPECT_NEAR(r0->finish_loss(r0->local_loss_sum(xv) + r1->local_loss_sum(xv), xv), f(widen(x)),
                mlp_loss_tolerance(products) * f(widen(x)));
    const auto g0 = local_grad_of(*r0, x), g1 = local_grad_of(*r1, x);
    std::vector<float> sum(d);
    for (std::size_t j = 0; j < d; ++j) sum[j] = g0[j] + g1[j];
    Vec<E> gv = to_device<E>(sum, "g");
    r0->finish_grad(gv, xv);
    expect_close(to_host(gv), gradient_of(*one, x), 1e-6, "two ranks");
    // Test accuracy: the ranks' counts add up to the one-rank count.
    const auto c = one->local_test_correct(xv);
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(*c, *r0->local_test_correct(xv) + *r1->local_test_correct(xv));
    EXPECT_DOUBLE_EQ(*one->test_accuracy(xv), *c / 25.0);

    // Workers' stochastic gradients: layout-free bits, the mean of their samples; full = block gradient.
    const std::uint64_t begin[4] = {0, 13, 26, 40};
    for (int w = 0; w < 3; ++w) {
      Problem<E>& mine = w == 0 ? *r0 : *r1;
      for (Batch batch : {Batch{false, 3}, Batch{false, 300}, Batch{true, 0}}) {
        SCOPED_TRACE("worker " + std::to_string(w) + (batch.full ? " full" : " batch " + std::to_string(batch.size)));
        const auto g = sg_of(*one, x, w, 5, batch, 4);
        EXPECT_TRUE(bitwise_equal(g, sg_of(mine, x, w, 5, batch, 4)));
        expect_mean_of_samples(g, samples_of(mine, x, w, 5, batch, 4),
                               products == DenseProducts::library ? 2e-5 : 4e-7);
        if (batch.full) {
          const auto block = fd_gradient([&](const std::vector<double>& z) { return ref_mlp(train, begin[w], begin[w + 1], H, z); },
                                         widen(x), 1e-6);
          expect_close(g, block, 2e-6, "full batch");
        }
      }
    }
  }
}

TYPED_TEST(ProblemMlp, SeededInitialModel) {
  using E = TypeParam;
  const int H = 7;
  const DenseDataset train = synthetic_dense(20, 16, 10, 1);
  auto p = make_mlp<E>(train, train, H, WorkerRange{1, 0, 1});
  const std::size_t d = p->dim(), oB1 = 16 * H, oW2 = oB1 + H, oB2 = oW2 + 10 * H;
  Vec<E> a("a", d), b("b", d), c("c", d);
  p->initial_model(a, 1);
  p->initial_model(b, 1);
  p->initial_model(c, 2);
  const auto ha = to_host(a), hb = to_host(b), hc = to_host(c);
  EXPECT_TRUE(bitwise_equal(ha, hb));
  EXPECT_FALSE(bitwise_equal(ha, hc));
  double s1 = 0, s2 = 0;
  for (std::size_t o = 0; o < d; ++o) {
    if (o < oB1) {
      EXPECT_LE(std::fabs(ha[o]), 0.25f);  // U(-1/sqrt(16), 1/sqrt(16))
      s1 += ha[o] * ha[o];
    } else if (o >= oW2 && o < oB2) {
      EXPECT_LE(std::fabs(ha[o]), 1 / std::sqrt(7.0f));
      s2 += ha[o] * ha[o];
    } else {
      EXPECT_EQ(ha[o], 0.0f) << "bias " << o;
    }
  }
  // Uniform(-s, s) has variance s^2 / 3: the mean squares of 112 and 70 draws are within 40 % of it.
  EXPECT_NEAR(s1 / oB1, 1.0 / 16 / 3, 0.4 / 16 / 3);
  EXPECT_NEAR(s2 / (10 * H), 1.0 / 7 / 3, 0.4 / 7 / 3);
}

// The monitor's loss estimate (local_loss_sample) against a scalar reference: each worker's S rows drawn as
// documented (CounterRng stream monitor_sample, key, worker, index b; uniform over its block), the loss of each
// from ref_mlp, the mean weighted by n_w / N and the variance s_w^2 / S weighted by (n_w / N)^2, summed over
// two simulated ranks. Then: the same key gives the same bits, another key other rows, and with many rows the
// estimate is within 4 standard errors of the full loss.
TYPED_TEST(ProblemMlp, LossSampleMatchesTheScalarReference) {
  using E = TypeParam;
  const int H = 6;
  const DenseDataset train = synthetic_dense(50, 20, 10, 11), test = synthetic_dense(10, 20, 10, 12);
  const auto x = random_floats(20 * H + H + 10 * H + 10, -0.8, 0.8, 13);
  const std::uint64_t begin[4] = {0, 16, 33, 50};  // row_block(50, 3, w)
  for (const DenseProducts products : {DenseProducts::fixed_order, DenseProducts::library}) {
    SCOPED_TRACE(std::string("products: ") + to_string(products));
    auto r0 = make_mlp<E>(train, test, H, WorkerRange{3, 0, 1}, products);
    auto r1 = make_mlp<E>(train, test, H, WorkerRange{3, 1, 2}, products);
    const auto xv = to_device<E>(x, "x");
    const std::uint64_t S = 7, key = 123, seed = 9;
    const auto a = r0->local_loss_sample(xv, S, key, seed), b = r1->local_loss_sample(xv, S, key, seed);
    ASSERT_TRUE(a.has_value() && b.has_value());
    EXPECT_EQ(a->rows, S);
    EXPECT_EQ(b->rows, 2 * S);
    double mean = 0, variance = 0;
    const CounterRng rng{seed, static_cast<std::uint32_t>(RandomStream::monitor_sample)};
    for (int w = 0; w < 3; ++w) {
      const std::uint64_t n = begin[w + 1] - begin[w];
      std::vector<double> l(S);
      for (std::uint64_t q = 0; q < S; ++q) {
        const std::uint64_t r = begin[w] + rng.below(static_cast<std::uint32_t>(n), key, static_cast<std::uint32_t>(w), q);
        l[q] = ref_mlp(train, r, r + 1, H, widen(x));
      }
      double m = 0, sq = 0;
      for (double v : l) m += v;
      m /= S;
      for (double v : l) sq += (v - m) * (v - m);
      const double share = static_cast<double>(n) / 50.0;
      mean += share * m;
      variance += share * share * sq / (S - 1) / S;
    }
    const double tol = mlp_loss_tolerance(products);
    EXPECT_NEAR(a->mean + b->mean, mean, tol * mean);
    EXPECT_NEAR(a->variance + b->variance, variance, 1e3 * tol * variance + 1e-15);
    EXPECT_GT(variance, 0.0);
    // Deterministic in (seed, key); another key draws other rows.
    const auto again = r0->local_loss_sample(xv, S, key, seed), other = r0->local_loss_sample(xv, S, key + 1, seed);
    EXPECT_EQ(std::memcmp(&again->mean, &a->mean, sizeof(double)), 0);
    EXPECT_NE(other->mean, a->mean);
    // Many rows: within 4 standard errors of the full objective (a biased estimate fails this).
    auto all = make_mlp<E>(train, test, H, WorkerRange{3, 0, 3}, products);
    const auto big = all->local_loss_sample(xv, 4000, 5, seed);
    const double full = ref_mlp(train, 0, 50, H, widen(x));
    EXPECT_NEAR(all->finish_loss(50.0 * big->mean, xv), full, 4 * std::sqrt(big->variance));
    EXPECT_LT(std::sqrt(big->variance), 0.05 * full);
  }
}

/// Fashion-MNIST's test file (10000 images, the smallest): rows 0-599 train, 600-2599 test.
struct FashionSubset {
  DenseDataset train, test;
  static const FashionSubset& get() {
    static const FashionSubset s = [] {
      const DenseDataset all = fashion_mnist_multiclass(fashion_mnist_test_images, fashion_mnist_test_labels);
      return FashionSubset{slice_rows(all, RowRange{0, 600}), slice_rows(all, RowRange{600, 2600})};
    }();
    return s;
  }
};

TYPED_TEST(ProblemMlp, FashionMnist) {
  using E = TypeParam;
  if (!have_fashion_mnist()) GTEST_SKIP() << fashion_mnist_test_images << " is absent (dataset-fashion-mnist)";
  const auto& fm = FashionSubset::get();
  for (const DenseProducts products : {DenseProducts::fixed_order, DenseProducts::library}) {
    SCOPED_TRACE(std::string("products: ") + to_string(products));
    const int H = 8;
    auto p = make_mlp<E>(fm.train, fm.test, H, WorkerRange{2, 0, 2}, products);
    const std::size_t P = 784, d = P * H + H + 10 * H + 10;
    ASSERT_EQ(p->dim(), d);
    Vec<E> xv("x", d);
    p->initial_model(xv, 3);
    // An untrained network: accuracy near chance (10 classes, about 200 test images each).
    const double acc = *p->test_accuracy(xv);
    EXPECT_GT(acc, 0.02);
    EXPECT_LT(acc, 0.25);
    const auto x0 = to_host(xv);
    // Initial loss near log(10) (small weights, near-uniform softmax).
    EXPECT_NEAR(p->loss(xv), std::log(10.0), 0.3);

    // Finite differences of a few parameters of each layer at a perturbed point (biases nonzero).
    std::vector<float> x = x0;
    std::mt19937_64 gen(4);
    std::normal_distribution<double> n01(0, 0.05);
    for (auto& v : x) v = static_cast<float>(v + n01(gen));
    const std::size_t oB1 = P * H, oW2 = oB1 + H, oB2 = oW2 + 10 * H;
    const std::vector<std::size_t> coords = {2 * P + 300, 5 * P + 407, 7 * P + 520, oB1 + 1, oB1 + 6,
                                             oW2 + 3,     oW2 + 44,    oW2 + 79,    oB2 + 0, oB2 + 9};
    const auto f = [&](const std::vector<double>& z) { return ref_mlp(fm.train, 0, 600, H, z); };
    const auto fd = fd_gradient(f, widen(x), 1e-6, coords);
    const auto g = gradient_of(*p, x);
    for (std::size_t j : coords) EXPECT_NEAR(g[j], fd[j], 2e-6 * (1 + std::fabs(fd[j]))) << "parameter " << j;
    EXPECT_NEAR(loss_of(*p, x), f(widen(x)), std::max(1e-12, mlp_loss_tolerance(products)) * f(widen(x)));
  }
}

// ====================================================================================== determinism

#if defined(KOKKOS_ENABLE_SERIAL) && defined(KOKKOS_ENABLE_OPENMP)
/// Everything a run computes, as bits.
template <class E>
struct Outputs {
  double loss = 0;
  std::vector<float> grad, sampled, full;
  std::vector<std::vector<double>> samples;
  std::optional<std::uint64_t> correct;
};

template <class E>
Outputs<E> outputs(Problem<E>& p, const std::vector<float>& x, int w) {
  Outputs<E> o;
  const auto xv = to_device<E>(x, "x");
  o.loss = p.local_loss_sum(xv);
  o.grad = local_grad_of(p, x);
  o.sampled = sg_of(p, x, w, 17, Batch{false, 40}, 99);
  o.full = sg_of(p, x, w, 17, Batch{true, 0}, 99);
  o.samples = samples_of(p, x, w, 17, Batch{false, 40}, 99);
  o.correct = p.local_test_correct(xv);
  return o;
}

template <class A, class B>
void expect_same_bits(const Outputs<A>& a, const Outputs<B>& b, const char* what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(std::memcmp(&a.loss, &b.loss, sizeof(double)), 0) << a.loss << " vs " << b.loss;
  EXPECT_TRUE(bitwise_equal(a.grad, b.grad));
  EXPECT_TRUE(bitwise_equal(a.sampled, b.sampled));
  EXPECT_TRUE(bitwise_equal(a.full, b.full));
  EXPECT_EQ(a.samples, b.samples);
  EXPECT_EQ(a.correct, b.correct);
}

TEST(ProblemDeterminism, SerialAndOpenMPBitwise) {
  using S = Kokkos::Serial;
  using O = Kokkos::OpenMP;
  if (compat::concurrency(O()) < 2) std::printf("note: OpenMP runs %d thread(s)\n", compat::concurrency(O()));
  const WorkerRange wr{4, 1, 2};
  {
    const auto x = random_floats(3000, -1, 1, 1);
    auto s = make_quadratic<S>(3000, 1, 2.0, NoiseCoords::all, WorkerRange{4, 0, 2});
    auto o = make_quadratic<O>(3000, 1, 2.0, NoiseCoords::all, WorkerRange{4, 0, 2});
    expect_same_bits(outputs(*s, x, 1), outputs(*o, x, 1), "quadratic");
  }
  {
    const auto x = random_floats(500, -2, 2, 2);
    auto s = make_rosenbrock<S>(500, 0, 0.3, WorkerRange{4, 0, 2});
    auto o = make_rosenbrock<O>(500, 0, 0.3, WorkerRange{4, 0, 2});
    expect_same_bits(outputs(*s, x, 1), outputs(*o, x, 1), "rosenbrock");
  }
  {
    const SparseDataset D = synthetic_sparse(700, 300, 0.1, 3);
    const auto x = random_floats(300, -1, 1, 4);
    auto s = make_logistic<S>(D, 0.1, wr);
    auto o = make_logistic<O>(D, 0.1, wr);
    expect_same_bits(outputs(*s, x, 2), outputs(*o, x, 2), "logistic");
  }
  // The mlp's fixed-order kernels are bitwise equal by construction. Its library path hands the same products to
  // the same host BLAS from either space (at the same BLAS thread count): equal too, where there is a host BLAS
  // (Kokkos Kernels' own host kernels differ between Serial and OpenMP).
  std::vector<DenseProducts> paths{DenseProducts::fixed_order};
#if defined(KOKKOSKERNELS_ENABLE_TPL_BLAS)
  paths.push_back(DenseProducts::library);
#endif
  for (const DenseProducts products : paths) {
    const DenseDataset train = synthetic_dense(600, 30, 10, 5), test = synthetic_dense(300, 30, 10, 6);
    auto s = make_mlp<S>(train, test, 16, wr, products);
    auto o = make_mlp<O>(train, test, 16, wr, products);
    const auto x = random_floats(s->dim(), -0.5, 0.5, 7);
    expect_same_bits(outputs(*s, x, 1), outputs(*o, x, 1), to_string(products));
  }
}
#endif

// ========================================================================================== factory

TEST(ProblemFactory, FromDeckSections) {
  using E = Kokkos::DefaultExecutionSpace;
  ProblemConfig q;
  q.kind = ProblemKind::quadratic;
  q.dim = 12;
  q.x0 = -0.25;
  auto pq = make_problem<E>(q, WorkerRange{1, 0, 1});
  EXPECT_EQ(pq->dim(), 12u);
  EXPECT_EQ(pq->batch_rows(0, Batch{false, 9}), 9);
  EXPECT_EQ(pq->batch_rows(0, Batch{true, 0}), 1);
  Vec<E> x("x", 12);
  pq->initial_model(x, 0);
  for (float v : to_host(x)) EXPECT_EQ(v, -0.25f);
  EXPECT_NE(pq->description().find("quadratic"), std::string::npos);

  ProblemConfig r;
  r.kind = ProblemKind::rosenbrock;
  r.x0 = 0.0;
  auto pr = make_problem<E>(r, WorkerRange{2, 1, 1});
  EXPECT_EQ(pr->dim(), 10u);  // seed 001 Sec. 5.1: d = 10
  EXPECT_EQ(pr->batch_rows(1, Batch{true, 0}), 9);

  // logistic with dim above the largest index: zero features padded; their gradient is the regulariser's.
  ProblemConfig l;
  l.kind = ProblemKind::logistic;
  l.data = tiny_svm;
  l.dim = 6;
  l.lambda = 0.5;
  auto pl = make_problem<E>(l, WorkerRange{2, 0, 2});
  EXPECT_EQ(pl->dim(), 6u);
  const std::vector<float> xl = {0.1f, -0.2f, 0.3f, 0.4f, 0.5f, -1.0f};
  const auto g = gradient_of(*pl, xl);
  EXPECT_NEAR(g[4], 0.5 * 2 * 0.5 / std::pow(1 + 0.25, 2), 1e-7);
  EXPECT_NEAR(g[5], 0.5 * 2 * -1.0 / std::pow(1 + 1.0, 2), 1e-7);
  ProblemConfig small = l;
  small.dim = 3;  // the file uses feature 4
  EXPECT_THROW(make_problem<E>(small, WorkerRange{1, 0, 1}), DataError);

  if (have_fashion_mnist()) {
    // The test file as training set too (the smallest file): mlp and logistic with two classes.
    ProblemConfig m;
    m.kind = ProblemKind::mlp;
    m.hidden = 4;
    m.train_images = fashion_mnist_test_images;
    m.train_labels = fashion_mnist_test_labels;
    auto pm = make_problem<E>(m, WorkerRange{4, 1, 2});
    EXPECT_EQ(pm->dim(), 784u * 4 + 4 + 40 + 10);
    EXPECT_EQ(pm->rows(), 10000u);
    EXPECT_EQ(pm->test_rows(), 10000u);
    EXPECT_EQ(pm->worker_rows(2), 2500u);
    ProblemConfig lf;
    lf.kind = ProblemKind::logistic;
    lf.data_format = DataFormat::fashion_mnist;
    lf.train_images = fashion_mnist_test_images;
    lf.train_labels = fashion_mnist_test_labels;
    auto plf = make_problem<E>(lf, WorkerRange{1, 0, 1});
    EXPECT_EQ(plf->dim(), 784u);
    EXPECT_EQ(plf->rows(), 2000u);  // 1000 images per class
    lf.dim = 100;
    EXPECT_THROW(make_problem<E>(lf, WorkerRange{1, 0, 1}), UserError);
  }
}

TEST(ProblemFactory, Errors) {
  using E = Kokkos::DefaultExecutionSpace;
  const SparseDataset D = tiny_data();
  EXPECT_THROW(make_logistic<E>(D, 0.1, WorkerRange{9, 0, 9}), DataError);  // 9 workers, 8 rows
  EXPECT_THROW(make_logistic<E>(D, 0.1, WorkerRange{3, 2, 2}), std::invalid_argument);
  EXPECT_THROW(make_quadratic<E>(0, 1, 0, NoiseCoords::all, WorkerRange{1, 0, 1}), std::invalid_argument);
  EXPECT_THROW(make_rosenbrock<E>(1, 1, 0, WorkerRange{1, 0, 1}), std::invalid_argument);
  auto p = make_logistic<E>(D, 0.1, WorkerRange{3, 1, 1});
  Vec<E> x("x", 4), g("g", 4), wrong("wrong", 5);
  EXPECT_THROW(p->stochastic_gradient(x, 0, 0, Batch{false, 1}, 0, g), std::out_of_range);
  EXPECT_THROW(p->stochastic_gradient(x, 1, 0, Batch{false, 0}, 0, g), std::invalid_argument);
  EXPECT_THROW(p->stochastic_gradient(wrong, 1, 0, Batch{false, 1}, 0, g), std::invalid_argument);
  Mat<E> G("G", 3, 4);
  EXPECT_THROW(p->per_sample_gradients(x, 1, 0, Batch{false, 2}, 0, G), std::invalid_argument);
  EXPECT_NO_THROW(p->per_sample_gradients(x, 1, 0, Batch{true, 0}, 0, G));  // block 1: rows 2-4
  EXPECT_THROW(p->loss(x), std::logic_error);
  EXPECT_FALSE(p->local_test_correct(x).has_value());

  const WorkerRange wr = workers_of_rank(2, 3, 4);
  EXPECT_EQ(wr.total, 12);
  EXPECT_EQ(wr.first, 8);
  EXPECT_EQ(wr.count, 4);
  EXPECT_THROW(workers_of_rank(3, 3, 1), std::invalid_argument);
}

}  // namespace
