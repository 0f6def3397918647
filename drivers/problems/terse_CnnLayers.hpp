#pragma once
// terse_CnnLayers.hpp: the layers of the convolutional network (problem.kind cnn, terse_Cnn.cpp) as small
// labelled Kokkos kernels over views of one memory space, each a pure function of its inputs (the tests check
// every one against nested loops written from the definition, tests/tstCnn.cpp).
//
// Activations are NHWC: a chunk of B images of S x S pixels and C channels is a (B S S, C) LayoutRight matrix,
// row (b S + y) S + x, so a convolution is one product: im2col writes the (B Ho Wo, 25 C) matrix of the 5 x 5
// patches, column (ky 5 + kx) C + c, and the output is Col K^T with K the (C_out, 25 C) kernel matrix, row o =
// the kernel of output channel o laid out (ky, kx, c). Stride 1; padding pad = 2 ("same": Ho = S) or 0 ("valid":
// Ho = S - 4); pixels outside the image are 0.
//
// Products: dense_gemm is KokkosBlas::gemm (problem.products: library: the host BLAS on host memory, Kokkos
// Kernels' kernels on devices) or terse's FixedGemm (fixed_order: every output summed in double over k
// increasing by one thread, the same bits on every backend and at any thread count). No kernel here uses
// atomics: backward passes are gathers (every output element is written by one thread that sums its terms in
// a fixed order), so the bits depend only on the inputs and the product path.
#include <terse_Compat.hpp>

#include <KokkosBlas3_gemm.hpp>

#include <cstdint>

namespace terse {
namespace Impl {
namespace cnn {

inline constexpr int kernel_side = 5;
inline constexpr int kernel_taps = kernel_side * kernel_side;

template <class Mem>
using Mat = Kokkos::View<float**, Kokkos::LayoutRight, Mem>;
template <class Mem>
using CMat = Kokkos::View<const float**, Kokkos::LayoutRight, Mem>;
template <class Mem>
using Arg = Kokkos::View<std::uint8_t**, Kokkos::LayoutRight, Mem>;

/// One convolution's geometry: B images of S x S pixels, C input channels, padding pad, output side Ho.
struct ConvGeometry {
  std::int64_t B = 0, S = 0, C = 0, pad = 0;
  KOKKOS_INLINE_FUNCTION std::int64_t out_side() const { return S + 2 * pad - (kernel_side - 1); }
  KOKKOS_INLINE_FUNCTION std::int64_t patch() const { return kernel_taps * C; }
};

/// Col(row (b, oy, ox), (ky 5 + kx) C + c) = in(b, oy + ky - pad, ox + kx - pad, c), 0 outside the image. One
/// thread per (row, tap) copies the tap's C contiguous channels.
template <class Mem>
struct Im2col {
  ConvGeometry g;
  CMat<Mem> in;
  Mat<Mem> col;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t t) const {
    const std::int64_t Ho = g.out_side();
    const std::int64_t row = t / kernel_taps, tap = t % kernel_taps;
    const std::int64_t b = row / (Ho * Ho), oy = (row / Ho) % Ho, ox = row % Ho;
    const std::int64_t y = oy + tap / kernel_side - g.pad, x = ox + tap % kernel_side - g.pad;
    float* out = &col(row, tap * g.C);
    if (y >= 0 && y < g.S && x >= 0 && x < g.S) {
      const float* src = &in((b * g.S + y) * g.S + x, 0);
      for (std::int64_t c = 0; c < g.C; ++c) out[c] = src[c];
    } else {
      for (std::int64_t c = 0; c < g.C; ++c) out[c] = 0.0f;
    }
  }
};

/// The data gradient of a convolution from the patches' gradient dCol = dY K (the adjoint of Im2col):
/// dX(b, y, x, c) = sum over taps (ky, kx) increasing with an output (oy, ox) = (y - ky + pad, x - kx + pad) in
/// the image of dCol(row (b, oy, ox), (ky 5 + kx) C + c), summed in double.
template <class Mem>
struct Col2im {
  ConvGeometry g;
  CMat<Mem> dcol;
  Mat<Mem> dx;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t row, std::int64_t c) const {
    const std::int64_t Ho = g.out_side();
    const std::int64_t b = row / (g.S * g.S), y = (row / g.S) % g.S, x = row % g.S;
    double s = 0;
    for (int ky = 0; ky < kernel_side; ++ky) {
      const std::int64_t oy = y - ky + g.pad;
      if (oy < 0 || oy >= Ho) continue;
      for (int kx = 0; kx < kernel_side; ++kx) {
        const std::int64_t ox = x - kx + g.pad;
        if (ox < 0 || ox >= Ho) continue;
        s += dcol((b * Ho + oy) * Ho + ox, (ky * kernel_side + kx) * g.C + c);
      }
    }
    dx(row, c) = static_cast<float>(s);
  }
};

/// Y(r, c) = relu(Y(r, c) + bias(c)) in place (the product's output becomes the layer's activation; Y > 0 is
/// the ReLU's derivative for the backward pass). One thread per row.
template <class Mem>
struct BiasRelu {
  Mat<Mem> y;
  Kokkos::View<const float*, Mem> bias;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t r) const {
    float* row = &y(r, 0);
    const std::int64_t C = static_cast<std::int64_t>(y.extent(1));
    for (std::int64_t c = 0; c < C; ++c) {
      const float v = row[c] + bias(c);
      row[c] = v > 0 ? v : 0.0f;
    }
  }
};

