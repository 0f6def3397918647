// terse_bench_dense: the mlp's dense layers against the host BLAS's sgemm on the same shapes, in one run.
//
//   terse_bench_dense [--rows N] [--hidden H] [--repeats R] [--batch B] [--cnn-batch B] [--no-cnn] [--json FILE]
//
// Rows: the Fashion-MNIST training images (dataset-fashion-mnist; a synthetic set of the same shape where the
// files are absent), P = 784 pixels, H hidden units (64), 10 classes, all on this process (one worker).
// Cases, each timed R times after one warm-up, the median reported:
//   sgemm forward    Z = A W1^T (N x 784 times 784 x H), the reference's BLAS called directly (sgemm_)
//   sgemm backward   G1 = D1^T A (H x N times N x 784)
//   gemm forward     the same product through KokkosBlas::gemm (what terse calls)
//   gemm backward    likewise
//   mlp loss         Problem::local_loss_sum over all N rows (the forward pass: chunked products, bias, ReLU,
//                    softmax, per-row losses), problem.products library and fixed_order
//   mlp gradient     Problem::local_grad_sum (forward and backward: the full gradient, the monitor's full row)
//   mlp batch        Problem::stochastic_gradient of one worker's batch of B rows (the training step), against
//                    sgemm's two products on B rows
// With --cnn (the default; --no-cnn skips it), seed 000's CNN (problem.kind cnn: 28 x 28, 5x5 convolutions of
// 32 and 64 channels, "same" padding, 512 dense units) on a worker's batch of --cnn-batch rows (64, the seed's):
//   sgemm <product>  each of the network's products (im2col shapes) through sgemm_ directly
//   cnn <layer>      the layer's forward or backward pass as terse runs it (terse_CnnLayers.hpp: im2col, the
//                    product through KokkosBlas::gemm, bias and ReLU, pooling; backward: the unpooling, the
//                    weight and data products, col2im, the bias sums), against sgemm on its products
//   cnn batch        Problem::stochastic_gradient of one worker's batch (forward and backward through every
//                    layer, the training step), against the sum of sgemm's times on all its products; both
//                    product paths (fixed_order: 3 repeats)
// A case's rate counts the flops of its products over the 784 pixels only (2 N 784 H each: the forward's one,
// the gradient's two), so the mlp's rates include its other work (bias, ReLU, softmax, the small layer, the
// chunking) as overhead; the ratio column divides by the sgemm rate of the same products measured in the
// same run. The JSON records the machine (CPU, threads, Kokkos and Kokkos Kernels versions, the BLAS).
#include <terse_CnnLayers.hpp>
#include <terse_Problem.hpp>
#include "terse_Machine.hpp"

#include <KokkosBlas3_gemm.hpp>
#include <KokkosKernels_config.h>
#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#if defined(KOKKOSKERNELS_ENABLE_TPL_BLAS)
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);
#endif

