// terse_Mlp.cpp: the one-hidden-layer network on Fashion-MNIST (seed 004 Sec. 7.2 in small);
// terse_Problem.hpp has the formulas, terse_ProblemBase.hpp the parts the problems share.
#include "terse_ProblemBase.hpp"

#include <KokkosBlas3_gemm.hpp>

namespace terse {
namespace Impl {
namespace problem {

// ------------------------------------------------------------------------------------------------------ mlp

inline constexpr std::uint64_t mlp_chunk = 256;  ///< rows per chunk of the fixed-order kernels
inline constexpr std::uint64_t mlp_gemm_chunk = 2048;  ///< rows per matrix product of the library path

/// Offsets of the parameter blocks in x: W1 (H x P), b1 (H), W2 (K x H), b2 (K).
struct MlpLayout {
  std::uint64_t P = 0, H = 0, K = 0;
  std::uint64_t b1 = 0, W2 = 0, b2 = 0, d = 0;
  static MlpLayout make(std::uint64_t P, std::uint64_t H, std::uint64_t K) {
    MlpLayout L;
    L.P = P, L.H = H, L.K = K;
    L.b1 = H * P;
    L.W2 = L.b1 + H;
    L.b2 = L.W2 + K * H;
    L.d = L.b2 + K;
    return L;
  }
};

/// The rows of a chunk: contiguous (local row start + c) or sample rows b0 + c of a worker's batch.
template <class Mem>
struct MlpChunkRows {
  Kokkos::View<std::uint64_t*, Mem> rows_out;
  SampleRows rows;
  std::uint64_t start, b0;
  bool contiguous;
  bool given = false;  ///< rows_out holds the rows already (the monitor's samples of several workers)
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c) const {
    if (!given) rows_out(c) = contiguous ? start + c : rows(b0 + c);
  }
};

/// Z(c, h) = b1_h + sum_p W1(h, p) a(r_c, p). The dot product is summed in 8 interleaved partial sums (p mod 8,
/// p increasing) combined by a fixed tree: a fixed order on every backend that breaks the add latency chain and
/// vectorises on the host.
template <class Mem, class XV>
struct MlpHidden {
  MlpLayout L;
  XV x;
  Kokkos::View<const float**, Kokkos::LayoutRight, Mem> feats;
  Kokkos::View<const std::uint64_t*, Mem> rows;
  Kokkos::View<double**, Kokkos::LayoutRight, Mem> Z;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t t) const {
    const std::uint64_t c = t / L.H, h = t % L.H;
    const float* w = x.data() + h * L.P;
    const float* a = &feats(rows(c), 0);
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::uint64_t p = 0;
    for (; p + 8 <= L.P; p += 8)
      for (int q = 0; q < 8; ++q) s[q] += static_cast<double>(w[p + q]) * a[p + q];
    for (int q = 0; p + q < L.P; ++q) s[q] += static_cast<double>(w[p + q]) * a[p + q];
    Z(c, h) = static_cast<double>(x(L.b1 + h)) + combine8(s);
  }
};

/// Logits o_k = b2_k + sum_h W2(k, h) relu(Z(c, h)) of chunk row c into o[0..K).
template <class Mem, class XV>
KOKKOS_INLINE_FUNCTION void mlp_logits(const MlpLayout& L, const XV& x,
                                       const Kokkos::View<double**, Kokkos::LayoutRight, Mem>& Z, std::uint64_t c,
                                       double* o) {
  for (std::uint64_t k = 0; k < L.K; ++k) {
    double s = x(L.b2 + k);
    for (std::uint64_t h = 0; h < L.H; ++h) {
      const double z = Z(c, h);
      if (z > 0) s += static_cast<double>(x(L.W2 + k * L.H + h)) * z;
    }
    o[k] = s;
  }
}


/// Softmax cross-entropy of chunk row c: D2(c, k) = p_k - [k == y]; its loss logsumexp(o) - o_y when wanted.
template <class Mem, class XV>
struct MlpOutput {
  MlpLayout L;
  XV x;
  Kokkos::View<double**, Kokkos::LayoutRight, Mem> Z;
  Kokkos::View<const std::int32_t*, Mem> labels;
  Kokkos::View<const std::uint64_t*, Mem> rows;
  Kokkos::View<double**, Kokkos::LayoutRight, Mem> D2;
  Kokkos::View<double*, Mem> loss;
  LossAt loss_at;
  std::uint64_t offset;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c) const {
    double o[max_classes];
    mlp_logits<Mem>(L, x, Z, c, o);
    const std::uint64_t r = rows(c);
    softmax_xent(L.K, o, r, labels(r), c, D2, loss, loss_at, offset);
  }
};

/// D1(c, h) = [Z(c, h) > 0] sum_k W2(k, h) D2(c, k).
template <class Mem, class XV>
struct MlpBackHidden {
  MlpLayout L;
  XV x;
  Kokkos::View<double**, Kokkos::LayoutRight, Mem> Z, D2, D1;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t t) const {
    const std::uint64_t c = t / L.H, h = t % L.H;
    double s = 0;
    if (Z(c, h) > 0)
      for (std::uint64_t k = 0; k < L.K; ++k) s += static_cast<double>(x(L.W2 + k * L.H + h)) * D2(c, k);
    D1(c, h) = s;
  }
};