/// 2 x 2 max pooling with stride 2 of B images of S x S (NHWC): out side S / 2 (a last odd row or column is
/// dropped). out(b, py, px, c) = the first maximum of the window in the order (0,0), (0,1), (1,0), (1,1), and
/// arg = its position 2 dy + dx (kept for the backward pass). One thread per pooled pixel, all its channels.
template <class Mem>
struct MaxPool {
  std::int64_t S = 0;
  CMat<Mem> in;
  Mat<Mem> out;
  Arg<Mem> arg;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t row) const {
    const std::int64_t So = S / 2, C = static_cast<std::int64_t>(in.extent(1));
    const std::int64_t b = row / (So * So), py = (row / So) % So, px = row % So;
    const std::int64_t base = (b * S + 2 * py) * S + 2 * px;
    const float* w[4] = {&in(base, 0), &in(base + 1, 0), &in(base + S, 0), &in(base + S + 1, 0)};
    float* o = &out(row, 0);
    std::uint8_t* a = &arg(row, 0);
    for (std::int64_t c = 0; c < C; ++c) {
      float best = w[0][c];
      std::uint8_t at = 0;
      for (std::uint8_t q = 1; q < 4; ++q)
        if (w[q][c] > best) best = w[q][c], at = q;
      o[c] = best;
      a[c] = at;
    }
  }
};

/// The gradient through pooling and the ReLU before it, in place of the activation: act(b, y, x, c) becomes
/// dP(b, y / 2, x / 2, c) where (y, x) is its window's argmax and the activation is > 0, else 0 (windows do not
/// overlap: every element has at most one pooled output).
template <class Mem>
struct PoolReluBackward {
  std::int64_t S = 0;
  CMat<Mem> dpool;
  Kokkos::View<const std::uint8_t**, Kokkos::LayoutRight, Mem> arg;
  Mat<Mem> act;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t row) const {
    const std::int64_t So = S / 2, C = static_cast<std::int64_t>(act.extent(1));
    const std::int64_t b = row / (S * S), y = (row / S) % S, x = row % S;
    float* a = &act(row, 0);
    if (y / 2 >= So || x / 2 >= So) {
      for (std::int64_t c = 0; c < C; ++c) a[c] = 0.0f;
      return;
    }
    const std::int64_t p = (b * So + y / 2) * So + x / 2;
    const std::uint8_t here = static_cast<std::uint8_t>(2 * (y % 2) + x % 2);
    const float* dp = &dpool(p, 0);
    const std::uint8_t* at = &arg(p, 0);
    for (std::int64_t c = 0; c < C; ++c) a[c] = (a[c] > 0 && at[c] == here) ? dp[c] : 0.0f;
  }
};

/// d(r, c) = 0 where act(r, c) <= 0 (the ReLU's derivative, the dense layer's activation kept post-ReLU).
template <class Mem>
struct ReluMask {
  CMat<Mem> act;
  Mat<Mem> d;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t r, std::int64_t c) const {
    if (!(act(r, c) > 0)) d(r, c) = 0.0f;
  }
};

/// out(c) = (accumulate ? out(c) : 0) + alpha sum_r M(r, c), the rows summed in double in increasing order by
/// one thread per column (a bias's gradient).
template <class Mem>
struct ColumnSums {
  CMat<Mem> m;
  Kokkos::View<float*, Mem> out;
  float alpha;
  bool accumulate;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t c) const {
    double s = 0;
    const std::int64_t rows = static_cast<std::int64_t>(m.extent(0));
    for (std::int64_t r = 0; r < rows; ++r) s += m(r, c);
    const float v = static_cast<float>(alpha * s);
    out(c) = accumulate ? out(c) + v : v;
  }
};

/// C = alpha op(A) op(B) + beta C, every entry summed in double over k increasing (problem.products:
/// fixed_order). Naive (no blocking): for tests and reproducibility, not speed.
template <class Mem>
struct FixedGemm {
  CMat<Mem> A, B;
  Mat<Mem> C;
  bool ta, tb;
  float alpha, beta;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t i, std::int64_t j) const {
    const std::int64_t K = static_cast<std::int64_t>(ta ? A.extent(0) : A.extent(1));
    double s = 0;
    for (std::int64_t k = 0; k < K; ++k) s += static_cast<double>(ta ? A(k, i) : A(i, k)) * (tb ? B(j, k) : B(k, j));
    const float v = static_cast<float>(alpha * s);
    C(i, j) = beta == 0.0f ? v : beta * C(i, j) + v;
  }
};

