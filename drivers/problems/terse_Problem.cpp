// terse_Problem.cpp: the problems of `terse run` (quadratic, rosenbrock, logistic, mlp) and their kernels.
// See terse_Problem.hpp for the formulas, the seeds they come from, and the determinism and memory rules.
#include "terse_Problem.hpp"

#include <terse_Random.hpp>
#include <terse_Reduce.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <utility>
#include <vector>

namespace terse {

WorkerRange workers_of_rank(int rank, int ranks, std::int64_t per_rank) {
  if (ranks < 1 || rank < 0 || rank >= ranks || per_rank < 1 ||
      per_rank > std::numeric_limits<int>::max() / ranks)
    throw std::invalid_argument("workers_of_rank: need 0 <= rank < ranks, per_rank >= 1 and ranks * per_rank < 2^31");
  const int p = static_cast<int>(per_rank);
  return WorkerRange{ranks * p, rank * p, p};
}

namespace Impl {
namespace problem {

// ------------------------------------------------------------------------------------------- scalar helpers

/// 1 / (1 + exp(-z)) without overflow.
KOKKOS_INLINE_FUNCTION double sigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + compat::exp(-z));
  const double e = compat::exp(z);
  return e / (1.0 + e);
}

/// log(1 + exp(t)) without overflow.
KOKKOS_INLINE_FUNCTION double softplus(double t) {
  return (t > 0 ? t : 0.0) + compat::log1p(compat::exp(-compat::fabs(t)));
}

/// The nonconvex regulariser of seed 004 eq. (7.1), one coordinate: x^2 / (1 + x^2), and its derivative.
KOKKOS_INLINE_FUNCTION double reg_value(double x) { return x * x / (1.0 + x * x); }
KOKKOS_INLINE_FUNCTION double reg_grad(double x) {
  const double q = 1.0 + x * x;
  return 2.0 * x / (q * q);
}

// ------------------------------------------------------------------------------------------------ quadratic

template <class XV>
struct HalfSquareTerm {
  XV x;
  KOKKOS_INLINE_FUNCTION double operator()(std::size_t i) const {
    const double v = x(i);
    return 0.5 * v * v;
  }
};

/// g(j) = x(j) + noise_std * mean_b xi(b, j) for j < noisy_end (B samples; B == 0: no noise).
template <class XV, class GV>
struct QuadraticGradient {
  XV x;
  GV g;
  CounterRng noise;
  double noise_std;
  std::uint64_t k;
  std::uint32_t w;
  std::uint64_t B, d, noisy_end;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t j) const {
    double v = x(j);
    if (j < noisy_end && B > 0) {
      double s = 0;
      for (std::uint64_t b = 0; b < B; ++b) s += noise.normal(k, w, b * d + j);
      v += noise_std * s / static_cast<double>(B);
    }
    g(j) = static_cast<float>(v);
  }
};

/// G(b, j) = x(j) + noise_std * xi(b, j) for j < noisy_end.
template <class XV, class MV>
struct QuadraticSamples {
  XV x;
  MV G;
  CounterRng noise;
  double noise_std;
  std::uint64_t k;
  std::uint32_t w;
  std::uint64_t d, noisy_end;

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t t) const {
    const std::uint64_t b = t / d, j = t % d;
    double v = x(j);
    if (j < noisy_end) v += noise_std * noise.normal(k, w, b * d + j);
    G(b, j) = static_cast<float>(v);
  }
};

// ----------------------------------------------------------------------------------------------- rosenbrock

/// f_i(x) = 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2, i 0-based in 0 .. d-2.
template <class XV>
struct RosenbrockTerm {
  XV x;
  KOKKOS_INLINE_FUNCTION double operator()(std::size_t i) const {
    const double a = x(i), b = x(i + 1), r = b - a * a;
    return 100.0 * r * r + (1.0 - a) * (1.0 - a);
  }
};

/// d f_i / d x_j.
template <class XV>
KOKKOS_INLINE_FUNCTION double rosenbrock_partial(const XV& x, std::uint64_t i, std::uint64_t j) {
  if (j != i && j != i + 1) return 0.0;
  const double a = x(i), b = x(i + 1), r = b - a * a;
  return j == i ? -400.0 * a * r - 2.0 * (1.0 - a) : 200.0 * r;
}

/// g(j) = scale * d f / d x_j.
template <class XV, class GV>
struct RosenbrockGradient {
  XV x;
  GV g;
  std::uint64_t d;
  double scale;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t j) const {
    double s = 0;
    if (j >= 1) s += rosenbrock_partial(x, j - 1, j);
    if (j + 1 < d) s += rosenbrock_partial(x, j, j);
    g(j) = static_cast<float>(s * scale);
  }
};

/// g(j) = mean_b [ d f_{i_b} / d x_j + noise_std xi(b, j) ], i_b uniform in 0 .. d-2.
template <class XV, class GV>
struct RosenbrockStochastic {
  XV x;
  GV g;
  CounterRng select, noise;
  double noise_std;
  std::uint64_t k;
  std::uint32_t w;
  std::uint64_t B, d;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t j) const {
    double s = 0;
    for (std::uint64_t b = 0; b < B; ++b) {
      const std::uint64_t i = select.below(static_cast<std::uint32_t>(d - 1), k, w, b);
      s += rosenbrock_partial(x, i, j);
      if (noise_std != 0) s += noise_std * noise.normal(k, w, b * d + j);
    }
    g(j) = static_cast<float>(s / static_cast<double>(B));
  }
};

/// G(b, j) = d f_{i_b} / d x_j + noise_std xi(b, j); full: i_b = b, no noise.
template <class XV, class MV>
struct RosenbrockSamples {
  XV x;
  MV G;
  CounterRng select, noise;
  double noise_std;
  std::uint64_t k;
  std::uint32_t w;
  std::uint64_t d;
  bool full;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t t) const {
    const std::uint64_t b = t / d, j = t % d;
    const std::uint64_t i = full ? b : select.below(static_cast<std::uint32_t>(d - 1), k, w, b);
    double v = rosenbrock_partial(x, i, j);
    if (!full && noise_std != 0) v += noise_std * noise.normal(k, w, b * d + j);
    G(b, j) = static_cast<float>(v);
  }
};

// ------------------------------------------------------------------------------------------------- logistic

template <class Mem>
struct Csr {
  Kokkos::View<const std::uint64_t*, Mem> row_ptr;
  Kokkos::View<const std::uint32_t*, Mem> col;
  Kokkos::View<const float*, Mem> val;
  Kokkos::View<const float*, Mem> y;

  template <class XV>
  KOKKOS_INLINE_FUNCTION double margin(const XV& x, std::uint64_t r) const {
    double m = 0;
    for (std::uint64_t e = row_ptr(r); e < row_ptr(r + 1); ++e) m += static_cast<double>(val(e)) * x(col(e));
    return m;
  }
  /// d loss_r / d margin = -y sigma(-y m).
  template <class XV>
  KOKKOS_INLINE_FUNCTION double coefficient(const XV& x, std::uint64_t r) const {
    const double yr = y(r);
    return -yr * sigmoid(-yr * margin(x, r));
  }
};

