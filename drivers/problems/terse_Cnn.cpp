// terse_Cnn.cpp: seed 000 Sec. III-2's convolutional network on Fashion-MNIST (problem.kind cnn). The formulas
// and the parameter layout are at the top of terse_Problem.hpp, the layers' kernels in terse_CnnLayers.hpp.
//
// A pass takes the rows of a chunk (at most cnn_chunk images: a worker's batch of 64, the seed's, is one chunk)
// through the network forward and backward with every product one call of dense_gemm:
//   conv1  Y1 = relu(im2col(A0) K1^T + b1)        (64 * 784) x 25   times 25 x c1
//   pool1  P1 = maxpool(Y1), arg1
//   conv2  Y2 = relu(im2col(P1) K2^T + b2)        (64 * 196) x 25c1 times 25c1 x c2
//   pool2  P2 = maxpool(Y2), arg2                 viewed as 64 x F
//   dense  Z3 = relu(P2 W3^T + b3), O = Z3 W4^T + b4, softmax cross-entropy D4 = p - onehot
// and back: gW4 = D4^T Z3, D3 = (D4 W4) [Z3 > 0], gW3 = D3^T P2, dP2 = D3 W3, dY2 = unpool(dP2) [Y2 > 0] (in
// place of Y2), gK2 = dY2^T Col2, dCol2 = dY2 K2 (in place of Col2), dP1 = col2im(dCol2), dY1 = unpool(dP1)
// [Y1 > 0], gK1 = dY1^T Col1; the biases' gradients are the column sums of D4, D3, dY2, dY1. Gradients are
// written into g's blocks by the products (beta = 0 for a batch's first chunk, 1 after), scaled by 1 / B there.
//
// Reproducibility as the mlp's (terse_Problem.hpp): a worker's stochastic gradient is a fixed sequence of calls
// on fixed shapes, so it is the same bits whatever rank computes it (layouts, restarts); with problem.products:
// fixed_order every product is terse's FixedGemm and the gradients are bitwise equal on every backend and at
// any thread count.
#include "terse_CnnLayers.hpp"
#include "terse_ProblemBase.hpp"

namespace terse {
namespace Impl {
namespace cnn {

using namespace Impl::problem;

inline constexpr std::int64_t cnn_chunk = 64;  ///< images per pass (the seed's batch per worker)

/// Every size of the network: the parameters' offsets in x and the workspaces of a chunk of `chunk` images.
/// The constructor allocates these and cnn_bytes() adds them up, so the estimate and the allocation agree.
struct CnnSizes {
  std::int64_t S = 0, pad = 0, c0 = 1, c1 = 0, c2 = 0, H = 0, K = 0;
  std::int64_t h1 = 0, q1 = 0, h2 = 0, q2 = 0, F = 0;  ///< conv1 output side, pool1 side, conv2, pool2; F = c2 q2^2
  std::uint64_t K1 = 0, b1 = 0, K2 = 0, b2 = 0, W3 = 0, b3 = 0, W4 = 0, b4 = 0, d = 0;  ///< offsets in x
  std::int64_t chunk = cnn_chunk;

  static CnnSizes make(const CnnShape& s) {
    CnnSizes z;
    z.S = s.side;
    z.pad = s.same ? (kernel_side - 1) / 2 : 0;
    z.c1 = s.channels[0], z.c2 = s.channels[1], z.H = s.hidden, z.K = s.classes;
    z.h1 = z.S + 2 * z.pad - (kernel_side - 1);
    z.q1 = z.h1 / 2;
    z.h2 = z.q1 + 2 * z.pad - (kernel_side - 1);
    z.q2 = z.h2 / 2;
    if (z.h1 < 2 || z.q1 < 1 || z.h2 < 2 || z.q2 < 1)
      throw UserError("problem.padding: images of " + std::to_string(z.S) + " x " + std::to_string(z.S) +
                      " pixels are too small for two 5x5 convolutions and 2x2 poolings with padding " +
                      (s.same ? "same" : "valid"));
    z.F = z.c2 * z.q2 * z.q2;
    z.K1 = 0;
    z.b1 = z.K1 + static_cast<std::uint64_t>(z.c1 * kernel_taps * z.c0);
    z.K2 = z.b1 + static_cast<std::uint64_t>(z.c1);
    z.b2 = z.K2 + static_cast<std::uint64_t>(z.c2 * kernel_taps * z.c1);
    z.W3 = z.b2 + static_cast<std::uint64_t>(z.c2);
    z.b3 = z.W3 + static_cast<std::uint64_t>(z.H * z.F);
    z.W4 = z.b3 + static_cast<std::uint64_t>(z.H);
    z.b4 = z.W4 + static_cast<std::uint64_t>(z.K * z.H);
    z.d = z.b4 + static_cast<std::uint64_t>(z.K);
    return z;
  }
  ConvGeometry conv1(std::int64_t B) const { return ConvGeometry{B, S, c0, pad}; }
  ConvGeometry conv2(std::int64_t B) const { return ConvGeometry{B, q1, c1, pad}; }

