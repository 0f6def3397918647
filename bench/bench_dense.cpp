// terse_bench_dense: the mlp's dense layers against the host BLAS's sgemm on the same shapes, in one run.
//
//   terse_bench_dense [--rows N] [--hidden H] [--repeats R] [--batch B] [--json FILE]
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
// A case's rate counts the flops of its products over the 784 pixels only (2 N 784 H each: the forward's one,
// the gradient's two), so the mlp's rates include its other work (bias, ReLU, softmax, the small layer, the
// chunking) as overhead; the ratio column divides by the sgemm rate of the same products measured in the
// same run. The JSON records the machine (CPU, threads, Kokkos and Kokkos Kernels versions, the BLAS).
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
  int hidden = 64, repeats = 7, batch = 32;
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
    else if (a == "--help" || a == "-h") {
      std::printf("usage: terse_bench_dense [--rows N] [--hidden H] [--repeats R] [--batch B] [--json FILE]\n"
                  "The mlp's dense layers (terse's two product paths) against the host BLAS's sgemm on the same\n"
                  "shapes, measured in one run; medians of R repeats (default 7) after a warm-up.\n");
      return 0;
    } else if (a.rfind("--kokkos", 0) != 0) {
      std::fprintf(stderr, "terse_bench_dense: unknown argument %s (--help)\n", a.c_str());
      return 2;
    }
  }
  if (o.rows < 1 || o.hidden < 1 || o.repeats < 1 || o.batch < 1) {
    std::fprintf(stderr, "terse_bench_dense: --rows, --hidden, --repeats and --batch must be >= 1\n");
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
        << "\", \"rows\": " << N << ", \"hidden\": " << H << ", \"batch\": " << o.batch << ", \"source\": \"" << source
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