/// loss(r) = log(1 + exp(-y_r a_r^T x)) and/or coef(r) = -y_r sigma(-y_r a_r^T x).
template <class Mem, class XV>
struct LogisticRowTerms {
  Csr<Mem> csr;
  XV x;
  Kokkos::View<double*, Mem> loss, coef;
  bool want_loss, want_coef;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t r) const {
    const double yr = csr.y(r);
    const double m = csr.margin(x, r);
    if (want_loss) loss(r) = softplus(-yr * m);
    if (want_coef) coef(r) = -yr * sigmoid(-yr * m);
  }
};

/// g(j) = scale * sum over the local workers lw in [w_begin, w_end) and their rows r (increasing) of
/// coef(r) a_rj, plus lambda R'(x_j); one thread per column j through the workers' CSC copies.
template <class Mem, class XV, class GV>
struct LogisticColumns {
  Kokkos::View<const std::uint64_t**, Kokkos::LayoutRight, Mem> csc_ptr;
  Kokkos::View<const std::uint32_t*, Mem> csc_row;
  Kokkos::View<const float*, Mem> csc_val;
  Kokkos::View<const double*, Mem> coef;
  XV x;
  GV g;
  int w_begin, w_end;
  double scale, lambda;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t j) const {
    double s = 0;
    for (int lw = w_begin; lw < w_end; ++lw)
      for (std::uint64_t e = csc_ptr(lw, j); e < csc_ptr(lw, j + 1); ++e) s += coef(csc_row(e)) * csc_val(e);
    double v = s * scale;
    if (lambda != 0) v += lambda * reg_grad(x(j));
    g(j) = static_cast<float>(v);
  }
};

/// The local row of sample b of a worker's batch: drawn uniformly with replacement from its block, or the
/// block's b-th row for a full batch.
struct SampleRows {
  CounterRng select;
  std::uint64_t k;
  std::uint32_t w;
  std::uint64_t block_begin, block_rows;
  bool full;
  KOKKOS_INLINE_FUNCTION std::uint64_t operator()(std::uint64_t b) const {
    return block_begin + (full ? b : select.below(static_cast<std::uint32_t>(block_rows), k, w, b));
  }
};

/// Sample b = b0 + c of a chunk: buf(c, :) = coef a_r (the chunk's rows are zero outside their entries).
template <class Mem, class XV>
struct LogisticChunkScatter {
  Csr<Mem> csr;
  XV x;
  SampleRows rows;
  Kokkos::View<std::uint64_t*, Mem> chunk_rows;
  Kokkos::View<float**, Kokkos::LayoutRight, Mem> buf;
  std::uint64_t b0;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c) const {
    const std::uint64_t r = rows(b0 + c);
    chunk_rows(c) = r;
    const double co = csr.coefficient(x, r);
    for (std::uint64_t e = csr.row_ptr(r); e < csr.row_ptr(r + 1); ++e)
      buf(c, csr.col(e)) = static_cast<float>(co * csr.val(e));
  }
};

/// Resets the entries LogisticChunkScatter wrote, so the chunk buffer is zero again.
template <class Mem>
struct LogisticChunkClear {
  Csr<Mem> csr;
  Kokkos::View<const std::uint64_t*, Mem> chunk_rows;
  Kokkos::View<float**, Kokkos::LayoutRight, Mem> buf;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c) const {
    const std::uint64_t r = chunk_rows(c);
    for (std::uint64_t e = csr.row_ptr(r); e < csr.row_ptr(r + 1); ++e) buf(c, csr.col(e)) = 0.0f;
  }
};

/// acc(j) (+)= sum_{c < chunk} buf(c, j), c increasing.
template <class Mem>
struct ChunkAccumulate {
  Kokkos::View<const float**, Kokkos::LayoutRight, Mem> buf;
  Kokkos::View<double*, Mem> acc;
  std::uint64_t chunk;
  bool first;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t j) const {
    double s = first ? 0.0 : acc(j);
    for (std::uint64_t c = 0; c < chunk; ++c) s += buf(c, j);
    acc(j) = s;
  }
};

/// g(j) = acc(j) * scale + lambda R'(x_j).
template <class Mem, class XV, class GV>
struct FinishAccumulated {
  Kokkos::View<const double*, Mem> acc;
  XV x;
  GV g;
  double scale, lambda;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t j) const {
    double v = acc(j) * scale;
    if (lambda != 0) v += lambda * reg_grad(x(j));
    g(j) = static_cast<float>(v);
  }
};

/// g(j) = g(j) * scale + lambda R'(x_j) (finish_grad).
template <class XV, class GV>
struct ScaleAddRegulariser {
  XV x;
  GV g;
  double scale, lambda;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t j) const {
    double v = static_cast<double>(g(j)) * scale;
    if (lambda != 0) v += lambda * reg_grad(x(j));
    g(j) = static_cast<float>(v);
  }
};

template <class XV>
struct RegulariserTerm {
  XV x;
  KOKKOS_INLINE_FUNCTION double operator()(std::size_t j) const { return reg_value(x(j)); }
};

/// G(b, j) = lambda R'(x_j) (the regulariser's share of every sample's gradient).
template <class XV, class MV>
struct FillRegulariser {
  XV x;
  MV G;
  std::uint64_t d;
  double lambda;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t t) const {
    const std::uint64_t b = t / d, j = t % d;
    G(b, j) = static_cast<float>(lambda * reg_grad(x(j)));
  }
};

/// G(b, :) += coef a_r for the batch's row r of sample b.
template <class Mem, class XV, class MV>
struct LogisticSampleScatter {
  Csr<Mem> csr;
  XV x;
  SampleRows rows;
  MV G;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t b) const {
    const std::uint64_t r = rows(b);
    const double co = csr.coefficient(x, r);
    for (std::uint64_t e = csr.row_ptr(r); e < csr.row_ptr(r + 1); ++e)
      G(b, csr.col(e)) += static_cast<float>(co * csr.val(e));
  }
};

// ------------------------------------------------------------------------------------------------------ mlp

inline constexpr int mlp_max_classes = 16;
inline constexpr std::uint64_t mlp_chunk = 256;  ///< rows per chunk of the forward/backward kernels

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
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c) const { rows_out(c) = contiguous ? start + c : rows(b0 + c); }
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