/// The gradient term of parameter o for chunk row c.
template <class Mem>
struct MlpTerms {
  MlpLayout L;
  Kokkos::View<const float**, Kokkos::LayoutRight, Mem> feats;
  Kokkos::View<const std::uint64_t*, Mem> rows;
  Kokkos::View<double**, Kokkos::LayoutRight, Mem> Z, D1, D2;

  KOKKOS_INLINE_FUNCTION double term(std::uint64_t o, std::uint64_t c) const {
    if (o < L.b1) return D1(c, o / L.P) * feats(rows(c), o % L.P);
    if (o < L.W2) return D1(c, o - L.b1);
    if (o < L.b2) {
      const std::uint64_t k = (o - L.W2) / L.H, h = (o - L.W2) % L.H;
      const double z = Z(c, h);
      return z > 0 ? D2(c, k) * z : 0.0;
    }
    return D2(c, o - L.b2);
  }
};

/// acc(o) (+)= sum_{c < chunk} term(o, c), c increasing, for every parameter o. Index t < H * groups: W1(h, p)
/// for the G consecutive pixels p of group t % groups (G independent sums, contiguous loads: vectorised on the
/// host; G = 1 on devices, one thread per parameter); t >= H * groups: one of the other parameters. The order
/// of each parameter's sum does not depend on G, so host and device groupings give the same sums. Rows whose
/// hidden unit is inactive (D1 = 0) add nothing and are skipped.
template <class Mem, int G>
struct MlpAccumulate {
  MlpTerms<Mem> t;
  Kokkos::View<double*, Mem> acc;
  std::uint64_t chunk, groups;
  bool first;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const {
    const MlpLayout& L = t.L;
    if (i >= L.H * groups) {
      const std::uint64_t o = L.b1 + (i - L.H * groups);
      double s = first ? 0.0 : acc(o);
      for (std::uint64_t c = 0; c < chunk; ++c) s += t.term(o, c);
      acc(o) = s;
      return;
    }
    const std::uint64_t h = i / groups, p0 = (i % groups) * G;
    const std::uint64_t n = L.P - p0 < G ? L.P - p0 : G;
    double* out = acc.data() + h * L.P + p0;
    double s[G];
    for (int q = 0; q < G; ++q) s[q] = (first || static_cast<std::uint64_t>(q) >= n) ? 0.0 : out[q];
    for (std::uint64_t c = 0; c < chunk; ++c) {
      const double d = t.D1(c, h);
      if (d == 0) continue;
      const float* a = &t.feats(t.rows(c), p0);
      if (n == G) {
        for (int q = 0; q < G; ++q) s[q] += d * a[q];
      } else {
        for (std::uint64_t q = 0; q < n; ++q) s[q] += d * a[q];
      }
    }
    for (std::uint64_t q = 0; q < n; ++q) out[q] = s[q];
  }
};

/// G(b0 + c, o) = term(o, c).
template <class Mem, class MV>
struct MlpSamples {
  MlpTerms<Mem> t;
  MV G;
  std::uint64_t b0;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const {
    const std::uint64_t c = i / t.L.d, o = i % t.L.d;
    G(b0 + c, o) = static_cast<float>(t.term(o, c));
  }
};

/// Number of chunk rows whose argmax of the logits (the first maximum) is the label.
template <class Mem, class XV>
struct MlpCorrect {
  using value_type = std::uint64_t;
  MlpLayout L;
  XV x;
  Kokkos::View<double**, Kokkos::LayoutRight, Mem> Z;
  Kokkos::View<const std::int32_t*, Mem> labels;
  Kokkos::View<const std::uint64_t*, Mem> rows;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c, std::uint64_t& n) const {
    double o[max_classes];
    mlp_logits<Mem>(L, x, Z, c, o);
    if (static_cast<std::int32_t>(argmax_class(L.K, o)) == labels(rows(c))) ++n;
  }
};

// ---- the library path: the two products over the pixels through KokkosBlas::gemm, the rest as above ----

/// Row c of a batch's chunk: its row r = f(c) into rows_out, and A(c, :) = feats(r, :), gathered for the product.
template <class Mem>
struct MlpGather {
  MlpChunkRows<Mem> f;
  Kokkos::View<const float**, Kokkos::LayoutRight, Mem> feats;
  Kokkos::View<float**, Kokkos::LayoutRight, Mem> A;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c) const {
    const std::uint64_t r = f.given ? f.rows_out(c) : f.contiguous ? f.start + c : f.rows(f.b0 + c);
    if (!f.given) f.rows_out(c) = r;
    for (std::size_t p = 0; p < A.extent(1); ++p) A(c, p) = feats(r, p);
  }
};

/// Z(c, h) += b1_h after the product Z = A W1^T; R(c, h) = relu(Z(c, h)).
template <class XV>
struct MlpBiasRelu {
  MlpLayout L;
  XV x;
  Kokkos::View<float**, Kokkos::LayoutRight, typename XV::memory_space> Z, R;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t c, std::int64_t h) const {
    const float z = Z(c, h) + x(L.b1 + h);
    Z(c, h) = z;
    R(c, h) = z > 0 ? z : 0.0f;
  }
};