namespace {

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;
using FMat = Kokkos::View<float**, Kokkos::LayoutRight, Mem>;

struct Options {
  std::uint64_t rows = 60000;
  int hidden = 64, repeats = 7, batch = 32, cnn_batch = 64;
  bool cnn = true;
  std::string json;
};

double median_seconds(int repeats, const std::function<void()>& f) {
  f();  // warm-up
  Kokkos::fence();
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    Kokkos::Timer timer;
    f();
    Kokkos::fence();
    t.push_back(timer.seconds());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}


struct Row {
  std::string name, path;
  double seconds, gflops, ratio;  // ratio: to the sgemm rate of the same products (NaN without a host BLAS)
};

/// C = alpha op(A) op(B) + beta C for row-major matrices through the column-major sgemm_ (C^T = op(B)^T op(A)^T:
/// the same flags, the operands swapped); M x N output, K the inner dimension.
void row_major_sgemm(char ta, char tb, int M, int N, int K, const float* A, const float* B, float* C, float beta = 0) {
#if defined(KOKKOSKERNELS_ENABLE_TPL_BLAS)
  const int lda = ta == 'N' ? K : M, ldb = tb == 'N' ? N : K;
  const float one = 1;
  const char sa[2] = {ta, 0}, sb[2] = {tb, 0};
  sgemm_(sb, sa, &N, &M, &K, &one, B, &ldb, A, &lda, &beta, C, &N);
#else
  (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)A, (void)B, (void)C, (void)beta;
#endif
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

/// Seed 000's CNN on a batch: each layer's passes as terse runs them against sgemm on the layer's products, and
/// the whole batch gradient against all of them (interleaved repeats: the machine's noise hits both alike).
void cnn_cases(const Options& o, const terse::DenseDataset& train, const terse::DenseDataset& test, std::vector<Row>& rows) {
  namespace cnn = terse::Impl::cnn;
  using M = cnn::Mat<Mem>;
  const bool blas = Kokkos::SpaceAccessibility<Kokkos::HostSpace, Mem>::accessible
#if defined(KOKKOSKERNELS_ENABLE_TPL_BLAS)
      ;
#else
      && false;
#endif
  const std::int64_t B = o.cnn_batch, S = 28, c1 = 32, c2 = 64, H = 512;
  const cnn::ConvGeometry g1{B, S, 1, 2}, g2{B, S / 2, c1, 2};
  const std::int64_t M1 = B * S * S, M2 = B * (S / 2) * (S / 2), Q2 = B * 7 * 7, F = 7 * 7 * c2;
  const auto mat = [](const char* l, std::int64_t r, std::int64_t c, float v) {
    M m(std::string(l), r, c);
    Kokkos::deep_copy(m, v);
    return m;
  };
  M a0 = mat("a0", M1, 1, 0.5f), col1 = mat("col1", M1, 25, 0.1f), y1 = mat("y1", M1, c1, 0.1f),
    p1 = mat("p1", M2, c1, 0.1f), dp1 = mat("dp1", M2, c1, 0.1f), col2 = mat("col2", M2, 25 * c1, 0.1f),
    y2 = mat("y2", M2, c2, 0.1f), p2 = mat("p2", Q2, c2, 0.1f), dp2 = mat("dp2", Q2, c2, 0.1f),
    z3 = mat("z3", B, H, 0.1f), d3 = mat("d3", B, H, 0.1f), k1 = mat("k1", c1, 25, 0.01f), k2 = mat("k2", c2, 25 * c1, 0.01f),
    w3 = mat("w3", H, F, 0.01f), gk1 = mat("gk1", c1, 25, 0), gk2 = mat("gk2", c2, 25 * c1, 0), gw3 = mat("gw3", H, F, 0);
  cnn::Arg<Mem> arg1("arg1", M2, c1), arg2("arg2", Q2, c2);
  Kokkos::View<float*, Mem> bias("bias", H), gbias("gbias", H);
  const M p2f(p2.data(), B, F), dp2f(dp2.data(), B, F);
  const cnn::Layers<Exec> L{Exec(), true};
  // The layers' passes; each with the sgemm calls of its products (row-major shapes as terse multiplies them).
  struct Case {
    std::string name;
    double flops;
    std::function<void()> terse, sgemm;
  };
  const double fl1 = 2.0 * M1 * 25 * c1, fl2 = 2.0 * M2 * 25 * c1 * c2, fl3 = 2.0 * B * F * H;
  std::vector<Case> cases = {
      {"conv1 forward (im2col, Col K1^T, bias, ReLU, pool)", fl1,
       [&] {
         L.im2col(g1, a0, col1);
         L.gemm("bench::conv1", 'N', 'T', 1, col1, k1, 0, y1);
         L.bias_relu(y1, Kokkos::subview(bias, Kokkos::make_pair(0L, c1)));
         L.max_pool(B, S, y1, p1, arg1);
       },
       [&] { row_major_sgemm('N', 'T', M1, c1, 25, col1.data(), k1.data(), y1.data()); }},
      {"conv1 backward (unpool, dY1^T Col1, bias sums)", fl1,
       [&] {
         L.pool_relu_backward(B, S, dp1, arg1, y1);
         L.gemm("bench::conv1_weights", 'T', 'N', 1, y1, col1, 0, gk1);
         L.column_sums(y1, gbias, 1, false);
       },
       [&] { row_major_sgemm('T', 'N', c1, 25, M1, y1.data(), col1.data(), gk1.data()); }},
      {"conv2 forward (im2col, Col K2^T, bias, ReLU, pool)", fl2,
       [&] {
         L.im2col(g2, p1, col2);
         L.gemm("bench::conv2", 'N', 'T', 1, col2, k2, 0, y2);
         L.bias_relu(y2, Kokkos::subview(bias, Kokkos::make_pair(0L, c2)));
         L.max_pool(B, S / 2, y2, p2, arg2);
       },
       [&] { row_major_sgemm('N', 'T', M2, c2, 25 * c1, col2.data(), k2.data(), y2.data()); }},
      {"conv2 backward (unpool, dY2^T Col2, dY2 K2, col2im, bias sums)", 2 * fl2,
       [&] {
         L.pool_relu_backward(B, S / 2, dp2, arg2, y2);
         L.gemm("bench::conv2_weights", 'T', 'N', 1, y2, col2, 0, gk2);
         L.column_sums(y2, gbias, 1, false);
         L.gemm("bench::conv2_back", 'N', 'N', 1, y2, k2, 0, col2);
         L.col2im(g2, col2, dp1);
       },
       [&] {
         row_major_sgemm('T', 'N', c2, 25 * c1, M2, y2.data(), col2.data(), gk2.data());
         row_major_sgemm('N', 'N', M2, 25 * c1, c2, y2.data(), k2.data(), col2.data());
       }},
      {"dense forward (P2 W3^T, bias, ReLU)", fl3,
       [&] {
         L.gemm("bench::dense", 'N', 'T', 1, p2f, w3, 0, z3);
         L.bias_relu(z3, bias);
       },
       [&] { row_major_sgemm('N', 'T', B, H, F, p2f.data(), w3.data(), z3.data()); }},
      {"dense backward (D3^T P2, D3 W3, bias sums)", 2 * fl3,
       [&] {
         L.gemm("bench::dense_weights", 'T', 'N', 1, d3, p2f, 0, gw3);
         L.column_sums(d3, gbias, 1, false);
         L.gemm("bench::dense_back", 'N', 'N', 1, d3, w3, 0, dp2f);
       },
       [&] {
         row_major_sgemm('T', 'N', H, F, B, d3.data(), p2f.data(), gw3.data());
         row_major_sgemm('N', 'N', B, F, H, d3.data(), w3.data(), dp2f.data());
       }},
  };
  const int reps = std::max(o.repeats, 15);
  double all_sgemm = 0, all_flops = 0;
  for (const auto& c : cases) {
    std::vector<double> tt, ts;
    for (int r = 0; r <= reps; ++r) {
      Kokkos::Timer timer;
      c.terse();
      Kokkos::fence();
      if (r > 0) tt.push_back(timer.seconds());
      if (!blas) continue;
      timer.reset();
      c.sgemm();
      if (r > 0) ts.push_back(timer.seconds());
    }
    const double t = median_of(tt), st = median_of(ts);
    all_sgemm += st;
    all_flops += c.flops;
    if (blas) rows.push_back({"sgemm of cnn " + c.name.substr(0, c.name.find(" (")), "BLAS", st, c.flops / st / 1e9, 1.0});
    rows.push_back({"cnn " + c.name, "library", t, c.flops / t / 1e9, st > 0 ? st / t : std::numeric_limits<double>::quiet_NaN()});
  }
  // The whole batch gradient through the Problem (the output layer's products, 64 x 512 x 10, are left out of
  // both the flops and the sgemm reference: 0.1 % of the work).
  for (const terse::DenseProducts products : {terse::DenseProducts::library, terse::DenseProducts::fixed_order}) {
    terse::CnnShape shape;
    auto prob = terse::make_cnn<Exec>(train, test, shape, terse::WorkerRange{1, 0, 1}, products);
    Kokkos::View<float*, Mem> x("x", prob->dim()), g("g", prob->dim());
    prob->initial_model(x, 1);
    const bool library = products == terse::DenseProducts::library;
    const std::string path = library ? "library" : "fixed_order";
    std::vector<double> tb, ts;
    std::uint64_t k = 0;
    for (int r = 0; r <= (library ? reps : 3); ++r) {
      Kokkos::Timer timer;
      prob->stochastic_gradient(x, 0, k++, terse::Batch{false, B}, 1, g);
      Kokkos::fence();
      if (r > 0) tb.push_back(timer.seconds());
      if (!blas) continue;
      timer.reset();
      for (const auto& c : cases) c.sgemm();
      if (r > 0) ts.push_back(timer.seconds());
    }
    const double bt = median_of(tb), st = median_of(ts);
    if (blas) rows.push_back({"sgemm of every cnn product (beside the " + path + " batch)", "BLAS", st, all_flops / st / 1e9, 1.0});
    rows.push_back({"cnn batch gradient (B rows, forward + backward)", path, bt, all_flops / bt / 1e9,
                    st > 0 ? st / bt : std::numeric_limits<double>::quiet_NaN()});
  }
  (void)all_sgemm;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "terse_bench_dense: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--rows") o.rows = std::stoull(next());
    else if (a == "--hidden") o.hidden = std::stoi(next());
    else if (a == "--repeats") o.repeats = std::stoi(next());
    else if (a == "--batch") o.batch = std::stoi(next());
    else if (a == "--json") o.json = next();
    else if (a == "--cnn-batch") o.cnn_batch = std::stoi(next());
    else if (a == "--no-cnn") o.cnn = false;
    else if (a == "--help" || a == "-h") {
      std::printf("usage: terse_bench_dense [--rows N] [--hidden H] [--repeats R] [--batch B] [--cnn-batch B] [--no-cnn]\n"
                  "                         [--json FILE]\n"
                  "The mlp's dense layers (terse's two product paths) and the CNN's layers on a worker's batch\n"
                  "(--cnn-batch, 64) against the host BLAS's sgemm on the same shapes, measured in one run; medians\n"
                  "of R repeats (default 7) after a warm-up.\n");
      return 0;
    } else if (a.rfind("--kokkos", 0) != 0) {
      std::fprintf(stderr, "terse_bench_dense: unknown argument %s (--help)\n", a.c_str());
      return 2;
    }
  }
  if (o.rows < 1 || o.hidden < 1 || o.repeats < 1 || o.batch < 1 || o.cnn_batch < 1) {
    std::fprintf(stderr, "terse_bench_dense: --rows, --hidden, --repeats, --batch and --cnn-batch must be >= 1\n");
    return 2;
  }
  Kokkos::ScopeGuard kokkos(argc, argv);
  const std::uint64_t P = 784, H = static_cast<std::uint64_t>(o.hidden), N = o.rows;