/// Softmax cross-entropy of chunk row c: D2(c, k) = p_k - [k == y]; loss(r_c) = logsumexp(o) - o_y when wanted.
template <class Mem, class XV>
struct MlpOutput {
  MlpLayout L;
  XV x;
  Kokkos::View<double**, Kokkos::LayoutRight, Mem> Z;
  Kokkos::View<const std::int32_t*, Mem> labels;
  Kokkos::View<const std::uint64_t*, Mem> rows;
  Kokkos::View<double**, Kokkos::LayoutRight, Mem> D2;
  Kokkos::View<double*, Mem> loss;
  bool want_loss;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t c) const {
    double o[mlp_max_classes];
    mlp_logits<Mem>(L, x, Z, c, o);
    double m = o[0];
    for (std::uint64_t k = 1; k < L.K; ++k) m = o[k] > m ? o[k] : m;
    double s = 0;
    for (std::uint64_t k = 0; k < L.K; ++k) s += compat::exp(o[k] - m);
    const double lse = m + compat::log(s);
    const std::uint64_t r = rows(c);
    const std::int32_t y = labels(r);
    for (std::uint64_t k = 0; k < L.K; ++k)
      D2(c, k) = compat::exp(o[k] - lse) - (static_cast<std::int32_t>(k) == y ? 1.0 : 0.0);
    if (want_loss) loss(r) = lse - o[y];
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
    double o[mlp_max_classes];
    mlp_logits<Mem>(L, x, Z, c, o);
    std::uint64_t best = 0;
    for (std::uint64_t k = 1; k < L.K; ++k)
      if (o[k] > o[best]) best = k;
    if (static_cast<std::int32_t>(best) == labels(rows(c))) ++n;
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

template <class XV>
struct Fill {
  XV x;
  float v;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const { x(i) = v; }
};

}  // namespace problem
}  // namespace Impl

namespace {

using namespace Impl::problem;

std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

void check_workers(const WorkerRange& wr) {
  if (wr.total < 1 || wr.count < 1 || wr.first < 0 || wr.first > wr.total - wr.count)
    throw std::invalid_argument("terse problem: bad worker range (W = " + std::to_string(wr.total) + ", first " +
                                std::to_string(wr.first) + ", count " + std::to_string(wr.count) + ")");
}

/// Host copy of a vector into a new device view.
template <class Mem, class T>
Kokkos::View<T*, Mem> upload(const std::vector<T>& v, const std::string& label) {
  Kokkos::View<T*, Mem> d(Kokkos::ViewAllocateWithoutInitializing(label), v.size());
  auto h = Kokkos::create_mirror_view(d);
  for (std::size_t i = 0; i < v.size(); ++i) h(i) = v[i];
  Kokkos::deep_copy(d, h);
  return d;
}

/// The rows of this rank's workers: [begin, end) globally and each worker's block start relative to begin.
struct LocalRows {
  std::uint64_t begin = 0, end = 0;
  std::vector<std::uint64_t> block;  ///< count + 1 offsets into the local rows
  std::uint64_t size() const { return end - begin; }
};

LocalRows local_rows(std::uint64_t n, const WorkerRange& wr, const std::string& source) {
  LocalRows lr;
  lr.begin = row_block(n, wr.total, wr.first, source).begin;
  lr.end = row_block(n, wr.total, wr.end() - 1, source).end;
  for (int w = wr.first; w < wr.end(); ++w) lr.block.push_back(row_block(n, wr.total, w, source).begin - lr.begin);
  lr.block.push_back(lr.size());
  for (int w = wr.first; w < wr.end(); ++w)
    if (row_block(n, wr.total, w, source).size() >= (std::uint64_t(1) << 32))
      throw DataError(source + ": a worker's block has 2^32 rows or more; use more workers");
  return lr;
}

/// Shared argument checks of the public calls.
template <class ExecSpace>
class ProblemBase : public Problem<ExecSpace> {
 public:
  using typename Problem<ExecSpace>::vector_type;
  using typename Problem<ExecSpace>::const_vector_type;
  using typename Problem<ExecSpace>::matrix_type;
  using Policy = Kokkos::RangePolicy<ExecSpace>;

 protected:
  using Problem<ExecSpace>::workers_;
  using Problem<ExecSpace>::space_;

  explicit ProblemBase(const WorkerRange& wr) : Problem<ExecSpace>(wr) { check_workers(wr); }

  template <class V>
  void check_vector(const V& v, const char* what) const {
    if (v.extent(0) != this->dim())
      throw std::invalid_argument(std::string("terse problem: ") + what + " has length " +
                                  std::to_string(v.extent(0)) + ", expected dim = " + std::to_string(this->dim()));
  }
  void check_worker(int w) const {
    if (!workers_.holds(w))
      throw std::out_of_range("terse problem: worker " + std::to_string(w) + " is not on this rank (workers " +
                              std::to_string(workers_.first) + ".." + std::to_string(workers_.end() - 1) + ")");
  }
  void check_batch(const Batch& batch) const {
    if (!batch.full && batch.size < 1)
      throw std::invalid_argument("terse problem: batch size " + std::to_string(batch.size) + " < 1");
    if (!batch.full && static_cast<std::uint64_t>(batch.size) > (std::uint64_t(1) << 40))
      throw std::invalid_argument("terse problem: batch size " + std::to_string(batch.size) + " is absurd");
  }
  void check_samples(const matrix_type& G, int w, const Batch& batch) const {
    const auto rows = static_cast<std::uint64_t>(this->batch_rows(w, batch));
    if (G.extent(0) != rows || G.extent(1) != this->dim())
      throw std::invalid_argument("terse problem: per-sample gradients need a (" + std::to_string(rows) + ", " +
                                  std::to_string(this->dim()) + ") matrix, got (" + std::to_string(G.extent(0)) +
                                  ", " + std::to_string(G.extent(1)) + ")");
  }
  void check_step(const const_vector_type& x, int w, const Batch& batch) const {
    check_vector(x, "x");
    check_worker(w);
    check_batch(batch);
  }
  bool holds_worker0() const { return workers_.first == 0; }
  Policy policy(std::uint64_t n) const { return Policy(space_, 0, n); }
};

// ------------------------------------------------------------------------------------------------ quadratic

template <class ExecSpace>
class Quadratic final : public ProblemBase<ExecSpace> {
  using Base = ProblemBase<ExecSpace>;

 public:
  using typename Base::const_vector_type;
  using typename Base::matrix_type;
  using typename Base::vector_type;
  using Mem = typename ExecSpace::memory_space;

  Quadratic(std::int64_t dim, double x0, double noise_std, NoiseCoords coords, const WorkerRange& wr)
      : Base(wr), d_(static_cast<std::uint64_t>(dim)), x0_(x0), noise_std_(noise_std), coords_(coords) {
    if (dim < 1) throw std::invalid_argument("quadratic: dim must be >= 1");
    if (!(noise_std >= 0) || !std::isfinite(noise_std)) throw std::invalid_argument("quadratic: noise_std must be >= 0");
    sum_ = SumWorkspace<ExecSpace>(d_);
  }