/// The library path's output layer on the product O = R W2^T: logits o_k = O(c, k) + b2_k; softmax
/// cross-entropy as MlpOutput, D2 in float for the products that follow; with `correct`, counts the rows whose
/// argmax (the first maximum) is the label instead.
template <class Mem, class XV>
struct MlpOutputLogits {
  using value_type = std::uint64_t;
  MlpLayout L;
  XV x;
  Kokkos::View<const float**, Kokkos::LayoutRight, Mem> O;
  Kokkos::View<const std::int32_t*, Mem> labels;
  Kokkos::View<const std::uint64_t*, Mem> rows;
  Kokkos::View<float**, Kokkos::LayoutRight, Mem> D2;
  Kokkos::View<double*, Mem> loss;
  LossAt loss_at;
  std::uint64_t offset;
  KOKKOS_INLINE_FUNCTION void logits(std::size_t c, double* o) const {
    for (std::uint64_t k = 0; k < L.K; ++k) o[k] = static_cast<double>(O(c, k)) + x(L.b2 + k);
  }
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c) const {
    double o[max_classes];
    logits(c, o);
    const std::uint64_t r = rows(c);
    softmax_xent(L.K, o, r, labels(r), c, D2, loss, loss_at, offset);
  }
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c, std::uint64_t& n) const {
    double o[max_classes];
    logits(c, o);
    if (static_cast<std::int32_t>(argmax_class(L.K, o)) == labels(rows(c))) ++n;
  }
};

/// Chunks of at most this many rows take the 10-wide layer in per-row kernels (MlpRowLogits, MlpRowDeltas)
/// instead of two more library calls, whose fixed cost dominates there (a training batch).
inline constexpr std::uint64_t mlp_small_chunk = 256;

/// Row c: Z(c, :) += b1, R(c, :) = relu(Z(c, :)), O(c, k) = sum_h W2(k, h) R(c, h) (the small chunks' bias,
/// ReLU and logits product in one pass).
template <class XV>
struct MlpRowLogits {
  MlpLayout L;
  XV x;
  Kokkos::View<float**, Kokkos::LayoutRight, typename XV::memory_space> Z, R, O;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c) const {
    for (std::uint64_t h = 0; h < L.H; ++h) {
      const float z = Z(c, h) + x(L.b1 + h);
      Z(c, h) = z;
      R(c, h) = z > 0 ? z : 0.0f;
    }
    for (std::uint64_t k = 0; k < L.K; ++k) {
      float s = 0;
      for (std::uint64_t h = 0; h < L.H; ++h) s += x(L.W2 + k * L.H + h) * R(c, h);
      O(c, k) = s;
    }
  }
};

/// Row c: D1(c, h) = [Z(c, h) > 0] sum_k W2(k, h) D2(c, k) (the small chunks' deltas in one pass).
template <class XV>
struct MlpRowDeltas {
  MlpLayout L;
  XV x;
  Kokkos::View<const float**, Kokkos::LayoutRight, typename XV::memory_space> Z, D2;
  Kokkos::View<float**, Kokkos::LayoutRight, typename XV::memory_space> D1;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c) const {
    for (std::uint64_t h = 0; h < L.H; ++h) {
      float s = 0;
      if (Z(c, h) > 0)
        for (std::uint64_t k = 0; k < L.K; ++k) s += x(L.W2 + k * L.H + h) * D2(c, k);
      D1(c, h) = s;
    }
  }
};

/// D1(c, h) = 0 where Z(c, h) <= 0 (the ReLU's derivative), after the product D1 = D2 W2.
template <class Mem>
struct MlpReluMask {
  Kokkos::View<const float**, Kokkos::LayoutRight, Mem> Z;
  Kokkos::View<float**, Kokkos::LayoutRight, Mem> D1;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t c, std::int64_t h) const {
    if (!(Z(c, h) > 0)) D1(c, h) = 0.0f;
  }
};

/// acc(o) (+)= the chunk's gradient of parameter o: the products G1 = D1^T A (W1) and G2 = D2^T R (W2), and
/// for b1 and b2 the sums over the chunk's rows in order, in double (b1_h: sum_c D1(c, h); b2_k: sum_c D2(c, k)).
/// direct (a batch of one chunk): out(o) = that gradient times scale, as FinishAccumulated would write it from
/// acc, without the pass over acc (W1's part is then written by its product, scaled, and not launched here).
template <class Mem>
struct MlpAccumulateLibrary {
  MlpLayout L;
  Kokkos::View<const float**, Kokkos::LayoutRight, Mem> G1, G2, D1, D2, R;
  Kokkos::View<double*, Mem> acc;
  std::uint64_t chunk;
  bool first;
  Kokkos::View<float*, Mem> out;
  double scale;
  bool direct;
  bool w2_sums;  ///< W2(k, h): sum_c D2(c, k) R(c, h) here (small chunks) instead of G2
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t o) const {
    double g = 0;
    if (o < L.b1) {
      g = G1.data()[o];  // G1 is H x P, contiguous: parameter o = h P + p
    } else if (o < L.W2) {
      for (std::uint64_t c = 0; c < chunk; ++c) g += D1(c, o - L.b1);
    } else if (o < L.b2) {
      const std::uint64_t k = (o - L.W2) / L.H, h = (o - L.W2) % L.H;
      if (w2_sums) {
        float s = 0;  // in float, as the product would
        for (std::uint64_t c = 0; c < chunk; ++c) s += D2(c, k) * R(c, h);
        g = s;
      } else {
        g = G2(k, h);
      }
    } else {
      for (std::uint64_t c = 0; c < chunk; ++c) g += D2(c, o - L.b2);
    }
    if (direct) out(o) = static_cast<float>(g * scale);
    else acc(o) = first ? g : acc(o) + g;
  }
};