  // Workspace elements of a chunk (floats unless said).
  std::int64_t a0() const { return chunk * S * S; }                          // the images, (B S S, 1)
  std::int64_t col1() const { return chunk * h1 * h1 * kernel_taps * c0; }
  std::int64_t y1() const { return chunk * h1 * h1 * c1; }
  std::int64_t p1() const { return chunk * q1 * q1 * c1; }                   // also arg1 (bytes) and dP1
  std::int64_t col2() const { return chunk * h2 * h2 * kernel_taps * c1; }   // also dCol2
  std::int64_t y2() const { return chunk * h2 * h2 * c2; }                   // also dY2
  std::int64_t p2() const { return chunk * F; }                              // also arg2 (bytes) and dP2
  std::int64_t dense() const { return chunk * H; }                           // Z3, D3
  std::int64_t out() const { return chunk * K; }                             // O, D4
  std::uint64_t workspace_bytes() const {
    const std::int64_t floats = a0() + col1() + y1() + 2 * p1() + col2() + y2() + 2 * p2() + 2 * dense() + 2 * out();
    return sizeof(float) * static_cast<std::uint64_t>(floats) + static_cast<std::uint64_t>(p1() + p2()) +
           sizeof(std::uint64_t) * static_cast<std::uint64_t>(chunk);
  }
  /// Everything the problem allocates for n training and nt test rows: the rows (pixels as floats, labels),
  /// the workspaces, the per-row losses and the deterministic sum's partials.
  std::uint64_t bytes(std::uint64_t n, std::uint64_t nt) const {
    const std::uint64_t pixels = static_cast<std::uint64_t>(S * S);
    return (n + nt) * (pixels * sizeof(float) + sizeof(std::int32_t)) + workspace_bytes() + n * sizeof(double) +
           SumWorkspace<Kokkos::DefaultHostExecutionSpace>::bytes(std::max<std::uint64_t>(n, 1));
  }
};

/// He initialisation: weight o ~ N(0, 2 / fan_in) from CounterRng (iteration 0, worker 0, index o), biases 0.
template <class XV>
struct CnnInit {
  CnnSizes z;
  XV x;
  CounterRng rng;
  KOKKOS_INLINE_FUNCTION void operator()(std::uint64_t o) const {
    double fan_in = 0;
    if (o < z.b1) fan_in = kernel_taps * z.c0;
    else if (o >= z.K2 && o < z.b2) fan_in = kernel_taps * z.c1;
    else if (o >= z.W3 && o < z.b3) fan_in = static_cast<double>(z.F);
    else if (o >= z.W4 && o < z.b4) fan_in = static_cast<double>(z.H);
    x(o) = fan_in > 0 ? static_cast<float>(compat::sqrt(2.0 / fan_in) * rng.normal(0, 0, o)) : 0.0f;
  }
};

/// Row c of a chunk: its local data row (contiguous from start, sample b0 + c of a batch, or given in rows).
template <class Mem>
struct CnnChunkRows {
  Kokkos::View<std::uint64_t*, Mem> rows;
  SampleRows sample;
  std::uint64_t start = 0, b0 = 0;
  bool contiguous = true;
  KOKKOS_INLINE_FUNCTION void operator()(std::uint64_t c) const {
    rows(c) = contiguous ? start + c : sample(b0 + c);
  }
};

/// A0(c S^2 + p, 0) = the pixels of chunk row c's image.
template <class Mem>
struct CnnGather {
  Kokkos::View<const float**, Kokkos::LayoutRight, Mem> feats;
  Kokkos::View<const std::uint64_t*, Mem> rows;
  Mat<Mem> a0;
  std::int64_t pixels;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t c, std::int64_t p) const { a0(c * pixels + p, 0) = feats(rows(c), p); }
};

/// The output layer of chunk row c: logits o_k = O(c, k) + b4_k, softmax cross-entropy into D4 and the loss
/// (operator()(c)), or the count of rows whose first maximum is the label (operator()(c, n)).
template <class Mem>
struct CnnOutput {
  using value_type = std::uint64_t;
  std::uint64_t K;
  CMat<Mem> O;
  Kokkos::View<const float*, Mem> b4;
  Kokkos::View<const std::int32_t*, Mem> labels;
  Kokkos::View<const std::uint64_t*, Mem> rows;
  Mat<Mem> D4;
  Kokkos::View<double*, Mem> loss;
  LossAt loss_at;
  std::uint64_t offset;
  KOKKOS_INLINE_FUNCTION void logits(std::uint64_t c, double* o) const {
    for (std::uint64_t k = 0; k < K; ++k) o[k] = static_cast<double>(O(c, k)) + b4(k);
  }
  KOKKOS_INLINE_FUNCTION void operator()(std::uint64_t c) const {
    double o[max_classes];
    logits(c, o);
    const std::uint64_t r = rows(c);
    softmax_xent(K, o, r, labels(r), c, D4, loss, loss_at, offset);
  }
  KOKKOS_INLINE_FUNCTION void operator()(std::uint64_t c, std::uint64_t& n) const {
    double o[max_classes];
    logits(c, o);
    if (static_cast<std::int32_t>(argmax_class(K, o)) == labels(rows(c))) ++n;
  }
};

}  // namespace cnn
}  // namespace Impl