  ProblemKind kind() const override { return ProblemKind::quadratic; }
  std::string description() const override {
    return "quadratic f(x) = 0.5 ||x||^2 (seed 000 Sec. III), d = " + std::to_string(d_) + ", x0 = " + fmt(x0_) +
           ", gradient noise N(0, " + fmt(noise_std_) + "^2) per sample on " +
           (coords_ == NoiseCoords::first ? "the first coordinate" : "every coordinate");
  }
  std::size_t dim() const override { return d_; }
  std::uint64_t rows() const override { return 0; }
  std::uint64_t worker_rows(int w) const override { return this->check_worker(w), 0; }
  std::int64_t batch_rows(int w, const Batch& batch) const override {
    this->check_worker(w);
    this->check_batch(batch);
    return batch.full ? 1 : batch.size;
  }
  void initial_model(const vector_type& x, std::uint64_t) override {
    this->check_vector(x, "x");
    Kokkos::parallel_for("terse::quadratic::initial_model", this->policy(d_),
                         Fill<vector_type>{x, static_cast<float>(x0_)});
    this->space_.fence();
  }
  double local_loss_sum(const const_vector_type& x) override {
    this->check_vector(x, "x");
    if (!this->holds_worker0()) return 0.0;
    deterministic_sum(this->space_, HalfSquareTerm<const_vector_type>{x}, d_, sum_);
    return sum_.host_result();
  }
  void local_grad_sum(const const_vector_type& x, const vector_type& g) override {
    this->check_vector(x, "x");
    this->check_vector(g, "g");
    if (this->holds_worker0())
      Kokkos::parallel_for("terse::quadratic::gradient", this->policy(d_),
                           QuadraticGradient<const_vector_type, vector_type>{x, g, CounterRng{}, 0.0, 0, 0, 0, d_, 0});
    else
      Kokkos::deep_copy(this->space_, g, 0.0f);
    this->space_.fence();
  }
  double finish_loss(double global_sum, const const_vector_type&) override { return global_sum; }
  void finish_grad(const vector_type& g, const const_vector_type&) override { this->check_vector(g, "g"); }

  void stochastic_gradient(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch, std::uint64_t seed,
                           const vector_type& g) override {
    this->check_step(x, w, batch);
    this->check_vector(g, "g");
    const std::uint64_t B = batch.full ? 0 : static_cast<std::uint64_t>(batch.size);
    Kokkos::parallel_for("terse::quadratic::stochastic_gradient", this->policy(d_),
                         QuadraticGradient<const_vector_type, vector_type>{
                             x, g, noise(seed), noise_std_, k, static_cast<std::uint32_t>(w), B, d_, noisy_end()});
    this->space_.fence();
  }
  void per_sample_gradients(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch,
                            std::uint64_t seed, const matrix_type& G) override {
    this->check_step(x, w, batch);
    this->check_samples(G, w, batch);
    const std::uint64_t B = G.extent(0);
    Kokkos::parallel_for("terse::quadratic::per_sample_gradients", this->policy(B * d_),
                         QuadraticSamples<const_vector_type, matrix_type>{x, G, noise(seed), noise_std_, k,
                                                                          static_cast<std::uint32_t>(w), d_,
                                                                          batch.full ? 0 : noisy_end()});
    this->space_.fence();
  }

 private:
  static CounterRng noise(std::uint64_t seed) {
    return CounterRng{seed, static_cast<std::uint32_t>(RandomStream::gradient_noise)};
  }
  std::uint64_t noisy_end() const { return noise_std_ == 0 ? 0 : coords_ == NoiseCoords::first ? 1 : d_; }

  std::uint64_t d_;
  double x0_, noise_std_;
  NoiseCoords coords_;
  SumWorkspace<ExecSpace> sum_;
};

// ----------------------------------------------------------------------------------------------- rosenbrock

template <class ExecSpace>
class Rosenbrock final : public ProblemBase<ExecSpace> {
  using Base = ProblemBase<ExecSpace>;

 public:
  using typename Base::const_vector_type;
  using typename Base::matrix_type;
  using typename Base::vector_type;

  Rosenbrock(std::int64_t dim, double x0, double noise_std, const WorkerRange& wr)
      : Base(wr), d_(static_cast<std::uint64_t>(dim)), x0_(x0), noise_std_(noise_std) {
    if (dim < 2) throw std::invalid_argument("rosenbrock: dim must be >= 2");
    if (d_ - 1 > std::numeric_limits<std::uint32_t>::max()) throw std::invalid_argument("rosenbrock: dim must be < 2^32");
    if (!(noise_std >= 0) || !std::isfinite(noise_std)) throw std::invalid_argument("rosenbrock: noise_std must be >= 0");
    sum_ = SumWorkspace<ExecSpace>(d_);
  }

  ProblemKind kind() const override { return ProblemKind::rosenbrock; }
  std::string description() const override {
    return "Rosenbrock f(x) = sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2 (seed 001 Sec. 5.1), d = " +
           std::to_string(d_) + ", x0 = " + fmt(x0_) + ", sample gradient grad f_i + N(0, " + fmt(noise_std_) +
           "^2 I), i uniform in 1..d-1";
  }
  std::size_t dim() const override { return d_; }
  std::uint64_t rows() const override { return 0; }
  std::uint64_t worker_rows(int w) const override { return this->check_worker(w), 0; }
  std::int64_t batch_rows(int w, const Batch& batch) const override {
    this->check_worker(w);
    this->check_batch(batch);
    return batch.full ? static_cast<std::int64_t>(d_ - 1) : batch.size;
  }
  double sample_gradient_scale() const override { return 1.0 / static_cast<double>(d_ - 1); }
  void initial_model(const vector_type& x, std::uint64_t) override {
    this->check_vector(x, "x");
    Kokkos::parallel_for("terse::rosenbrock::initial_model", this->policy(d_),
                         Fill<vector_type>{x, static_cast<float>(x0_)});
    this->space_.fence();
  }
  double local_loss_sum(const const_vector_type& x) override {
    this->check_vector(x, "x");
    if (!this->holds_worker0()) return 0.0;
    deterministic_sum(this->space_, RosenbrockTerm<const_vector_type>{x}, d_ - 1, sum_);
    return sum_.host_result();
  }
  void local_grad_sum(const const_vector_type& x, const vector_type& g) override {
    this->check_vector(x, "x");
    this->check_vector(g, "g");
    if (this->holds_worker0())
      Kokkos::parallel_for("terse::rosenbrock::gradient", this->policy(d_),
                           RosenbrockGradient<const_vector_type, vector_type>{x, g, d_, 1.0});
    else
      Kokkos::deep_copy(this->space_, g, 0.0f);
    this->space_.fence();
  }
  double finish_loss(double global_sum, const const_vector_type&) override { return global_sum; }
  void finish_grad(const vector_type& g, const const_vector_type&) override { this->check_vector(g, "g"); }

  void stochastic_gradient(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch, std::uint64_t seed,
                           const vector_type& g) override {
    this->check_step(x, w, batch);
    this->check_vector(g, "g");
    if (batch.full)
      Kokkos::parallel_for("terse::rosenbrock::full_gradient", this->policy(d_),
                           RosenbrockGradient<const_vector_type, vector_type>{x, g, d_, sample_gradient_scale()});
    else
      Kokkos::parallel_for("terse::rosenbrock::stochastic_gradient", this->policy(d_),
                           RosenbrockStochastic<const_vector_type, vector_type>{
                               x, g, select(seed), noise(seed), noise_std_, k, static_cast<std::uint32_t>(w),
                               static_cast<std::uint64_t>(batch.size), d_});
    this->space_.fence();
  }
  void per_sample_gradients(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch,
                            std::uint64_t seed, const matrix_type& G) override {
    this->check_step(x, w, batch);
    this->check_samples(G, w, batch);
    Kokkos::parallel_for("terse::rosenbrock::per_sample_gradients", this->policy(G.extent(0) * d_),
                         RosenbrockSamples<const_vector_type, matrix_type>{
                             x, G, select(seed), noise(seed), noise_std_, k, static_cast<std::uint32_t>(w), d_,
                             batch.full});
    this->space_.fence();
  }