/// W1 ~ U(-s1, s1), W2 ~ U(-s2, s2), biases 0.
template <class XV>
struct MlpInit {
  MlpLayout L;
  XV x;
  CounterRng rng;
  double s1, s2;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t o) const {
    double v = 0;
    if (o < L.b1) v = s1 * (2.0 * rng.uniform(0, 0, o) - 1.0);
    else if (o >= L.W2 && o < L.b2) v = s2 * (2.0 * rng.uniform(0, 0, o) - 1.0);
    x(o) = static_cast<float>(v);
  }
};


}  // namespace problem
}  // namespace Impl

namespace problem_detail {

// ------------------------------------------------------------------------------------------------------ mlp


template <class ExecSpace>
class Mlp final : public ProblemBase<ExecSpace> {
  using Base = ProblemBase<ExecSpace>;

 public:
  using typename Base::const_vector_type;
  using typename Base::matrix_type;
  using typename Base::vector_type;
  using Mem = typename ExecSpace::memory_space;
  using Mat = Kokkos::View<double**, Kokkos::LayoutRight, Mem>;
  using FMat = Kokkos::View<float**, Kokkos::LayoutRight, Mem>;
  using CFMat = Kokkos::View<const float**, Kokkos::LayoutRight, Mem>;

  /// train, test: this rank's rows; n_train, n_test: the global counts.
  Mlp(DenseRows<Mem> train, std::uint64_t n_train, DenseRows<Mem> test, std::uint64_t n_test, std::uint64_t P,
      int K, std::int64_t hidden, const WorkerRange& wr, std::string source, DenseProducts products)
      : Base(wr), train_(train), test_(test), n_(n_train), n_test_(n_test), source_(std::move(source)),
        library_(products == DenseProducts::library) {
    if (hidden < 1) throw std::invalid_argument("mlp: hidden must be >= 1");
    if (K < 2 || K > max_classes) throw std::invalid_argument("mlp: 2 to 16 classes");
    L_ = MlpLayout::make(P, static_cast<std::uint64_t>(hidden), static_cast<std::uint64_t>(K));
    lr_ = local_rows(n_, wr, source_);
    const std::uint64_t chunk = this->chunk();
    rows_ = Kokkos::View<std::uint64_t*, Mem>("terse::mlp::rows", chunk);
    Z_ = Mat("terse::mlp::Z", mlp_chunk, L_.H);  // the fixed-order kernels (also the per-sample gradients)
    D1_ = Mat("terse::mlp::D1", mlp_chunk, L_.H);
    D2_ = Mat("terse::mlp::D2", mlp_chunk, L_.K);
    if (library_) {
      A_ = FMat(Kokkos::ViewAllocateWithoutInitializing("terse::mlp::gathered_rows"), chunk, L_.P);
      Zf_ = FMat("terse::mlp::Z_library", chunk, L_.H);
      Rf_ = FMat("terse::mlp::R_library", chunk, L_.H);
      Of_ = FMat("terse::mlp::logits_library", chunk, L_.K);
      D1f_ = FMat("terse::mlp::D1_library", chunk, L_.H);
      D2f_ = FMat("terse::mlp::D2_library", chunk, L_.K);
      G1_ = FMat("terse::mlp::W1_gradient", L_.H, L_.P);
      G2_ = FMat("terse::mlp::W2_gradient", L_.K, L_.H);
    }
    loss_ = Kokkos::View<double*, Mem>("terse::mlp::loss", train_.size());
    acc_ = Kokkos::View<double*, Mem>("terse::mlp::acc", L_.d);
    sum_ = SumWorkspace<ExecSpace>(std::max<std::uint64_t>(train_.size(), 1));
  }