namespace problem_detail {

using namespace Impl::cnn;

template <class ExecSpace>
class Cnn final : public ProblemBase<ExecSpace> {
  using Base = ProblemBase<ExecSpace>;

 public:
  using typename Base::const_vector_type;
  using typename Base::matrix_type;
  using typename Base::vector_type;
  using Mem = typename ExecSpace::memory_space;
  using M = Mat<Mem>;
  using CM = CMat<Mem>;
  using Bias = Kokkos::View<const float*, Mem>;

  Cnn(DenseRows<Mem> train, std::uint64_t n_train, DenseRows<Mem> test, std::uint64_t n_test, const CnnShape& shape,
      const WorkerRange& wr, std::string source, DenseProducts products)
      : Base(wr), train_(train), test_(test), n_(n_train), n_test_(n_test), shape_(shape), source_(std::move(source)),
        z_(CnnSizes::make(shape)), layers_{ExecSpace(), products == DenseProducts::library} {
    if (shape.hidden < 1 || shape.channels[0] < 1 || shape.channels[1] < 1)
      throw std::invalid_argument("cnn: channels and hidden must be >= 1");
    if (shape.classes < 2 || shape.classes > max_classes) throw std::invalid_argument("cnn: 2 to 16 classes");
    layers_.space = this->space_;
    lr_ = local_rows(n_, wr, source_);
    const auto mat = [](const char* label, std::int64_t elements, std::int64_t cols) {
      return M(Kokkos::ViewAllocateWithoutInitializing(label), elements / cols, cols);
    };
    rows_ = Kokkos::View<std::uint64_t*, Mem>("terse::cnn::rows", z_.chunk);
    a0_ = mat("terse::cnn::images", z_.a0(), 1);
    col1_ = mat("terse::cnn::col1", z_.col1(), kernel_taps * z_.c0);
    y1_ = mat("terse::cnn::y1", z_.y1(), z_.c1);
    p1_ = mat("terse::cnn::p1", z_.p1(), z_.c1);
    dp1_ = mat("terse::cnn::dp1", z_.p1(), z_.c1);
    arg1_ = Arg<Mem>(Kokkos::ViewAllocateWithoutInitializing("terse::cnn::arg1"), z_.p1() / z_.c1, z_.c1);
    col2_ = mat("terse::cnn::col2", z_.col2(), kernel_taps * z_.c1);
    y2_ = mat("terse::cnn::y2", z_.y2(), z_.c2);
    p2_ = mat("terse::cnn::p2", z_.p2(), z_.c2);
    dp2_ = mat("terse::cnn::dp2", z_.p2(), z_.c2);
    arg2_ = Arg<Mem>(Kokkos::ViewAllocateWithoutInitializing("terse::cnn::arg2"), z_.p2() / z_.c2, z_.c2);
    z3_ = mat("terse::cnn::z3", z_.dense(), z_.H);
    d3_ = mat("terse::cnn::d3", z_.dense(), z_.H);
    o_ = mat("terse::cnn::logits", z_.out(), z_.K);
    d4_ = mat("terse::cnn::d4", z_.out(), z_.K);
    loss_ = Kokkos::View<double*, Mem>("terse::cnn::loss", train_.size());
    sum_ = SumWorkspace<ExecSpace>(std::max<std::uint64_t>(train_.size(), 1));
  }