 private:
  static CounterRng noise(std::uint64_t seed) {
    return CounterRng{seed, static_cast<std::uint32_t>(RandomStream::gradient_noise)};
  }
  static CounterRng select(std::uint64_t seed) {
    return CounterRng{seed, static_cast<std::uint32_t>(RandomStream::sample_selection)};
  }

  std::uint64_t d_;
  double x0_, noise_std_;
  SumWorkspace<ExecSpace> sum_;
};

// ------------------------------------------------------------------------------------------------- logistic

template <class ExecSpace>
class Logistic final : public ProblemBase<ExecSpace> {
  using Base = ProblemBase<ExecSpace>;

 public:
  using typename Base::const_vector_type;
  using typename Base::matrix_type;
  using typename Base::vector_type;
  using Mem = typename ExecSpace::memory_space;

  Logistic(const SparseDataset& data, double lambda, const WorkerRange& wr) : Base(wr), lambda_(lambda) {
    if (!(lambda >= 0) || !std::isfinite(lambda)) throw std::invalid_argument("logistic: lambda must be >= 0");
    n_ = data.rows();
    d_ = data.dim;
    source_ = data.source;
    if (d_ < 1) throw DataError(data.source + ": the dimension is 0");
    if (data.row_ptr.size() != n_ + 1 || data.col.size() != data.val.size() || data.row_ptr.back() != data.nnz())
      throw std::invalid_argument("logistic: inconsistent CSR dataset");
    lr_ = local_rows(n_, wr, data.source.empty() ? "data" : data.source);
    const std::uint64_t nl = lr_.size();
    if (nl >= (std::uint64_t(1) << 32)) throw DataError(source_ + ": 2^32 rows or more on one rank; use more ranks");

    // Labels: -1/+1 as they are (both present), otherwise the two values mapped by binary_labels(), which refuses
    // one class or more than two.
    std::vector<double> y = data.labels;
    const bool plus_minus = std::all_of(y.begin(), y.end(), [](double v) { return v == -1.0 || v == 1.0; });
    const bool both = std::find(y.begin(), y.end(), 1.0) != y.end() && std::find(y.begin(), y.end(), -1.0) != y.end();
    if (!plus_minus || !both) y = binary_labels(data.labels, data.source).y;

    // CSR of the local rows.
    const std::uint64_t e0 = data.row_ptr[lr_.begin], e1 = data.row_ptr[lr_.end];
    std::vector<std::uint64_t> row_ptr(nl + 1);
    for (std::uint64_t r = 0; r <= nl; ++r) row_ptr[r] = data.row_ptr[lr_.begin + r] - e0;
    std::vector<std::uint32_t> col(data.col.begin() + e0, data.col.begin() + e1);
    std::vector<float> val(data.val.begin() + e0, data.val.begin() + e1);
    std::vector<float> yl(nl);
    for (std::uint64_t r = 0; r < nl; ++r) yl[r] = static_cast<float>(y[lr_.begin + r]);
    for (auto c : col)
      if (c >= d_) throw std::invalid_argument("logistic: a column index exceeds data.dim");

    // One CSC copy per local worker: column j of worker lw holds entries csc_ptr(lw, j) .. csc_ptr(lw, j+1) - 1
    // with increasing rows.
    const int count = wr.count;
    Kokkos::View<std::uint64_t**, Kokkos::LayoutRight, Mem> csc_ptr(
        Kokkos::ViewAllocateWithoutInitializing("terse::logistic::csc_ptr"), count, d_ + 1);
    auto ptr_h = Kokkos::create_mirror_view(csc_ptr);
    std::vector<std::uint32_t> csc_row(col.size());
    std::vector<float> csc_val(col.size());
    std::vector<std::uint64_t> next(d_);
    for (int lw = 0; lw < count; ++lw) {
      const std::uint64_t r0 = lr_.block[lw], r1 = lr_.block[lw + 1];
      std::vector<std::uint64_t> cnt(d_ + 1, 0);
      for (std::uint64_t e = row_ptr[r0]; e < row_ptr[r1]; ++e) ++cnt[col[e] + 1];
      std::uint64_t off = row_ptr[r0];
      for (std::uint64_t j = 0; j <= d_; ++j) {
        off += cnt[j];
        ptr_h(lw, j) = off;
        if (j < d_) next[j] = off;
      }
      for (std::uint64_t r = r0; r < r1; ++r)
        for (std::uint64_t e = row_ptr[r]; e < row_ptr[r + 1]; ++e) {
          const std::uint64_t pos = next[col[e]]++;
          csc_row[pos] = static_cast<std::uint32_t>(r);
          csc_val[pos] = val[e];
        }
    }
    Kokkos::deep_copy(csc_ptr, ptr_h);
    csc_ptr_ = csc_ptr;
    csc_row_ = upload<Mem>(csc_row, "terse::logistic::csc_row");
    csc_val_ = upload<Mem>(csc_val, "terse::logistic::csc_val");
    csr_.row_ptr = upload<Mem>(row_ptr, "terse::logistic::row_ptr");
    csr_.col = upload<Mem>(col, "terse::logistic::col");
    csr_.val = upload<Mem>(val, "terse::logistic::val");
    csr_.y = upload<Mem>(yl, "terse::logistic::y");

    loss_ = Kokkos::View<double*, Mem>("terse::logistic::loss", nl);
    coef_ = Kokkos::View<double*, Mem>("terse::logistic::coef", nl);
    chunk_ = std::max<std::uint64_t>(1, std::min<std::uint64_t>(64, (std::uint64_t(1) << 22) / d_));
    buf_ = Kokkos::View<float**, Kokkos::LayoutRight, Mem>("terse::logistic::chunk", chunk_, d_);  // zero
    chunk_rows_ = Kokkos::View<std::uint64_t*, Mem>("terse::logistic::chunk_rows", chunk_);
    acc_ = Kokkos::View<double*, Mem>("terse::logistic::acc", d_);
    sum_ = SumWorkspace<ExecSpace>(std::max<std::uint64_t>({nl, d_, 1}));
  }