  // The data: Fashion-MNIST's training images (the first N), else uniform [0, 1) pixels with random labels.
  terse::DenseDataset train, test;
  std::string source = "synthetic";
  try {
    const terse::ProblemConfig c{};  // the mlp's default files
    terse::DenseDataset all = terse::fashion_mnist_multiclass(c.train_images, c.train_labels);
    if (all.rows() >= N) {
      train = terse::slice_rows(all, terse::RowRange{0, N});
      source = c.train_images;
    }
  } catch (const std::exception&) {
  }
  if (train.rows() == 0) {
    std::mt19937 gen(1);
    std::uniform_real_distribution<float> u(0, 1);
    train.dim = P;
    train.num_classes = 10;
    train.source = "synthetic";
    train.features.resize(N * P);
    for (auto& v : train.features) v = u(gen);
    for (std::uint64_t r = 0; r < N; ++r) train.labels.push_back(static_cast<std::int32_t>(gen() % 10));
  }
  test = terse::slice_rows(train, terse::RowRange{0, std::min<std::uint64_t>(N, 1000)});

  std::vector<Row> rows;
  const double f1 = 2.0 * static_cast<double>(N) * P * H;  // one product over the pixels
  double sgemm_fwd = 0, sgemm_bwd = 0;
  std::function<void()> sgemm_pair;  // the batch's two products through sgemm_, where there is a host BLAS