  ProblemKind kind() const override { return ProblemKind::cnn; }
  std::string description() const override {
    return "CNN (seed 000 Sec. III-2: conv5x5x" + std::to_string(z_.c1) + "-pool-conv5x5x" + std::to_string(z_.c2) +
           "-pool-" + std::to_string(z_.H) + "-" + std::to_string(z_.K) + ", ReLU, padding " +
           (shape_.same ? "same" : "valid") + ", softmax cross-entropy) on " + source_ + ": " + std::to_string(n_) +
           " training rows, " + std::to_string(n_test_) + " test rows, d = " + std::to_string(z_.d) +
           "; products: " + (layers_.library ? "Kokkos Kernels (KokkosBlas::gemm)" : "terse's fixed-order kernels");
  }
  std::size_t dim() const override { return z_.d; }
  std::uint64_t rows() const override { return n_; }
  std::uint64_t worker_rows(int w) const override {
    this->check_worker(w);
    const int lw = w - this->workers_.first;
    return lr_.block[lw + 1] - lr_.block[lw];
  }
  std::int64_t batch_rows(int w, const Batch& batch) const override {
    this->check_batch(batch);
    const std::uint64_t n = worker_rows(w);
    return batch.full ? static_cast<std::int64_t>(n) : batch.size;
  }
  std::vector<ParameterBlock> blocks() const override {
    const auto u = [](std::int64_t v) { return static_cast<std::size_t>(v); };
    return {{"conv1.kernel", z_.K1, u(z_.c1), u(kernel_taps * z_.c0), true},
            {"conv1.bias", z_.b1, u(z_.c1), 1, false},
            {"conv2.kernel", z_.K2, u(z_.c2), u(kernel_taps * z_.c1), true},
            {"conv2.bias", z_.b2, u(z_.c2), 1, false},
            {"dense.weight", z_.W3, u(z_.H), u(z_.F), true},
            {"dense.bias", z_.b3, u(z_.H), 1, false},
            {"output.weight", z_.W4, u(z_.K), u(z_.H), true},
            {"output.bias", z_.b4, u(z_.K), 1, false}};
  }
  void initial_model(const vector_type& x, std::uint64_t seed) override {
    this->check_vector(x, "x");
    Kokkos::parallel_for("terse::cnn::initial_model", this->policy(z_.d),
                         CnnInit<vector_type>{z_, x, CounterRng{seed, static_cast<std::uint32_t>(RandomStream::initial_model)}});
    this->space_.fence();
  }
  double local_loss_sum(const const_vector_type& x) override {
    this->check_vector(x, "x");
    const std::uint64_t n = train_.size();
    for (std::uint64_t s = 0; s < n; s += chunk()) {
      const std::int64_t c = static_cast<std::int64_t>(std::min(chunk(), n - s));
      forward(x, train_, contiguous(s), c);
      output(x, train_, c, LossAt::row, loss_, 0);
    }
    deterministic_sum(this->space_, loss_, n, sum_);
    return sum_.host_result();
  }
  std::optional<LossSample> local_loss_sample(const const_vector_type& x, std::uint64_t per_worker, std::uint64_t key,
                                              std::uint64_t seed) override {
    this->check_vector(x, "x");
    if (per_worker < 1) throw std::invalid_argument("cnn: a loss sample needs at least one row per worker");
    const std::uint64_t R = static_cast<std::uint64_t>(this->workers_.count);
    if (sample_loss_.extent(0) < R * per_worker) {
      sample_loss_ = Kokkos::View<double*, Mem>("terse::cnn::sample_loss", R * per_worker);
      sample_loss_host_ = Kokkos::create_mirror_view(sample_loss_);
    }
    const CounterRng rng{seed, static_cast<std::uint32_t>(RandomStream::monitor_sample)};
    for (int l = 0; l < this->workers_.count; ++l) {
      const SampleRows rows{rng, key, static_cast<std::uint32_t>(this->workers_.first + l), lr_.block[l],
                            lr_.block[l + 1] - lr_.block[l], false};
      for (std::uint64_t b0 = 0; b0 < per_worker; b0 += chunk()) {
        const std::int64_t c = static_cast<std::int64_t>(std::min(chunk(), per_worker - b0));
        forward(x, train_, sampled(rows, b0), c);
        output(x, train_, c, LossAt::position, sample_loss_, l * per_worker + b0);
      }
    }
    Kokkos::deep_copy(this->space_, sample_loss_host_, sample_loss_);
    this->space_.fence();
    return loss_sample_of(sample_loss_host_, lr_, this->workers_.count, per_worker, n_);
  }
  void local_grad_sum(const const_vector_type& x, const vector_type& g) override { grad_pass(x, g, false); }
  double local_loss_and_grad_sum(const const_vector_type& x, const vector_type& g) override {
    grad_pass(x, g, true);
    deterministic_sum(this->space_, loss_, train_.size(), sum_);
    return sum_.host_result();
  }
  double finish_loss(double global_sum, const const_vector_type&) override { return global_sum / static_cast<double>(n_); }
  void finish_grad(const vector_type& g, const const_vector_type& x) override {
    this->check_vector(x, "x");
    this->check_vector(g, "g");
    Kokkos::parallel_for("terse::cnn::finish_grad", this->policy(z_.d),
                         ScaleAddRegulariser<const_vector_type, vector_type>{x, g, 1.0 / static_cast<double>(n_), 0.0});
    this->space_.fence();
  }