  ProblemKind kind() const override { return ProblemKind::mlp; }
  std::string description() const override {
    return "one-hidden-layer MLP (" + std::to_string(L_.P) + "-" + std::to_string(L_.H) + "-" + std::to_string(L_.K) +
           ", ReLU, softmax cross-entropy) on " + source_ + ": " + std::to_string(n_) + " training rows, " +
           std::to_string(n_test_) + " test rows, d = " + std::to_string(L_.d) + "; dense products: " +
           (library_ ? "Kokkos Kernels (KokkosBlas::gemm)" : "terse's fixed-order kernels");
  }
  std::size_t dim() const override { return L_.d; }
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
  void initial_model(const vector_type& x, std::uint64_t seed) override {
    this->check_vector(x, "x");
    Kokkos::parallel_for("terse::mlp::initial_model", this->policy(L_.d),
                         MlpInit<vector_type>{L_, x, CounterRng{seed, static_cast<std::uint32_t>(RandomStream::initial_model)},
                                              1.0 / std::sqrt(static_cast<double>(L_.P)),
                                              1.0 / std::sqrt(static_cast<double>(L_.H))});
    this->space_.fence();
  }
  double local_loss_sum(const const_vector_type& x) override {
    this->check_vector(x, "x");
    const std::uint64_t n = train_.size();
    for (std::uint64_t s = 0; s < n; s += chunk())
      forward(x, train_, contiguous(s), std::min(chunk(), n - s), LossAt::row, loss_, 0);
    deterministic_sum(this->space_, loss_, n, sum_);
    return sum_.host_result();
  }
  std::optional<LossSample> local_loss_sample(const const_vector_type& x, std::uint64_t per_worker, std::uint64_t key,
                                              std::uint64_t seed) override {
    this->check_vector(x, "x");
    if (per_worker < 1) throw std::invalid_argument("mlp: a loss sample needs at least one row per worker");
    const std::uint64_t R = static_cast<std::uint64_t>(this->workers_.count);
    if (sample_loss_.extent(0) < R * per_worker) {  // once per sample size, not per row
      sample_loss_ = Kokkos::View<double*, Mem>("terse::mlp::sample_loss", R * per_worker);
      sample_loss_host_ = Kokkos::create_mirror_view(sample_loss_);
    }
    const auto host = sample_loss_host_;
    const CounterRng rng{seed, static_cast<std::uint32_t>(RandomStream::monitor_sample)};
    const auto worker_rows = [&](int l) {
      return SampleRows{rng, key, static_cast<std::uint32_t>(this->workers_.first + l), lr_.block[l],
                        lr_.block[l + 1] - lr_.block[l], false};
    };
    if (R * per_worker <= chunk()) {  // every local worker's rows in one pass (one product)
      for (int l = 0; l < this->workers_.count; ++l) {
        MlpChunkRows<Mem> f = sampled(worker_rows(l), 0);
        f.rows_out = Kokkos::subview(rows_, rows_range(l * per_worker, (l + 1) * per_worker));
        Kokkos::parallel_for("terse::mlp::sample_rows", this->policy(per_worker), f);
      }
      MlpChunkRows<Mem> given = sampled(worker_rows(0), 0);
      given.given = true;
      forward(x, train_, given, R * per_worker, LossAt::position, sample_loss_, 0);
    } else {
      for (int l = 0; l < this->workers_.count; ++l)
        for (std::uint64_t b0 = 0; b0 < per_worker; b0 += chunk())
          forward(x, train_, sampled(worker_rows(l), b0), std::min(chunk(), per_worker - b0), LossAt::position,
                  sample_loss_, l * per_worker + b0);
    }
    Kokkos::deep_copy(this->space_, host, sample_loss_);
    this->space_.fence();
    return loss_sample_of(host, lr_, this->workers_.count, per_worker, n_);
  }
  void local_grad_sum(const const_vector_type& x, const vector_type& g) override { grad_pass(x, g, false); }
  double local_loss_and_grad_sum(const const_vector_type& x, const vector_type& g) override {
    grad_pass(x, g, true);
    deterministic_sum(this->space_, loss_, train_.size(), sum_);
    return sum_.host_result();
  }
  double finish_loss(double global_sum, const const_vector_type&) override {
    return global_sum / static_cast<double>(n_);
  }
  void finish_grad(const vector_type& g, const const_vector_type& x) override {
    this->check_vector(x, "x");
    this->check_vector(g, "g");
    Kokkos::parallel_for("terse::mlp::finish_grad", this->policy(L_.d),
                         ScaleAddRegulariser<const_vector_type, vector_type>{x, g, 1.0 / static_cast<double>(n_), 0.0});
    this->space_.fence();
  }

  void stochastic_gradient(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch, std::uint64_t seed,
                           const vector_type& g) override {
    this->check_step(x, w, batch);
    this->check_vector(g, "g");
    const std::uint64_t B = static_cast<std::uint64_t>(batch_rows(w, batch));
    const SampleRows rows = sample_rows(w, k, batch, seed);
    const double scale = 1.0 / static_cast<double>(B);
    if (library_ && B <= chunk()) {  // one chunk: the gradient straight into g (the same bits)
      forward(x, train_, sampled(rows, 0), B, LossAt::none, loss_, 0);
      backward(x, sampled(rows, 0), B, true, g, scale);
      this->space_.fence();
      return;
    }
    for (std::uint64_t b0 = 0; b0 < B; b0 += chunk()) {
      const std::uint64_t c = std::min(chunk(), B - b0);
      forward(x, train_, sampled(rows, b0), c, LossAt::none, loss_, 0);
      backward(x, sampled(rows, b0), c, b0 == 0);
    }
    finish_acc(g, scale);
    this->space_.fence();
  }
  /// Per-sample gradients are outer products, not a product over the pixels: the fixed-order kernels on both paths.
  void per_sample_gradients(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch,
                            std::uint64_t seed, const matrix_type& G) override {
    this->check_step(x, w, batch);
    this->check_samples(G, w, batch);
    const std::uint64_t B = G.extent(0);
    const SampleRows rows = sample_rows(w, k, batch, seed);
    for (std::uint64_t b0 = 0; b0 < B; b0 += mlp_chunk) {
      const std::uint64_t c = std::min(mlp_chunk, B - b0);
      forward_fixed(x, train_, sampled(rows, b0), c, LossAt::none, loss_, 0);
      delta_hidden_fixed(x, c);
      Kokkos::parallel_for("terse::mlp::per_sample_gradients", this->policy(c * L_.d),
                           MlpSamples<Mem, matrix_type>{terms_fixed(train_), G, b0});
    }
    this->space_.fence();
  }