  // ---- the raw products ----
  FMat A("A", N, P), W1("W1", H, P), Z("Z", N, H), D1("D1", N, H), G1("G1", H, P);
  {
    auto Ah = Kokkos::create_mirror_view(A);
    for (std::uint64_t r = 0; r < N; ++r)
      for (std::uint64_t p = 0; p < P; ++p) Ah(r, p) = train.features[r * P + p];
    Kokkos::deep_copy(A, Ah);
    Kokkos::deep_copy(W1, 0.01f);
    Kokkos::deep_copy(D1, 0.02f);
  }
#if defined(KOKKOSKERNELS_ENABLE_TPL_BLAS)
  if (Kokkos::SpaceAccessibility<Kokkos::HostSpace, Mem>::accessible) {
    const int n = static_cast<int>(N), p = static_cast<int>(P), h = static_cast<int>(H);
    const float one = 1, zero = 0;
    // Row-major Z (N x H) = A W1^T is column-major Z^T = W1 A^T: sgemm('T', 'N', H, N, P, W1, P, A, P, Z, H).
    sgemm_fwd = median_seconds(o.repeats, [&] { sgemm_("T", "N", &h, &n, &p, &one, W1.data(), &p, A.data(), &p, &zero, Z.data(), &h); });
    // Row-major G1 (H x P) = D1^T A is column-major G1^T = A^T D1: sgemm('N', 'T', P, H, N, A, P, D1, H, G1, P).
    sgemm_bwd = median_seconds(o.repeats, [&] { sgemm_("N", "T", &p, &h, &n, &one, A.data(), &p, D1.data(), &h, &zero, G1.data(), &p); });
    rows.push_back({"sgemm forward (A W1^T)", "BLAS", sgemm_fwd, f1 / sgemm_fwd / 1e9, 1.0});
    rows.push_back({"sgemm backward (D1^T A)", "BLAS", sgemm_bwd, f1 / sgemm_bwd / 1e9, 1.0});
    // The same two products on a batch's B rows (the training step's shapes), timed beside the mlp's batches.
    sgemm_pair = [&, n, p, h, one, zero] {
      const int b = o.batch;
      sgemm_("T", "N", &h, &b, &p, &one, W1.data(), &p, A.data(), &p, &zero, Z.data(), &h);
      sgemm_("N", "T", &p, &h, &b, &one, A.data(), &p, D1.data(), &h, &zero, G1.data(), &p);
    };
  }
#endif
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto ratio = [&](double seconds, double reference) { return reference > 0 ? reference / seconds : nan; };
  {
    const double t = median_seconds(o.repeats, [&] { KokkosBlas::gemm("N", "T", 1.0f, A, W1, 0.0f, Z); });
    rows.push_back({"gemm forward (A W1^T)", "Kokkos Kernels", t, f1 / t / 1e9, ratio(t, sgemm_fwd)});
    const double u = median_seconds(o.repeats, [&] { KokkosBlas::gemm("T", "N", 1.0f, D1, A, 0.0f, G1); });
    rows.push_back({"gemm backward (D1^T A)", "Kokkos Kernels", u, f1 / u / 1e9, ratio(u, sgemm_bwd)});
  }