  void stochastic_gradient(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch, std::uint64_t seed,
                           const vector_type& g) override {
    this->check_step(x, w, batch);
    this->check_vector(g, "g");
    const std::uint64_t B = static_cast<std::uint64_t>(batch_rows(w, batch));
    const SampleRows rows = sample_rows(w, k, batch, seed);
    const float scale = static_cast<float>(1.0 / static_cast<double>(B));
    for (std::uint64_t b0 = 0; b0 < B; b0 += chunk()) {
      const std::int64_t c = static_cast<std::int64_t>(std::min(chunk(), B - b0));
      forward(x, train_, sampled(rows, b0), c);
      output(x, train_, c, LossAt::none, loss_, 0);
      backward(x, c, scale, b0 == 0, g.data());
    }
    this->space_.fence();
  }
  /// Sample b's gradient is the gradient of a batch of that one row (the same kernels, one image per pass).
  void per_sample_gradients(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch,
                            std::uint64_t seed, const matrix_type& G) override {
    this->check_step(x, w, batch);
    this->check_samples(G, w, batch);
    const SampleRows rows = sample_rows(w, k, batch, seed);
    for (std::uint64_t b = 0; b < G.extent(0); ++b) {
      forward(x, train_, sampled(rows, b), 1);
      output(x, train_, 1, LossAt::none, loss_, 0);
      backward(x, 1, 1.0f, true, G.data() + b * z_.d);
    }
    this->space_.fence();
  }

  std::uint64_t test_rows() const override { return n_test_; }
  std::optional<std::uint64_t> local_test_correct(const const_vector_type& x) override {
    this->check_vector(x, "x");
    std::uint64_t total = 0;
    const std::uint64_t n = test_.size();
    for (std::uint64_t s = 0; s < n; s += chunk()) {
      const std::int64_t c = static_cast<std::int64_t>(std::min(chunk(), n - s));
      forward(x, test_, contiguous(s), c);
      std::uint64_t correct = 0;
      Kokkos::parallel_reduce("terse::cnn::test_correct", Kokkos::RangePolicy<ExecSpace>(this->space_, 0, c),
                              out_functor(x, test_, LossAt::none, loss_, 0), correct);
      total += correct;
    }
    return total;
  }