/// The two-dimensional policy over a (rows, cols) matrix.
template <class ExecSpace>
Kokkos::MDRangePolicy<ExecSpace, Kokkos::Rank<2>> policy2(const ExecSpace& space, std::int64_t rows, std::int64_t cols) {
  return Kokkos::MDRangePolicy<ExecSpace, Kokkos::Rank<2>>(space, {0, 0}, {rows, cols});
}

/// C = alpha op(A) op(B) + beta C through the library (KokkosBlas::gemm, which runs on the views' default
/// execution space: space's kernels are fenced first, as terse_Mlp.cpp explains) or FixedGemm.
template <class ExecSpace, class Mem>
void dense_gemm(const ExecSpace& space, bool library, const char* label, char ta, char tb, float alpha,
                const CMat<Mem>& A, const CMat<Mem>& B, float beta, const Mat<Mem>& C) {
  Kokkos::Profiling::pushRegion(label);
  if (library) {
    space.fence();
    const char sa[2] = {ta, 0}, sb[2] = {tb, 0};
    KokkosBlas::gemm(sa, sb, alpha, A, B, beta, C);
  } else {
    Kokkos::parallel_for(label, policy2(space, C.extent(0), C.extent(1)),
                         FixedGemm<Mem>{A, B, C, ta == 'T', tb == 'T', alpha, beta});
  }
  Kokkos::Profiling::popRegion();
}

/// The kernels above as calls on a space (the problem and the tests launch them the same way).
template <class ExecSpace, class Mem = typename ExecSpace::memory_space>
struct Layers {
  ExecSpace space;
  bool library = true;

  void im2col(const ConvGeometry& g, const CMat<Mem>& in, const Mat<Mem>& col) const {
    const std::int64_t Ho = g.out_side();
    Kokkos::parallel_for("terse::cnn::im2col", Kokkos::RangePolicy<ExecSpace>(space, 0, g.B * Ho * Ho * kernel_taps),
                         Im2col<Mem>{g, in, col});
  }
  void col2im(const ConvGeometry& g, const CMat<Mem>& dcol, const Mat<Mem>& dx) const {
    Kokkos::parallel_for("terse::cnn::col2im", policy2(space, g.B * g.S * g.S, g.C), Col2im<Mem>{g, dcol, dx});
  }
  void bias_relu(const Mat<Mem>& y, const Kokkos::View<const float*, Mem>& bias) const {
    Kokkos::parallel_for("terse::cnn::bias_relu", Kokkos::RangePolicy<ExecSpace>(space, 0, y.extent(0)), BiasRelu<Mem>{y, bias});
  }
  void max_pool(std::int64_t B, std::int64_t S, const CMat<Mem>& in, const Mat<Mem>& out, const Arg<Mem>& arg) const {
    Kokkos::parallel_for("terse::cnn::max_pool", Kokkos::RangePolicy<ExecSpace>(space, 0, B * (S / 2) * (S / 2)),
                         MaxPool<Mem>{S, in, out, arg});
  }
  void pool_relu_backward(std::int64_t B, std::int64_t S, const CMat<Mem>& dpool, const Arg<Mem>& arg,
                          const Mat<Mem>& act) const {
    Kokkos::parallel_for("terse::cnn::pool_relu_backward", Kokkos::RangePolicy<ExecSpace>(space, 0, B * S * S),
                         PoolReluBackward<Mem>{S, dpool, arg, act});
  }
  void relu_mask(const CMat<Mem>& act, const Mat<Mem>& d) const {
    Kokkos::parallel_for("terse::cnn::relu_mask", policy2(space, d.extent(0), d.extent(1)), ReluMask<Mem>{act, d});
  }
  void column_sums(const CMat<Mem>& m, const Kokkos::View<float*, Mem>& out, float alpha, bool accumulate) const {
    Kokkos::parallel_for("terse::cnn::column_sums", Kokkos::RangePolicy<ExecSpace>(space, 0, m.extent(1)),
                         ColumnSums<Mem>{m, out, alpha, accumulate});
  }
  void gemm(const char* label, char ta, char tb, float alpha, const CMat<Mem>& A, const CMat<Mem>& B, float beta,
            const Mat<Mem>& C) const {
    dense_gemm<ExecSpace, Mem>(space, library, label, ta, tb, alpha, A, B, beta, C);
  }
};

}  // namespace cnn
}  // namespace Impl
}  // namespace terse