  ProblemKind kind() const override { return ProblemKind::logistic; }
  std::string description() const override {
    return "logistic regression with the nonconvex regulariser of seed 004 eq. (7.1) on " + source_ + ": " +
           std::to_string(n_) + " rows, d = " + std::to_string(d_) + ", lambda = " + fmt(lambda_);
  }
  std::size_t dim() const override { return d_; }
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
  void initial_model(const vector_type& x, std::uint64_t) override {
    this->check_vector(x, "x");
    Kokkos::deep_copy(this->space_, x, 0.0f);
    this->space_.fence();
  }
  double local_loss_sum(const const_vector_type& x) override {
    this->check_vector(x, "x");
    Kokkos::parallel_for("terse::logistic::row_losses", this->policy(lr_.size()),
                         LogisticRowTerms<Mem, const_vector_type>{csr_, x, loss_, coef_, true, false});
    deterministic_sum(this->space_, loss_, lr_.size(), sum_);
    return sum_.host_result();
  }
  void local_grad_sum(const const_vector_type& x, const vector_type& g) override {
    this->check_vector(x, "x");
    this->check_vector(g, "g");
    Kokkos::parallel_for("terse::logistic::row_coefficients", this->policy(lr_.size()),
                         LogisticRowTerms<Mem, const_vector_type>{csr_, x, loss_, coef_, false, true});
    Kokkos::parallel_for("terse::logistic::columns", this->policy(d_),
                         LogisticColumns<Mem, const_vector_type, vector_type>{
                             csc_ptr_, csc_row_, csc_val_, coef_, x, g, 0, this->workers_.count, 1.0, 0.0});
    this->space_.fence();
  }
  double finish_loss(double global_sum, const const_vector_type& x) override {
    this->check_vector(x, "x");
    double reg = 0;
    if (lambda_ != 0) {
      deterministic_sum(this->space_, RegulariserTerm<const_vector_type>{x}, d_, sum_);
      reg = sum_.host_result();
    }
    return global_sum / static_cast<double>(n_) + lambda_ * reg;
  }
  void finish_grad(const vector_type& g, const const_vector_type& x) override {
    this->check_vector(x, "x");
    this->check_vector(g, "g");
    Kokkos::parallel_for("terse::logistic::finish_grad", this->policy(d_),
                         ScaleAddRegulariser<const_vector_type, vector_type>{x, g, 1.0 / static_cast<double>(n_),
                                                                              lambda_});
    this->space_.fence();
  }

  void stochastic_gradient(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch, std::uint64_t seed,
                           const vector_type& g) override {
    this->check_step(x, w, batch);
    this->check_vector(g, "g");
    const int lw = w - this->workers_.first;
    const std::uint64_t r0 = lr_.block[lw], r1 = lr_.block[lw + 1];
    if (batch.full) {
      Kokkos::parallel_for("terse::logistic::row_coefficients", Kokkos::RangePolicy<ExecSpace>(this->space_, r0, r1),
                           LogisticRowTerms<Mem, const_vector_type>{csr_, x, loss_, coef_, false, true});
      Kokkos::parallel_for("terse::logistic::columns", this->policy(d_),
                           LogisticColumns<Mem, const_vector_type, vector_type>{
                               csc_ptr_, csc_row_, csc_val_, coef_, x, g, lw, lw + 1,
                               1.0 / static_cast<double>(r1 - r0), lambda_});
    } else {
      // Chunks of samples: scatter each sample's gradient into a zeroed dense row, add the rows up column by
      // column in sample order, clear what was written.
      const SampleRows rows{select(seed), k, static_cast<std::uint32_t>(w), r0, r1 - r0, false};
      const std::uint64_t B = static_cast<std::uint64_t>(batch.size);
      for (std::uint64_t b0 = 0; b0 < B; b0 += chunk_) {
        const std::uint64_t c = std::min(chunk_, B - b0);
        Kokkos::parallel_for("terse::logistic::chunk_scatter", this->policy(c),
                             LogisticChunkScatter<Mem, const_vector_type>{csr_, x, rows, chunk_rows_, buf_, b0});
        Kokkos::parallel_for("terse::logistic::chunk_accumulate", this->policy(d_),
                             ChunkAccumulate<Mem>{buf_, acc_, c, b0 == 0});
        Kokkos::parallel_for("terse::logistic::chunk_clear", this->policy(c),
                             LogisticChunkClear<Mem>{csr_, chunk_rows_, buf_});
      }
      Kokkos::parallel_for("terse::logistic::finish_batch", this->policy(d_),
                           FinishAccumulated<Mem, const_vector_type, vector_type>{
                               acc_, x, g, 1.0 / static_cast<double>(B), lambda_});
    }
    this->space_.fence();
  }
  void per_sample_gradients(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch,
                            std::uint64_t seed, const matrix_type& G) override {
    this->check_step(x, w, batch);
    this->check_samples(G, w, batch);
    const int lw = w - this->workers_.first;
    const std::uint64_t r0 = lr_.block[lw], r1 = lr_.block[lw + 1];
    const std::uint64_t B = G.extent(0);
    const SampleRows rows{select(seed), k, static_cast<std::uint32_t>(w), r0, r1 - r0, batch.full};
    Kokkos::parallel_for("terse::logistic::per_sample_regulariser", this->policy(B * d_),
                         FillRegulariser<const_vector_type, matrix_type>{x, G, d_, lambda_});
    Kokkos::parallel_for("terse::logistic::per_sample_gradients", this->policy(B),
                         LogisticSampleScatter<Mem, const_vector_type, matrix_type>{csr_, x, rows, G});
    this->space_.fence();
  }

 private:
  static CounterRng select(std::uint64_t seed) {
    return CounterRng{seed, static_cast<std::uint32_t>(RandomStream::sample_selection)};
  }

  double lambda_;
  std::uint64_t n_ = 0, d_ = 0, chunk_ = 1;
  std::string source_;
  LocalRows lr_;
  Csr<Mem> csr_;
  Kokkos::View<const std::uint64_t**, Kokkos::LayoutRight, Mem> csc_ptr_;
  Kokkos::View<const std::uint32_t*, Mem> csc_row_;
  Kokkos::View<const float*, Mem> csc_val_;
  Kokkos::View<double*, Mem> loss_, coef_, acc_;
  Kokkos::View<float**, Kokkos::LayoutRight, Mem> buf_;
  Kokkos::View<std::uint64_t*, Mem> chunk_rows_;
  SumWorkspace<ExecSpace> sum_;
};

// ------------------------------------------------------------------------------------------------------ mlp

/// Local rows of a dense dataset on the device.
template <class Mem>
struct DenseRows {
  Kokkos::View<const float**, Kokkos::LayoutRight, Mem> feats;
  Kokkos::View<const std::int32_t*, Mem> labels;
  std::uint64_t size() const { return labels.extent(0); }
};

template <class Mem>
DenseRows<Mem> upload_rows(const DenseDataset& data, RowRange range, const std::string& label) {
  const std::uint64_t n = range.size(), P = data.dim;
  Kokkos::View<float**, Kokkos::LayoutRight, Mem> feats(Kokkos::ViewAllocateWithoutInitializing(label + "_features"),
                                                        n, P);
  auto fh = Kokkos::create_mirror_view(feats);
  for (std::uint64_t r = 0; r < n; ++r)
    for (std::uint64_t p = 0; p < P; ++p) fh(r, p) = data.features[(range.begin + r) * P + p];
  Kokkos::deep_copy(feats, fh);
  std::vector<std::int32_t> labels(data.labels.begin() + range.begin, data.labels.begin() + range.end);
  return DenseRows<Mem>{feats, upload<Mem>(labels, label + "_labels")};
}

/// The rows of this rank's workers of a dataset of n rows split over the workers.
RowRange rank_range(std::uint64_t n, const WorkerRange& wr, const std::string& source) {
  return RowRange{row_block(n, wr.total, wr.first, source).begin, row_block(n, wr.total, wr.end() - 1, source).end};
}

template <class ExecSpace>
class Mlp final : public ProblemBase<ExecSpace> {
  using Base = ProblemBase<ExecSpace>;