 private:
  std::uint64_t chunk() const { return static_cast<std::uint64_t>(z_.chunk); }
  /// The first `rows` rows of a workspace (or any float buffer) as a matrix of `cols` columns.
  static M rows_of(float* p, std::int64_t rows, std::int64_t cols) { return M(p, rows, cols); }
  static M first(const M& m, std::int64_t rows) { return M(m.data(), rows, m.extent(1)); }
  CM weights(const const_vector_type& x, std::uint64_t off, std::int64_t rows, std::int64_t cols) const {
    return CM(x.data() + off, rows, cols);
  }
  Bias bias(const const_vector_type& x, std::uint64_t off, std::int64_t n) const { return Bias(x.data() + off, n); }

  static CounterRng select(std::uint64_t seed) {
    return CounterRng{seed, static_cast<std::uint32_t>(RandomStream::sample_selection)};
  }
  SampleRows sample_rows(int w, std::uint64_t k, const Batch& batch, std::uint64_t seed) const {
    const int lw = w - this->workers_.first;
    const std::uint64_t r0 = lr_.block[lw], r1 = lr_.block[lw + 1];
    return SampleRows{select(seed), k, static_cast<std::uint32_t>(w), r0, r1 - r0, batch.full};
  }
  CnnChunkRows<Mem> contiguous(std::uint64_t start) const { return CnnChunkRows<Mem>{rows_, SampleRows{}, start, 0, true}; }
  CnnChunkRows<Mem> sampled(const SampleRows& rows, std::uint64_t b0) const {
    return CnnChunkRows<Mem>{rows_, rows, 0, b0, false};
  }

  /// The chunk's rows through the network up to the logits' product O = Z3 W4^T (without b4).
  void forward(const const_vector_type& x, const DenseRows<Mem>& data, const CnnChunkRows<Mem>& rows, std::int64_t c) {
    const CnnSizes& z = z_;
    Kokkos::parallel_for("terse::cnn::chunk_rows", Kokkos::RangePolicy<ExecSpace>(this->space_, 0, c), rows);
    const std::int64_t pixels = z.S * z.S;
    Kokkos::parallel_for("terse::cnn::gather", policy2(this->space_, c, pixels),
                         CnnGather<Mem>{data.feats, rows_, a0_, pixels});
    // conv1, pool1
    const M col1 = first(col1_, c * z.h1 * z.h1), y1 = first(y1_, c * z.h1 * z.h1);
    layers_.im2col(z.conv1(c), first(a0_, c * pixels), col1);
    layers_.gemm("terse::cnn::gemm_conv1", 'N', 'T', 1.0f, col1, weights(x, z.K1, z.c1, kernel_taps * z.c0), 0.0f, y1);
    layers_.bias_relu(y1, bias(x, z.b1, z.c1));
    layers_.max_pool(c, z.h1, y1, first(p1_, c * z.q1 * z.q1), first_arg(arg1_, c * z.q1 * z.q1));
    // conv2, pool2
    const M col2 = first(col2_, c * z.h2 * z.h2), y2 = first(y2_, c * z.h2 * z.h2);
    layers_.im2col(z.conv2(c), first(p1_, c * z.q1 * z.q1), col2);
    layers_.gemm("terse::cnn::gemm_conv2", 'N', 'T', 1.0f, col2, weights(x, z.K2, z.c2, kernel_taps * z.c1), 0.0f, y2);
    layers_.bias_relu(y2, bias(x, z.b2, z.c2));
    layers_.max_pool(c, z.h2, y2, first(p2_, c * z.q2 * z.q2), first_arg(arg2_, c * z.q2 * z.q2));
    // dense, output product
    const M z3 = first(z3_, c);
    layers_.gemm("terse::cnn::gemm_dense", 'N', 'T', 1.0f, rows_of(p2_.data(), c, z.F), weights(x, z.W3, z.H, z.F), 0.0f, z3);
    layers_.bias_relu(z3, bias(x, z.b3, z.H));
    layers_.gemm("terse::cnn::gemm_output", 'N', 'T', 1.0f, z3, weights(x, z.W4, z.K, z.H), 0.0f, first(o_, c));
  }
  CnnOutput<Mem> out_functor(const const_vector_type& x, const DenseRows<Mem>& data, LossAt at,
                             const Kokkos::View<double*, Mem>& loss, std::uint64_t offset) const {
    return CnnOutput<Mem>{static_cast<std::uint64_t>(z_.K), o_, bias(x, z_.b4, z_.K), data.labels, rows_, d4_, loss, at, offset};
  }
  /// The softmax cross-entropy of the chunk's logits: D4 and the losses where `at` says.
  void output(const const_vector_type& x, const DenseRows<Mem>& data, std::int64_t c, LossAt at,
              const Kokkos::View<double*, Mem>& loss, std::uint64_t offset) {
    Kokkos::parallel_for("terse::cnn::output", Kokkos::RangePolicy<ExecSpace>(this->space_, 0, c),
                         out_functor(x, data, at, loss, offset));
  }
  static Arg<Mem> first_arg(const Arg<Mem>& a, std::int64_t rows) { return Arg<Mem>(a.data(), rows, a.extent(1)); }