  std::uint64_t test_rows() const override { return n_test_; }
  std::optional<std::uint64_t> local_test_correct(const const_vector_type& x) override {
    this->check_vector(x, "x");
    std::uint64_t total = 0;
    const std::uint64_t n = test_.size();
    for (std::uint64_t s = 0; s < n; s += chunk()) {
      const std::uint64_t c = std::min(chunk(), n - s);
      std::uint64_t correct = 0;
      chunk_rows(contiguous(s), c);
      if (library_) {
        hidden_library(x, test_, contiguous(s), c);
        Kokkos::parallel_reduce("terse::mlp::test_correct", this->policy(c),
                                output_logits(x, test_, LossAt::none, loss_, 0), correct);
      } else {
        hidden_fixed(x, test_, c);
        Kokkos::parallel_reduce("terse::mlp::test_correct", this->policy(c),
                                MlpCorrect<Mem, const_vector_type>{L_, x, Z_, test_.labels, rows_}, correct);
      }
      total += correct;
    }
    return total;
  }

 private:
  std::uint64_t chunk() const { return library_ ? mlp_gemm_chunk : mlp_chunk; }
  /// (rows, columns) of a chunk matrix, without the index divisions of a flat range.
  Kokkos::MDRangePolicy<ExecSpace, Kokkos::Rank<2>> policy2(std::uint64_t rows, std::uint64_t cols) const {
    return Kokkos::MDRangePolicy<ExecSpace, Kokkos::Rank<2>>(this->space_, {0, 0},
                                                             {static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols)});
  }
  /// The gradient over this rank's rows into g, and with want_loss their losses into loss_ on the way.
  void grad_pass(const const_vector_type& x, const vector_type& g, bool want_loss) {
    this->check_vector(x, "x");
    this->check_vector(g, "g");
    const std::uint64_t n = train_.size();
    for (std::uint64_t s = 0; s < n; s += chunk()) {
      const std::uint64_t c = std::min(chunk(), n - s);
      forward(x, train_, contiguous(s), c, want_loss ? LossAt::row : LossAt::none, loss_, 0);
      backward(x, contiguous(s), c, s == 0);
    }
    finish_acc(g, 1.0);
    this->space_.fence();
  }
  static Kokkos::pair<std::size_t, std::size_t> rows_range(std::uint64_t a, std::uint64_t b) { return {a, b}; }
  static CounterRng select(std::uint64_t seed) {
    return CounterRng{seed, static_cast<std::uint32_t>(RandomStream::sample_selection)};
  }
  SampleRows sample_rows(int w, std::uint64_t k, const Batch& batch, std::uint64_t seed) const {
    const int lw = w - this->workers_.first;
    const std::uint64_t r0 = lr_.block[lw], r1 = lr_.block[lw + 1];
    return SampleRows{select(seed), k, static_cast<std::uint32_t>(w), r0, r1 - r0, batch.full};
  }
  static MlpChunkRows<Mem> contiguous(std::uint64_t start) { return MlpChunkRows<Mem>{{}, SampleRows{}, start, 0, true}; }
  static MlpChunkRows<Mem> sampled(const SampleRows& rows, std::uint64_t b0) {
    return MlpChunkRows<Mem>{{}, rows, 0, b0, false};
  }
  void chunk_rows(MlpChunkRows<Mem> f, std::uint64_t c) {
    f.rows_out = rows_;
    Kokkos::parallel_for("terse::mlp::chunk_rows", this->policy(c), f);
  }
  void forward(const const_vector_type& x, const DenseRows<Mem>& data, MlpChunkRows<Mem> rows, std::uint64_t c,
               LossAt loss_at, const Kokkos::View<double*, Mem>& loss, std::uint64_t offset) {
    if (!library_) return forward_fixed(x, data, rows, c, loss_at, loss, offset);
    if (rows.contiguous) chunk_rows(rows, c);  // sampled rows: the gather writes rows_
    hidden_library(x, data, rows, c);
    Kokkos::parallel_for("terse::mlp::output", this->policy(c), output_logits(x, data, loss_at, loss, offset));
  }
  MlpOutputLogits<Mem, const_vector_type> output_logits(const const_vector_type& x, const DenseRows<Mem>& data,
                                                        LossAt loss_at, const Kokkos::View<double*, Mem>& loss,
                                                        std::uint64_t offset) const {
    return {L_, x, Of_, data.labels, rows_, D2f_, loss, loss_at, offset};
  }
  /// C = alpha op(A) op(B). The workspaces are views of the memory space, so KokkosBlas::gemm runs on that
  /// space's default execution space and instance (the host BLAS for host memory, whatever the problem's
  /// space: Serial and OpenMP problems get the same products), not on space_: fence space_'s kernels first.
  /// (Handing it space_ with Kokkos Kernels 4 is wrong: its BLAS specialisation is keyed on the views' device,
  /// which for a Serial problem is not Serial's, and the Serial products then differed from OpenMP's in the bits:
  /// ProblemDeterminism.SerialAndOpenMPBitwise caught it.)
  template <class AV, class BV, class CV>
  void gemm(const char* name, const char* ta, const char* tb, const AV& A, const BV& B, const CV& C, float alpha = 1) {
    Kokkos::Profiling::pushRegion(name);
    this->space_.fence();
    KokkosBlas::gemm(ta, tb, alpha, A, B, 0.0f, C);
    Kokkos::Profiling::popRegion();
  }
  /// The chunk's gradient into acc_ (first: =, else +=), or with direct_out straight into it, times scale.
  void backward(const const_vector_type& x, MlpChunkRows<Mem> rows, std::uint64_t c, bool first,
                const vector_type& direct_out = vector_type(), double scale = 1.0) {
    if (!library_) return backward_fixed(x, c, first);
    const CFMat W2(x.data() + L_.W2, L_.K, L_.H);
    const auto D1 = Kokkos::subview(D1f_, rows_range(0, c), Kokkos::ALL());
    const auto D2 = Kokkos::subview(D2f_, rows_range(0, c), Kokkos::ALL());
    const auto R = Kokkos::subview(Rf_, rows_range(0, c), Kokkos::ALL());
    if (c <= mlp_small_chunk) {
      Kokkos::parallel_for("terse::mlp::row_deltas", this->policy(c), MlpRowDeltas<const_vector_type>{L_, x, Zf_, D2f_, D1f_});
    } else {
      gemm("terse::mlp::gemm_back_hidden", "N", "N", D2, W2, D1);  // D1 = D2 W2, then the ReLU's mask
      Kokkos::parallel_for("terse::mlp::relu_mask", policy2(c, L_.H), MlpReluMask<Mem>{Zf_, D1f_});
    }
    const bool direct = direct_out.extent(0) > 0;
    if (direct) {  // W1's gradient: scale D1^T A straight into g's first H P entries
      const FMat G1(direct_out.data(), L_.H, L_.P);
      gemm("terse::mlp::gemm_weights", "T", "N", D1, chunk_matrix(train_, rows, c), G1, static_cast<float>(scale));
    } else {
      gemm("terse::mlp::gemm_weights", "T", "N", D1, chunk_matrix(train_, rows, c), G1_);  // G1 = D1^T A
    }
    const bool small = c <= mlp_small_chunk;  // W2's gradient summed in the accumulate, else a product
    if (!small) gemm("terse::mlp::gemm_output_weights", "T", "N", D2, R, G2_);  // G2 = D2^T R
    const MlpAccumulateLibrary<Mem> f{L_, G1_, G2_, D1f_, D2f_, Rf_, acc_, c, first, direct_out, scale, direct, small};
    if (direct) Kokkos::parallel_for("terse::mlp::accumulate", Kokkos::RangePolicy<ExecSpace>(this->space_, L_.b1, L_.d), f);
    else Kokkos::parallel_for("terse::mlp::accumulate", this->policy(L_.d), f);
  }
  /// The chunk's rows as a matrix: the rows themselves when contiguous, else gathered into A_ (already done by
  /// hidden_library for this chunk).
  CFMat chunk_matrix(const DenseRows<Mem>& data, const MlpChunkRows<Mem>& rows, std::uint64_t c) const {
    if (rows.contiguous)
      return Kokkos::subview(data.feats, rows_range(rows.start, rows.start + c), Kokkos::ALL());
    return Kokkos::subview(A_, rows_range(0, c), Kokkos::ALL());
  }
  /// Zf = A W1^T + b1, Rf = relu(Zf), Of = Rf W2^T through KokkosBlas::gemm (rows_ holds the chunk's rows).
  void hidden_library(const const_vector_type& x, const DenseRows<Mem>& data, const MlpChunkRows<Mem>& rows,
                      std::uint64_t c) {
    if (!rows.contiguous) {
      MlpChunkRows<Mem> f = rows;
      f.rows_out = rows_;
      Kokkos::parallel_for("terse::mlp::gather", this->policy(c), MlpGather<Mem>{f, data.feats, A_});
    }
    const CFMat W1(x.data(), L_.H, L_.P), W2(x.data() + L_.W2, L_.K, L_.H);
    gemm("terse::mlp::gemm_hidden", "N", "T", chunk_matrix(data, rows, c), W1, Kokkos::subview(Zf_, rows_range(0, c), Kokkos::ALL()));
    if (c <= mlp_small_chunk) {
      Kokkos::parallel_for("terse::mlp::row_logits", this->policy(c), MlpRowLogits<const_vector_type>{L_, x, Zf_, Rf_, Of_});
      return;
    }
    Kokkos::parallel_for("terse::mlp::bias_relu", policy2(c, L_.H), MlpBiasRelu<const_vector_type>{L_, x, Zf_, Rf_});
    gemm("terse::mlp::gemm_logits", "N", "T", Kokkos::subview(Rf_, rows_range(0, c), Kokkos::ALL()), W2,
         Kokkos::subview(Of_, rows_range(0, c), Kokkos::ALL()));
  }