 public:
  using typename Base::const_vector_type;
  using typename Base::matrix_type;
  using typename Base::vector_type;
  using Mem = typename ExecSpace::memory_space;
  using Mat = Kokkos::View<double**, Kokkos::LayoutRight, Mem>;

  /// train, test: this rank's rows; n_train, n_test: the global counts.
  Mlp(DenseRows<Mem> train, std::uint64_t n_train, DenseRows<Mem> test, std::uint64_t n_test, std::uint64_t P,
      int K, std::int64_t hidden, const WorkerRange& wr, std::string source)
      : Base(wr), train_(train), test_(test), n_(n_train), n_test_(n_test), source_(std::move(source)) {
    if (hidden < 1) throw std::invalid_argument("mlp: hidden must be >= 1");
    if (K < 2 || K > mlp_max_classes) throw std::invalid_argument("mlp: 2 to 16 classes");
    L_ = MlpLayout::make(P, static_cast<std::uint64_t>(hidden), static_cast<std::uint64_t>(K));
    lr_ = local_rows(n_, wr, source_);
    rows_ = Kokkos::View<std::uint64_t*, Mem>("terse::mlp::rows", mlp_chunk);
    Z_ = Mat("terse::mlp::Z", mlp_chunk, L_.H);
    D1_ = Mat("terse::mlp::D1", mlp_chunk, L_.H);
    D2_ = Mat("terse::mlp::D2", mlp_chunk, L_.K);
    loss_ = Kokkos::View<double*, Mem>("terse::mlp::loss", train_.size());
    acc_ = Kokkos::View<double*, Mem>("terse::mlp::acc", L_.d);
    sum_ = SumWorkspace<ExecSpace>(std::max<std::uint64_t>(train_.size(), 1));
  }

  ProblemKind kind() const override { return ProblemKind::mlp; }
  std::string description() const override {
    return "one-hidden-layer MLP (" + std::to_string(L_.P) + "-" + std::to_string(L_.H) + "-" + std::to_string(L_.K) +
           ", ReLU, softmax cross-entropy) on " + source_ + ": " + std::to_string(n_) + " training rows, " +
           std::to_string(n_test_) + " test rows, d = " + std::to_string(L_.d);
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
    for (std::uint64_t s = 0; s < n; s += mlp_chunk)
      forward(x, train_, contiguous(s), std::min(mlp_chunk, n - s), true);
    deterministic_sum(this->space_, loss_, n, sum_);
    return sum_.host_result();
  }
  void local_grad_sum(const const_vector_type& x, const vector_type& g) override {
    this->check_vector(x, "x");
    this->check_vector(g, "g");
    const std::uint64_t n = train_.size();
    for (std::uint64_t s = 0; s < n; s += mlp_chunk) {
      const std::uint64_t c = std::min(mlp_chunk, n - s);
      forward(x, train_, contiguous(s), c, false);
      backward(x, c, s == 0);
    }
    finish_acc(g, 1.0);
    this->space_.fence();
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
    for (std::uint64_t b0 = 0; b0 < B; b0 += mlp_chunk) {
      const std::uint64_t c = std::min(mlp_chunk, B - b0);
      forward(x, train_, sampled(rows, b0), c, false);
      backward(x, c, b0 == 0);
    }
    finish_acc(g, 1.0 / static_cast<double>(B));
    this->space_.fence();
  }
  void per_sample_gradients(const const_vector_type& x, int w, std::uint64_t k, const Batch& batch,
                            std::uint64_t seed, const matrix_type& G) override {
    this->check_step(x, w, batch);
    this->check_samples(G, w, batch);
    const std::uint64_t B = G.extent(0);
    const SampleRows rows = sample_rows(w, k, batch, seed);
    for (std::uint64_t b0 = 0; b0 < B; b0 += mlp_chunk) {
      const std::uint64_t c = std::min(mlp_chunk, B - b0);
      forward(x, train_, sampled(rows, b0), c, false);
      delta_hidden(x, c);
      Kokkos::parallel_for("terse::mlp::per_sample_gradients", this->policy(c * L_.d),
                           MlpSamples<Mem, matrix_type>{terms(train_), G, b0});
    }
    this->space_.fence();
  }

  std::uint64_t test_rows() const override { return n_test_; }
  std::optional<std::uint64_t> local_test_correct(const const_vector_type& x) override {
    this->check_vector(x, "x");
    std::uint64_t total = 0;
    const std::uint64_t n = test_.size();
    for (std::uint64_t s = 0; s < n; s += mlp_chunk) {
      const std::uint64_t c = std::min(mlp_chunk, n - s);
      chunk_rows(contiguous(s), c);
      hidden(x, test_, c);
      std::uint64_t correct = 0;
      Kokkos::parallel_reduce("terse::mlp::test_correct", this->policy(c),
                              MlpCorrect<Mem, const_vector_type>{L_, x, Z_, test_.labels, rows_}, correct);
      total += correct;
    }
    return total;
  }

 private:
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
  void hidden(const const_vector_type& x, const DenseRows<Mem>& data, std::uint64_t c) {
    Kokkos::parallel_for("terse::mlp::hidden", this->policy(c * L_.H),
                         MlpHidden<Mem, const_vector_type>{L_, x, data.feats, rows_, Z_});
  }
  void forward(const const_vector_type& x, const DenseRows<Mem>& data, MlpChunkRows<Mem> rows, std::uint64_t c,
               bool want_loss) {
    chunk_rows(rows, c);
    hidden(x, data, c);
    Kokkos::parallel_for("terse::mlp::output", this->policy(c),
                         MlpOutput<Mem, const_vector_type>{L_, x, Z_, data.labels, rows_, D2_, loss_, want_loss});
  }
  void delta_hidden(const const_vector_type& x, std::uint64_t c) {
    Kokkos::parallel_for("terse::mlp::back_hidden", this->policy(c * L_.H),
                         MlpBackHidden<Mem, const_vector_type>{L_, x, Z_, D2_, D1_});
  }
  MlpTerms<Mem> terms(const DenseRows<Mem>& data) const { return MlpTerms<Mem>{L_, data.feats, rows_, Z_, D1_, D2_}; }
  void backward(const const_vector_type& x, std::uint64_t c, bool first) {
    delta_hidden(x, c);
    // Host backends: 16 pixels per thread; devices: one parameter per thread.
    constexpr int G = Kokkos::SpaceAccessibility<Kokkos::HostSpace, Mem>::accessible ? 16 : 1;
    const std::uint64_t groups = (L_.P + G - 1) / G;
    Kokkos::parallel_for("terse::mlp::accumulate", this->policy(L_.H * groups + (L_.d - L_.b1)),
                         MlpAccumulate<Mem, G>{terms(train_), acc_, c, groups, first});
  }
  void finish_acc(const vector_type& g, double scale) {
    Kokkos::parallel_for("terse::mlp::finish", this->policy(L_.d),
                         FinishAccumulated<Mem, vector_type, vector_type>{acc_, g, g, scale, 0.0});
  }