  /// The chunk's gradient (after forward and output) times scale into the blocks of the gradient at gout:
  /// written (first) or added.
  void backward(const const_vector_type& x, std::int64_t c, float scale, bool first_chunk, float* gout) {
    const CnnSizes& z = z_;
    const float beta = first_chunk ? 0.0f : 1.0f;
    const auto grad = [&](std::uint64_t off, std::int64_t r, std::int64_t cols) { return M(gout + off, r, cols); };
    const auto grad_bias = [&](std::uint64_t off, std::int64_t n) { return Kokkos::View<float*, Mem>(gout + off, n); };
    const M d4 = first(d4_, c), z3 = first(z3_, c), d3 = first(d3_, c);
    // output layer
    layers_.gemm("terse::cnn::gemm_output_weights", 'T', 'N', scale, d4, z3, beta, grad(z.W4, z.K, z.H));
    layers_.column_sums(d4, grad_bias(z.b4, z.K), scale, !first_chunk);
    layers_.gemm("terse::cnn::gemm_output_back", 'N', 'N', 1.0f, d4, weights(x, z.W4, z.K, z.H), 0.0f, d3);
    layers_.relu_mask(z3, d3);
    // dense layer
    const M p2 = rows_of(p2_.data(), c, z.F), dp2 = rows_of(dp2_.data(), c, z.F);
    layers_.gemm("terse::cnn::gemm_dense_weights", 'T', 'N', scale, d3, p2, beta, grad(z.W3, z.H, z.F));
    layers_.column_sums(d3, grad_bias(z.b3, z.H), scale, !first_chunk);
    layers_.gemm("terse::cnn::gemm_dense_back", 'N', 'N', 1.0f, d3, weights(x, z.W3, z.H, z.F), 0.0f, dp2);
    // pool2, conv2: dY2 in place of Y2, dCol2 in place of Col2 (after the kernel's gradient has read it)
    const M y2 = first(y2_, c * z.h2 * z.h2), col2 = first(col2_, c * z.h2 * z.h2);
    layers_.pool_relu_backward(c, z.h2, first(dp2_, c * z.q2 * z.q2), first_arg(arg2_, c * z.q2 * z.q2), y2);
    layers_.gemm("terse::cnn::gemm_conv2_weights", 'T', 'N', scale, y2, col2, beta, grad(z.K2, z.c2, kernel_taps * z.c1));
    layers_.column_sums(y2, grad_bias(z.b2, z.c2), scale, !first_chunk);
    layers_.gemm("terse::cnn::gemm_conv2_back", 'N', 'N', 1.0f, y2, weights(x, z.K2, z.c2, kernel_taps * z.c1), 0.0f, col2);
    const M dp1 = first(dp1_, c * z.q1 * z.q1);
    layers_.col2im(z.conv2(c), col2, dp1);
    // pool1, conv1
    const M y1 = first(y1_, c * z.h1 * z.h1), col1 = first(col1_, c * z.h1 * z.h1);
    layers_.pool_relu_backward(c, z.h1, dp1, first_arg(arg1_, c * z.q1 * z.q1), y1);
    layers_.gemm("terse::cnn::gemm_conv1_weights", 'T', 'N', scale, y1, col1, beta, grad(z.K1, z.c1, kernel_taps * z.c0));
    layers_.column_sums(y1, grad_bias(z.b1, z.c1), scale, !first_chunk);
  }
  /// The gradient over this rank's rows into g (scale 1), with want_loss their losses into loss_ on the way.
  void grad_pass(const const_vector_type& x, const vector_type& g, bool want_loss) {
    this->check_vector(x, "x");
    this->check_vector(g, "g");
    const std::uint64_t n = train_.size();
    for (std::uint64_t s = 0; s < n; s += chunk()) {
      const std::int64_t c = static_cast<std::int64_t>(std::min(chunk(), n - s));
      forward(x, train_, contiguous(s), c);
      output(x, train_, c, want_loss ? LossAt::row : LossAt::none, loss_, 0);
      backward(x, c, 1.0f, s == 0, g.data());
    }
    this->space_.fence();
  }