  // The fixed-order kernels.
  void hidden_fixed(const const_vector_type& x, const DenseRows<Mem>& data, std::uint64_t c) {
    Kokkos::parallel_for("terse::mlp::hidden", this->policy(c * L_.H),
                         MlpHidden<Mem, const_vector_type>{L_, x, data.feats, rows_, Z_});
  }
  void forward_fixed(const const_vector_type& x, const DenseRows<Mem>& data, MlpChunkRows<Mem> rows, std::uint64_t c,
                     LossAt loss_at, const Kokkos::View<double*, Mem>& loss, std::uint64_t offset) {
    chunk_rows(rows, c);
    hidden_fixed(x, data, c);
    Kokkos::parallel_for("terse::mlp::output", this->policy(c),
                         MlpOutput<Mem, const_vector_type>{L_, x, Z_, data.labels, rows_, D2_, loss, loss_at, offset});
  }
  void delta_hidden_fixed(const const_vector_type& x, std::uint64_t c) {
    Kokkos::parallel_for("terse::mlp::back_hidden", this->policy(c * L_.H),
                         MlpBackHidden<Mem, const_vector_type>{L_, x, Z_, D2_, D1_});
  }
  MlpTerms<Mem> terms_fixed(const DenseRows<Mem>& data) const { return MlpTerms<Mem>{L_, data.feats, rows_, Z_, D1_, D2_}; }
  void backward_fixed(const const_vector_type& x, std::uint64_t c, bool first) {
    delta_hidden_fixed(x, c);
    // Host backends: 16 pixels per thread; devices: one parameter per thread.
    constexpr int G = Kokkos::SpaceAccessibility<Kokkos::HostSpace, Mem>::accessible ? 16 : 1;
    const std::uint64_t groups = (L_.P + G - 1) / G;
    Kokkos::parallel_for("terse::mlp::accumulate", this->policy(L_.H * groups + (L_.d - L_.b1)),
                         MlpAccumulate<Mem, G>{terms_fixed(train_), acc_, c, groups, first});
  }
  void finish_acc(const vector_type& g, double scale) {
    Kokkos::parallel_for("terse::mlp::finish", this->policy(L_.d),
                         FinishAccumulated<Mem, vector_type, vector_type>{acc_, g, g, scale, 0.0});
  }