  DenseRows<Mem> train_, test_;
  std::uint64_t n_, n_test_;
  std::string source_;
  MlpLayout L_;
  LocalRows lr_;
  Kokkos::View<std::uint64_t*, Mem> rows_;
  Mat Z_, D1_, D2_;
  Kokkos::View<double*, Mem> loss_, acc_;
  SumWorkspace<ExecSpace> sum_;
};

void check_dense(const DenseDataset& d, const char* what) {
  if (d.rows() == 0 || d.dim == 0 || d.features.size() != d.rows() * d.dim)
    throw std::invalid_argument(std::string("mlp: the ") + what + " set is empty or inconsistent");
  for (auto y : d.labels)
    if (y < 0 || y >= d.num_classes)
      throw DataError(d.source + ": label " + std::to_string(y) + " outside 0.." + std::to_string(d.num_classes - 1));
}

/// Dense [0, 1] features of the IDX images in `range` (pixel / 255, as idx_to_dense), converted row by row so
/// that only this rank's rows become floats.
DenseDataset idx_rows(const IdxPair& pair, RowRange range, int num_classes) {
  DenseDataset out;
  out.dim = pair.images.pixels_per_image();
  out.num_classes = num_classes;
  out.source = pair.images.source;
  out.features.resize(range.size() * out.dim);
  for (std::uint64_t k = 0; k < out.features.size(); ++k)
    out.features[k] = pair.images.pixels[range.begin * out.dim + k] / 255.0f;
  out.labels.assign(pair.labels.labels.begin() + range.begin, pair.labels.labels.begin() + range.end);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------- factories

template <class ExecSpace>
std::unique_ptr<Problem<ExecSpace>> make_quadratic(std::int64_t dim, double x0, double noise_std, NoiseCoords coords,
                                                   const WorkerRange& workers) {
  return std::make_unique<Quadratic<ExecSpace>>(dim, x0, noise_std, coords, workers);
}

template <class ExecSpace>
std::unique_ptr<Problem<ExecSpace>> make_rosenbrock(std::int64_t dim, double x0, double noise_std,
                                                    const WorkerRange& workers) {
  return std::make_unique<Rosenbrock<ExecSpace>>(dim, x0, noise_std, workers);
}

template <class ExecSpace>
std::unique_ptr<Problem<ExecSpace>> make_logistic(const SparseDataset& data, double lambda, const WorkerRange& workers) {
  return std::make_unique<Logistic<ExecSpace>>(data, lambda, workers);
}

template <class ExecSpace>
std::unique_ptr<Problem<ExecSpace>> make_mlp(const DenseDataset& train, const DenseDataset& test, std::int64_t hidden,
                                             const WorkerRange& workers) {
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
                                          train.num_classes, hidden, workers, train.source);
}

template <class ExecSpace>
std::unique_ptr<Problem<ExecSpace>> make_problem(const ProblemConfig& config, const WorkerRange& workers) {
  using Mem = typename ExecSpace::memory_space;
  check_workers(workers);
  switch (config.kind) {
    case ProblemKind::quadratic:
      if (!config.dim) throw UserError("problem.dim: required for problem.kind quadratic");
      return make_quadratic<ExecSpace>(*config.dim, config.x0, config.noise_std, config.noise_coords, workers);
    case ProblemKind::rosenbrock:
      return make_rosenbrock<ExecSpace>(config.dim.value_or(10), config.x0, config.noise_std, workers);
    case ProblemKind::logistic: {
      SparseDataset data;
      if (config.data_format == DataFormat::libsvm) {
        if (!config.data) throw UserError("problem.data: required for problem.data_format libsvm");
        LibsvmOptions options;
        if (config.dim) options.dim = static_cast<std::uint64_t>(*config.dim);
        data = read_libsvm(*config.data, options);
      } else {
        data = fashion_mnist_binary(config.train_images, config.train_labels, config.classes[0], config.classes[1]);
        if (config.dim) {
          if (static_cast<std::uint64_t>(*config.dim) < data.dim)
            throw UserError("problem.dim: " + std::to_string(*config.dim) + " is smaller than the " +
                            std::to_string(data.dim) + " pixels of " + config.train_images);
          data.dim = static_cast<std::uint64_t>(*config.dim);
        }
      }
      return make_logistic<ExecSpace>(data, config.lambda, workers);
    }
    case ProblemKind::mlp: {
      const IdxPair train = read_idx_pair(config.train_images, config.train_labels, fashion_mnist_classes);
      const IdxPair test = read_idx_pair(config.test_images, config.test_labels, fashion_mnist_classes);
      if (train.images.pixels_per_image() != test.images.pixels_per_image())
        throw DataError(config.test_images + ": images of " + std::to_string(test.images.pixels_per_image()) +
                        " pixels, the training images have " + std::to_string(train.images.pixels_per_image()));
      const std::uint64_t n = train.images.count, nt = test.images.count;
      const RowRange tr = rank_range(n, workers, config.train_images);
      const RowRange te = rank_range(nt, workers, config.test_images);
      const DenseDataset train_rows = idx_rows(train, tr, fashion_mnist_classes);
      const DenseDataset test_rows = idx_rows(test, te, fashion_mnist_classes);
      return std::make_unique<Mlp<ExecSpace>>(
          upload_rows<Mem>(train_rows, RowRange{0, tr.size()}, "terse::mlp::train"), n,
          upload_rows<Mem>(test_rows, RowRange{0, te.size()}, "terse::mlp::test"), nt,
          train.images.pixels_per_image(), fashion_mnist_classes, config.hidden, workers, config.train_images);
    }
  }
  throw std::invalid_argument("make_problem: unknown problem kind");
}

#define TERSE_INSTANTIATE_PROBLEM(E)                                                                                \
  template class Problem<E>;                                                                                        \
  template std::unique_ptr<Problem<E>> make_problem<E>(const ProblemConfig&, const WorkerRange&);                  \
  template std::unique_ptr<Problem<E>> make_quadratic<E>(std::int64_t, double, double, NoiseCoords,                 \
                                                         const WorkerRange&);                                       \
  template std::unique_ptr<Problem<E>> make_rosenbrock<E>(std::int64_t, double, double, const WorkerRange&);        \
  template std::unique_ptr<Problem<E>> make_logistic<E>(const SparseDataset&, double, const WorkerRange&);          \
  template std::unique_ptr<Problem<E>> make_mlp<E>(const DenseDataset&, const DenseDataset&, std::int64_t,          \
                                                   const WorkerRange&);

#if defined(KOKKOS_ENABLE_SERIAL)
TERSE_INSTANTIATE_PROBLEM(Kokkos::Serial)
#endif
#if defined(KOKKOS_ENABLE_OPENMP)
TERSE_INSTANTIATE_PROBLEM(Kokkos::OpenMP)
#endif
#if defined(KOKKOS_ENABLE_THREADS)
TERSE_INSTANTIATE_PROBLEM(Kokkos::Threads)
#endif
#if defined(KOKKOS_ENABLE_CUDA)
TERSE_INSTANTIATE_PROBLEM(Kokkos::Cuda)
#endif
#if defined(KOKKOS_ENABLE_HIP)
TERSE_INSTANTIATE_PROBLEM(compat::HIP)
#endif
#undef TERSE_INSTANTIATE_PROBLEM

}  // namespace terse