  // ---- the mlp's passes through the Problem, both paths ----
  for (const terse::DenseProducts products : {terse::DenseProducts::library, terse::DenseProducts::fixed_order}) {
    auto prob = terse::make_mlp<Exec>(train, test, static_cast<std::int64_t>(H), terse::WorkerRange{1, 0, 1}, products);
    const std::string path = products == terse::DenseProducts::library ? "library" : "fixed_order";
    Kokkos::View<float*, Mem> x("x", prob->dim()), g("g", prob->dim());
    prob->initial_model(x, 1);
    const double lt = median_seconds(o.repeats, [&] { prob->local_loss_sum(x); });
    rows.push_back({"mlp loss (forward, N rows)", path, lt, f1 / lt / 1e9, ratio(lt, sgemm_fwd)});
    const double gt = median_seconds(o.repeats, [&] { prob->local_grad_sum(x, g); });
    rows.push_back({"mlp gradient (forward + backward, N rows)", path, gt, 2 * f1 / gt / 1e9,
                    ratio(gt, sgemm_fwd + sgemm_bwd)});
    // The batch: a fraction of a millisecond, so each repeat times the mlp's batch and then sgemm's two products
    // on the same shapes, and the ratio is of the two medians (the machine's noise hits both alike).
    const terse::Batch batch{false, o.batch};
    std::uint64_t k = 0;
    std::vector<double> tb, ts;
    for (int r = 0; r <= std::max(o.repeats, 100); ++r) {
      Kokkos::Timer timer;
      prob->stochastic_gradient(x, 0, k++, batch, 1, g);
      Kokkos::fence();
      if (r > 0) tb.push_back(timer.seconds());
      if (!sgemm_pair) continue;
      timer.reset();
      sgemm_pair();
      if (r > 0) ts.push_back(timer.seconds());
    }
    const auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v.empty() ? 0.0 : v[v.size() / 2];
    };
    const double bt = median(tb), st = median(ts);
    const double fb = 2.0 * 2.0 * o.batch * P * H;
    if (st > 0) rows.push_back({"sgemm forward + backward (B rows, beside the " + path + " batch)", "BLAS", st, fb / st / 1e9, 1.0});
    rows.push_back({"mlp batch gradient (B rows)", path, bt, fb / bt / 1e9, ratio(bt, st)});
  }

  if (o.cnn) cnn_cases(o, train, test, rows);

  const int threads = Kokkos::DefaultExecutionSpace().concurrency();
  std::printf("terse_bench_dense: N = %llu rows (%s), P = %llu, H = %llu, batch %d; %s, %d threads; Kokkos %d.%d.%d, "
              "Kokkos Kernels %s; host BLAS %s; medians of %d\n",
              static_cast<unsigned long long>(N), source.c_str(), static_cast<unsigned long long>(P),
              static_cast<unsigned long long>(H), o.batch, Exec::name(), threads, KOKKOS_VERSION / 10000,
              KOKKOS_VERSION / 100 % 100, KOKKOS_VERSION % 100, TERSE_KOKKOSKERNELS_VERSION,
#if defined(KOKKOSKERNELS_ENABLE_TPL_BLAS)
              "yes (sgemm_)",
#else
              "none",
#endif
              o.repeats);
  std::printf("\n| case | path | ms | GFLOP/s | ratio to sgemm |\n|---|---|---:|---:|---:|\n");
  for (const auto& r : rows)
    std::printf("| %s | %s | %.3f | %.1f | %.2f |\n", r.name.c_str(), r.path.c_str(), 1e3 * r.seconds, r.gflops, r.ratio);
  if (!o.json.empty()) {
    std::ofstream out(o.json);
    out << "{\n  \"context\": {\"cpu\": \"" << terse::bench::cpu_model() << "\", \"threads\": " << threads << ", \"backend\": \""
        << Exec::name() << "\", \"kokkos\": " << KOKKOS_VERSION << ", \"kokkos_kernels\": \"" << TERSE_KOKKOSKERNELS_VERSION
        << "\", \"rows\": " << N << ", \"hidden\": " << H << ", \"batch\": " << o.batch << ", \"cnn_batch\": " << (o.cnn ? o.cnn_batch : 0) << ", \"source\": \"" << source
        << "\", \"repeats\": " << o.repeats << "},\n  \"cases\": [\n";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      char buf[512];
      std::snprintf(buf, sizeof buf,
                    "    {\"name\": \"%s\", \"path\": \"%s\", \"seconds\": %.6g, \"gflops\": %.6g, \"ratio\": %s}%s\n",
                    r.name.c_str(), r.path.c_str(), r.seconds, r.gflops,
                    std::isnan(r.ratio) ? "null" : std::to_string(r.ratio).c_str(), i + 1 < rows.size() ? "," : "");
      out << buf;
    }
    out << "  ]\n}\n";
    std::printf("\nwrote %s\n", o.json.c_str());
  }
  return 0;
}