  DenseRows<Mem> train_, test_;
  std::uint64_t n_, n_test_;
  std::string source_;
  bool library_;
  MlpLayout L_;
  LocalRows lr_;
  Kokkos::View<std::uint64_t*, Mem> rows_;
  Mat Z_, D1_, D2_;
  FMat A_, Zf_, Rf_, Of_, D1f_, D2f_, G1_, G2_;
  Kokkos::View<double*, Mem> loss_, acc_, sample_loss_;
  typename Kokkos::View<double*, Mem>::HostMirror sample_loss_host_;
  SumWorkspace<ExecSpace> sum_;
};



template <class ExecSpace>
std::unique_ptr<Problem<ExecSpace>> make_mlp_from_files(const ProblemConfig& config, const WorkerRange& workers) {
  using Mem = typename ExecSpace::memory_space;
  check_workers(workers);
  const ImageRows rows = read_image_rows(config, workers);
  return std::make_unique<Mlp<ExecSpace>>(
      upload_rows<Mem>(rows.train, RowRange{0, rows.train_range.size()}, "terse::mlp::train"), rows.n,
      upload_rows<Mem>(rows.test, RowRange{0, rows.test_range.size()}, "terse::mlp::test"), rows.nt, rows.pixels,
      fashion_mnist_classes, config.hidden, workers, config.train_images, config.products);
}

}  // namespace problem_detail

using namespace problem_detail;

template <class ExecSpace>
std::unique_ptr<Problem<ExecSpace>> make_mlp(const DenseDataset& train, const DenseDataset& test, std::int64_t hidden,
                                             const WorkerRange& workers, DenseProducts products) {
  using Mem = typename ExecSpace::memory_space;
  check_workers(workers);
  check_dense(train, "training");
  check_dense(test, "test");
  if (train.dim != test.dim || train.num_classes != test.num_classes)
    throw std::invalid_argument("mlp: the training and test sets differ in dim or classes");
  const RowRange tr = rank_range(train.rows(), workers, train.source);
  const RowRange te = rank_range(test.rows(), workers, test.source);
  return std::make_unique<Mlp<ExecSpace>>(upload_rows<Mem>(train, tr, "terse::mlp::train"), train.rows(),
                                          upload_rows<Mem>(test, te, "terse::mlp::test"), test.rows(), train.dim,
                                          train.num_classes, hidden, workers, train.source, products);
}

#define TERSE_INSTANTIATE(E) \
  template std::unique_ptr<Problem<E>> make_mlp<E>(const DenseDataset&, const DenseDataset&, std::int64_t, const WorkerRange&, \
                                                   DenseProducts); \
  template std::unique_ptr<Problem<E>> problem_detail::make_mlp_from_files<E>(const ProblemConfig&, const WorkerRange&);

TERSE_FOR_EACH_BACKEND(TERSE_INSTANTIATE)
#undef TERSE_INSTANTIATE

}  // namespace terse