  DenseRows<Mem> train_, test_;
  std::uint64_t n_, n_test_;
  CnnShape shape_;
  std::string source_;
  CnnSizes z_;
  Layers<ExecSpace> layers_;
  LocalRows lr_;
  Kokkos::View<std::uint64_t*, Mem> rows_;
  M a0_, col1_, y1_, p1_, dp1_, col2_, y2_, p2_, dp2_, z3_, d3_, o_, d4_;
  Arg<Mem> arg1_, arg2_;
  Kokkos::View<double*, Mem> loss_, sample_loss_;
  typename Kokkos::View<double*, Mem>::HostMirror sample_loss_host_;
  SumWorkspace<ExecSpace> sum_;
};

/// The image side S of a dataset of S^2 pixels per row.
inline std::int64_t image_side(std::uint64_t pixels, const std::string& source) {
  auto s = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(pixels))));
  if (s < 1 || static_cast<std::uint64_t>(s * s) != pixels)
    throw DataError(source + ": images of " + std::to_string(pixels) + " pixels are not square; the cnn needs S x S");
  return s;
}

inline CnnShape shape_of(const ProblemConfig& config, std::uint64_t pixels, const std::string& source) {
  CnnShape s;
  s.side = image_side(pixels, source);
  s.channels = config.channels;
  s.same = config.padding == Padding::same;
  s.hidden = config.hidden;
  s.classes = fashion_mnist_classes;
  return s;
}

template <class ExecSpace>
std::unique_ptr<Problem<ExecSpace>> make_cnn_from_files(const ProblemConfig& config, const WorkerRange& workers) {
  using Mem = typename ExecSpace::memory_space;
  check_workers(workers);
  const ImageRows rows = read_image_rows(config, workers);
  return std::make_unique<Cnn<ExecSpace>>(
      upload_rows<Mem>(rows.train, RowRange{0, rows.train_range.size()}, "terse::cnn::train"), rows.n,
      upload_rows<Mem>(rows.test, RowRange{0, rows.test_range.size()}, "terse::cnn::test"), rows.nt,
      shape_of(config, rows.pixels, config.train_images), workers, config.train_images, config.products);
}

}  // namespace problem_detail

using namespace problem_detail;

template <class ExecSpace>
std::unique_ptr<Problem<ExecSpace>> make_cnn(const DenseDataset& train, const DenseDataset& test, const CnnShape& shape,
                                             const WorkerRange& workers, DenseProducts products) {
  using Mem = typename ExecSpace::memory_space;
  check_workers(workers);
  check_dense(train, "training");
  check_dense(test, "test");
  if (train.dim != test.dim || train.num_classes != test.num_classes)
    throw std::invalid_argument("cnn: the training and test sets differ in dim or classes");
  CnnShape s = shape;
  s.side = image_side(train.dim, train.source);
  s.classes = train.num_classes;
  const RowRange tr = rank_range(train.rows(), workers, train.source);
  const RowRange te = rank_range(test.rows(), workers, test.source);
  return std::make_unique<Cnn<ExecSpace>>(upload_rows<Mem>(train, tr, "terse::cnn::train"), train.rows(),
                                          upload_rows<Mem>(test, te, "terse::cnn::test"), test.rows(), s, workers,
                                          train.source, products);
}

std::uint64_t cnn_bytes(const CnnShape& shape, std::uint64_t train_rows, std::uint64_t test_rows) {
  return CnnSizes::make(shape).bytes(train_rows, test_rows);
}

#define TERSE_INSTANTIATE(E)                                                                                    \
  template std::unique_ptr<Problem<E>> make_cnn<E>(const DenseDataset&, const DenseDataset&, const CnnShape&, \
                                                   const WorkerRange&, DenseProducts);                            \
  template std::unique_ptr<Problem<E>> problem_detail::make_cnn_from_files<E>(const ProblemConfig&, const WorkerRange&);

TERSE_FOR_EACH_BACKEND(TERSE_INSTANTIATE)
#undef TERSE_INSTANTIATE

}  // namespace terse
