#pragma once
// terse_Update.hpp: the optimizer update rules, one fused pass over the vectors each.
//
//   sgd_step                    x <- x - lr g                                   (seed 002 Alg. 2, y_{i,t})
//   amsgrad_step                AMSGrad, m/v/v_hat/x in one pass                (seed 004 Alg. 1, lines 13-16)
//   adagrad_step                AdaGrad                                         (seed 002 Alg. 1)
//   adam_step                   Adam without the max (1-bit Adam's warm-up)     (Tang et al. 2021, Alg. 1)
//   momentum_blend              a worker's momentum b1 m + (1 - b1) g           (1-bit Adam, compression stage)
//   momentum_update             m <- b m + (1 - b) g, a worker's own momentum   (Signum, Bernstein et al. 2019)
//   frozen_adam_step            m <- the received momentum, x <- x - lr m / sqrt(v + nu) with v frozen
//   adaalter_local_step         Local AdaAlter local step, lazy denominator     (seed 002 Alg. 3)
//   adaalter_sync_denominators  Local AdaAlter denominators at a sync           (seed 002 Alg. 3, "else" branch)
//   average_in_place            y <- y / n after an allreduce sum (models, denominators)
//   adaalter_warmup_lr, adaalter_local_index, adaalter_is_sync_step: host-side schedule of Alg. 3 / Sec. 6.2
// The sign step lives in terse_Sign.hpp (sign_apply) and terse_Vote.hpp (sign_apply_voted).
//
// Conventions and the choices made where the papers leave room:
//   * All views are rank-1 of the same extent d and the same value type T (float or double). Host scalars
//     are doubles; each is rounded to T once on the host before the launch, so the loop body is pure T
//     arithmetic (AMSGrad: (1 - beta1) and (1 - beta2) are formed in double, then rounded to T).
//   * Gradients are whatever the driver hands in: for seed 002 Alg. 1 and seed 004 Alg. 1 that is already
//     the worker average G_t = (1/n) sum_i G_{i,t} (resp. the recovered g~_t); the kernels never talk MPI.
//   * AMSGrad (seed 004 Alg. 1, line 1): m_0 = v_0 = 0; v_hat_0 is not written in line 1, we take
//     v_hat_0 = 0 (zero initial state, as the Sec. 3 recursion implies). No bias correction. nu is added
//     to v_hat inside the square root: V_hat_t = diag(v_hat_t + nu) (line 16), so the step is
//     x <- x - alpha_t m_t / sqrt(v_hat_t + nu), not m / (sqrt(v_hat) + nu).
//   * Adam and 1-bit Adam (the baseline of seed 004 Sec. 7.2, Tang et al. 2021): the same conventions as
//     AMSGrad (zero initial m and v, no bias correction, nu inside the square root), so the warm-up of 1-bit
//     Adam is AMSGrad without the max. After the warm-up v is frozen: each worker forms its momentum
//     b1 m + (1 - b1) g_w (momentum_blend, in place on the gradient), the compressed average comes back as
//     the new m (frozen_adam_step).
//   * AdaGrad (seed 002 Alg. 1): `eps` is epsilon, not epsilon^2; the kernel adds eps^2 inside the square
//     root, x <- x - eta G / sqrt(B^2 + eps^2), after accumulating B^2 <- B^2 + G o G (the new B_t^2 is used,
//     as in Alg. 1). Alg. 1 starts from B_0^2 = 0: the caller zero-fills `accum`.
//   * Local AdaAlter (seed 002 Alg. 3) keeps two vectors per worker besides x:
//       denom  = B^2_{i,t-t'}, the denominator as of the last sync (identical on all workers; fixed in between);
//       accum  = B^2_{i,t-1} before the step and A^2_{i,t} = B^2_{i,t-1} + G o G after it (Alg. 3 writes
//                B^2_{i,t} <- A^2_{i,t} on local steps, so this one vector holds both names).
//     Both start at b0^2 (Alg. 3, Initialize: B^2_{i,0} = b0^2 1; Sec. 6.1 uses b0 = 1): the caller fills
//     them, e.g. Kokkos::deep_copy(space, denom, b0 * b0) and the same for accum.
//     Local step at global iteration t (t = 1, 2, ...) with t' = mod(t-1, H) + 1 (adaalter_local_index):
//       x <- x - eta_t G / sqrt(denom + t' eps^2),   accum <- accum + G o G.
//     `eps` is epsilon; t' eps^2 is formed in double, then rounded to T (seed 002 Sec. 4.2: eps^2 is the
//     placeholder for the not yet added G o G, so after t' local steps it is t' eps^2).
//     Sync, when mod(t, H) == 0 (adaalter_is_sync_step), after that iteration's local step:
//       x:     allreduce-sum over the n workers, then average_in_place(x, 1/n)   (x_{i,t} <- (1/n) sum_k y_{k,t})
//       accum: allreduce-sum over the n workers, then adaalter_sync_denominators(denom, accum, 1/n), which
//              averages accum and copies it into denom        (B^2_{i,t} <- (1/n) sum_k A^2_{k,t}, and that
//              B^2_{i,t} is the B^2_{i,t-t'} of the next H local steps).
//     What is averaged at a sync is the full accumulated denominator A^2 (Alg. 3 literally), not only the
//     increments since the last sync; in exact arithmetic the two agree because denom is the same everywhere.
//     With H = 1 Alg. 3 is NOT AdaGrad (Sec. 4.2: "even if we take H = 1, AdaAlter is different from AdaGrad
//     due to the lazy update"): the step uses B^2_{t-1} + eps^2 where AdaGrad uses B^2_t + eps^2.
//   * Warm-up (seed 002 Sec. 6.2): eta_t = eta * min(1, t / warm_up_steps) with t the 1-based global
//     iteration of Alg. 3, so step 1 uses eta / warm_up_steps and steps >= warm_up_steps use eta ("In the
//     first warm_up_steps iterations, the learning rate will gradually increase from eta/warm_up_steps to
//     eta"). warm_up_steps <= 0 means no warm-up. The paper applies it to (Local) AdaAlter only.
//   * average_in_place multiplies by inv_count rounded to T; for a power-of-two worker count this is the
//     exact division by n, otherwise it can differ from y / n by one rounding.
//
// Every loop is one pass with no branches but the max of AMSGrad (a conditional select) and uses
// terse::compat::sqrt, so GCC/Clang vectorise it (the project compiles kernels with -fno-math-errno).

#include <terse_Compat.hpp>

#include "impl/terse_Checks.hpp"

#include <cstddef>
#include <type_traits>

namespace terse {

/// Hyper-parameters of seed 004 Alg. 1 (lines 13-16): alpha_t = lr, beta1, beta2, nu.
struct AmsgradParams {
  double lr;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double nu = 1e-8;
};

namespace Impl {

template <class ExecSpace, class View>
constexpr void check_update_view() {
  check_view<ExecSpace, View>();
  static_assert(std::is_floating_point<typename View::non_const_value_type>::value,
                "terse update kernels take fp32 or fp64 views");
}

template <class ExecSpace, class XView, class... Views>
constexpr void check_update_views() {
  check_update_view<ExecSpace, XView>();
  (check_update_view<ExecSpace, Views>(), ...);
  static_assert((std::is_same<typename XView::non_const_value_type, typename Views::non_const_value_type>::value && ...),
                "all views of an update kernel hold the same value type");
}

/// Host backends run blocks of update_block_size contiguous coordinates per work item, with the scalars
/// copied into locals first: a float member of the functor may alias a float store, so in a
/// per-coordinate loop GCC reloads every coefficient each iteration and gives up on vectorising AMSGrad
/// (too many run-time alias checks). Device backends map one thread to one coordinate.
inline constexpr std::size_t update_block_size = 4096;


/// Runs f.apply(i, coefs) over one block of coordinates, with coefs held in a local copy.
template <class Functor>
struct UpdateBlocks {
  Functor f;
  std::size_t n;
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t b) const {
    const typename Functor::coefs_type k = f.coefs;
    const std::size_t begin = b * update_block_size;
    const std::size_t end = compat::min(n, begin + update_block_size);
    for (std::size_t i = begin; i < end; ++i) f.apply(i, k);
  }
};

template <class ExecSpace, class Functor>
void launch_update(const char* label, const ExecSpace& space, std::size_t n, const Functor& f) {
  if constexpr (host_loops_v<ExecSpace>) {
    const std::size_t blocks = (n + update_block_size - 1) / update_block_size;
    Kokkos::parallel_for(label, Kokkos::RangePolicy<ExecSpace>(space, 0, blocks), UpdateBlocks<Functor>{f, n});
  } else {
    Kokkos::parallel_for(label, Kokkos::RangePolicy<ExecSpace>(space, 0, n), f);
  }
}

// seed 002 Alg. 2: y <- x - eta G.
template <class XView, class GView>
struct UpdateSgd {
  using T = typename XView::non_const_value_type;
  struct coefs_type {
    T lr;
  };
  XView x;
  GView g;
  coefs_type coefs;
  KOKKOS_INLINE_FUNCTION void apply(std::size_t i, const coefs_type& k) const { x(i) = x(i) - k.lr * g(i); }
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const { apply(i, coefs); }
};

// seed 004 Alg. 1, lines 13-16:
//   m_t = b1 m_{t-1} + (1 - b1) g_t;  v_t = b2 v_{t-1} + (1 - b2) g_t^2;  v_hat_t = max(v_hat_{t-1}, v_t);
//   x_{t+1} = x_t - alpha_t m_t / sqrt(v_hat_t + nu).
template <class XView, class MView, class VView, class VHView, class GView>
struct UpdateAmsgrad {
  using T = typename XView::non_const_value_type;
  struct coefs_type {
    T lr, b1, c1, b2, c2, nu;  // c1 = 1 - beta1, c2 = 1 - beta2
  };
  XView x;
  MView m;
  VView v;
  VHView v_hat;
  GView g;
  coefs_type coefs;
  KOKKOS_INLINE_FUNCTION void apply(std::size_t i, const coefs_type& k) const {
    const T gi = g(i);
    const T mi = k.b1 * m(i) + k.c1 * gi;
    const T vi = k.b2 * v(i) + k.c2 * (gi * gi);
    const T hi = compat::max(v_hat(i), vi);  // a select, no branch
    m(i) = mi;
    v(i) = vi;
    v_hat(i) = hi;
    x(i) = x(i) - k.lr * mi / compat::sqrt(hi + k.nu);
  }
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const { apply(i, coefs); }
};

// Adam (1-bit Adam's warm-up): m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  x <- x - lr m / sqrt(v + nu).
template <class XView, class MView, class VView, class GView>
struct UpdateAdam {
  using T = typename XView::non_const_value_type;
  struct coefs_type {
    T lr, b1, c1, b2, c2, nu;
  };
  XView x;
  MView m;
  VView v;
  GView g;
  coefs_type coefs;
  KOKKOS_INLINE_FUNCTION void apply(std::size_t i, const coefs_type& k) const {
    const T gi = g(i);
    const T mi = k.b1 * m(i) + k.c1 * gi;
    const T vi = k.b2 * v(i) + k.c2 * (gi * gi);
    m(i) = mi;
    v(i) = vi;
    x(i) = x(i) - k.lr * mi / compat::sqrt(vi + k.nu);
  }
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const { apply(i, coefs); }
};

// A momentum: out <- b1 m + (1 - b1) g, out being g (1-bit Adam's worker: what it compresses) or m (Signum's
// worker: its own momentum, kept).
template <class MView, class GView, class OView>
struct UpdateMomentumBlend {
  using T = typename GView::non_const_value_type;
  struct coefs_type {
    T b1, c1;
  };
  MView m;
  GView g;
  OView out;
  coefs_type coefs;
  KOKKOS_INLINE_FUNCTION void apply(std::size_t i, const coefs_type& k) const { out(i) = k.b1 * m(i) + k.c1 * g(i); }
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const { apply(i, coefs); }
};

// 1-bit Adam, compression stage: m <- u (the received momentum);  x <- x - lr u / sqrt(v + nu), v frozen.
template <class XView, class MView, class VView, class UView>
struct UpdateFrozenAdam {
  using T = typename XView::non_const_value_type;
  struct coefs_type {
    T lr, nu;
  };
  XView x;
  MView m;
  VView v;
  UView u;
  coefs_type coefs;
  KOKKOS_INLINE_FUNCTION void apply(std::size_t i, const coefs_type& k) const {
    const T ui = u(i);
    m(i) = ui;
    x(i) = x(i) - k.lr * ui / compat::sqrt(v(i) + k.nu);
  }
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const { apply(i, coefs); }
};

// seed 002 Alg. 1: B_t^2 <- B_{t-1}^2 + G_t o G_t;  x_t <- x_{t-1} - eta G_t / sqrt(B_t^2 + eps^2).
template <class XView, class AView, class GView>
struct UpdateAdagrad {
  using T = typename XView::non_const_value_type;
  struct coefs_type {
    T lr, eps2;
  };
  XView x;
  AView accum;
  GView g;
  coefs_type coefs;
  KOKKOS_INLINE_FUNCTION void apply(std::size_t i, const coefs_type& k) const {
    const T gi = g(i);
    const T b2 = accum(i) + gi * gi;
    accum(i) = b2;
    x(i) = x(i) - k.lr * gi / compat::sqrt(b2 + k.eps2);
  }
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const { apply(i, coefs); }
};

// seed 002 Alg. 3: y_{i,t} <- x_{i,t-1} - eta G_{i,t} / sqrt(B^2_{i,t-t'} + t' eps^2);
//                  A^2_{i,t} <- B^2_{i,t-1} + G_{i,t} o G_{i,t}.
template <class XView, class DView, class AView, class GView>
struct UpdateAdaAlterLocal {
  using T = typename XView::non_const_value_type;
  struct coefs_type {
    T lr, placeholder;  // placeholder = t' eps^2
  };
  XView x;
  DView denom;
  AView accum;
  GView g;
  coefs_type coefs;
  KOKKOS_INLINE_FUNCTION void apply(std::size_t i, const coefs_type& k) const {
    const T gi = g(i);
    x(i) = x(i) - k.lr * gi / compat::sqrt(denom(i) + k.placeholder);
    accum(i) = accum(i) + gi * gi;
  }
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const { apply(i, coefs); }
};

// seed 002 Alg. 3, sync: B^2_{i,t} <- (1/n) sum_k A^2_{k,t} (accum holds the sum), and it becomes the
// lazily used denominator B^2_{i,t-t'} of the next period.
template <class DView, class AView>
struct UpdateAdaAlterSync {
  using T = typename DView::non_const_value_type;
  struct coefs_type {
    T inv_count;
  };
  DView denom;
  AView accum;
  coefs_type coefs;
  KOKKOS_INLINE_FUNCTION void apply(std::size_t i, const coefs_type& k) const {
    const T b2 = accum(i) * k.inv_count;
    accum(i) = b2;
    denom(i) = b2;
  }
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const { apply(i, coefs); }
};

// seed 002 Alg. 2/3, sync: x_{i,t} <- (1/n) sum_k y_{k,t} (y holds the sum).
template <class YView>
struct UpdateScale {
  using T = typename YView::non_const_value_type;
  struct coefs_type {
    T factor;
  };
  YView y;
  coefs_type coefs;
  KOKKOS_INLINE_FUNCTION void apply(std::size_t i, const coefs_type& k) const { y(i) = y(i) * k.factor; }
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t i) const { apply(i, coefs); }
};

}  // namespace Impl

/// SGD step (seed 002 Alg. 2, y_{i,t} <- x_{i,t-1} - eta G_{i,t}): x(i) <- x(i) - lr * g(i).
template <class ExecSpace, class XView, class GView>
void sgd_step(const ExecSpace& space, const XView& x, const GView& g, double lr) {
  Impl::check_update_views<ExecSpace, XView, GView>();
  using T = typename XView::non_const_value_type;
  Impl::require(g.extent(0) == x.extent(0), "terse::sgd_step: views of the wrong extent");
  Impl::launch_update("terse::sgd_step", space, x.extent(0), Impl::UpdateSgd<XView, GView>{x, g, {static_cast<T>(lr)}});
}

/// Fused AMSGrad step (seed 004 Alg. 1, lines 13-16), one pass over x, m, v, v_hat (read and written)
/// and g (read):
///   m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  v_hat <- max(v_hat, v);  x <- x - lr m / sqrt(v_hat + nu).
/// Start from m = v = v_hat = 0 (zero-initialised views); no bias correction. lr is alpha_t of this step.
template <class ExecSpace, class XView, class MView, class VView, class VHView, class GView>
void amsgrad_step(const ExecSpace& space, const XView& x, const MView& m, const VView& v, const VHView& v_hat,
                  const GView& g, const AmsgradParams& p) {
  Impl::check_update_views<ExecSpace, XView, MView, VView, VHView, GView>();
  using T = typename XView::non_const_value_type;
  const std::size_t n = x.extent(0);
  Impl::require(m.extent(0) == n && v.extent(0) == n && v_hat.extent(0) == n && g.extent(0) == n,
                "terse::amsgrad_step: views of the wrong extent");
  Impl::launch_update("terse::amsgrad_step", space, n,
                      Impl::UpdateAmsgrad<XView, MView, VView, VHView, GView>{
                          x, m, v, v_hat, g,
                          {static_cast<T>(p.lr), static_cast<T>(p.beta1), static_cast<T>(1.0 - p.beta1),
                           static_cast<T>(p.beta2), static_cast<T>(1.0 - p.beta2), static_cast<T>(p.nu)}});
}

/// Fused Adam step (1-bit Adam's warm-up stage; Tang et al. 2021, Alg. 1 before the freeze), one pass:
///   m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  x <- x - lr m / sqrt(v + nu).
/// AMSGrad's conventions (zero initial state, no bias correction, nu inside the root); p.beta2 and p.nu as there.
template <class ExecSpace, class XView, class MView, class VView, class GView>
void adam_step(const ExecSpace& space, const XView& x, const MView& m, const VView& v, const GView& g,
               const AmsgradParams& p) {
  Impl::check_update_views<ExecSpace, XView, MView, VView, GView>();
  using T = typename XView::non_const_value_type;
  const std::size_t n = x.extent(0);
  Impl::require(m.extent(0) == n && v.extent(0) == n && g.extent(0) == n,
                "terse::adam_step: views of the wrong extent");
  Impl::launch_update("terse::adam_step", space, n,
                      Impl::UpdateAdam<XView, MView, VView, GView>{
                          x, m, v, g,
                          {static_cast<T>(p.lr), static_cast<T>(p.beta1), static_cast<T>(1.0 - p.beta1),
                           static_cast<T>(p.beta2), static_cast<T>(1.0 - p.beta2), static_cast<T>(p.nu)}});
}

/// A worker's momentum in 1-bit Adam's compression stage, in place on its gradient: g <- b1 m + (1 - b1) g
/// (m the shared momentum of the last step). The worker then compresses g with error feedback.
template <class ExecSpace, class MView, class GView>
void momentum_blend(const ExecSpace& space, const MView& m, const GView& g, double beta1) {
  Impl::check_update_views<ExecSpace, GView, MView>();
  using T = typename GView::non_const_value_type;
  Impl::require(m.extent(0) == g.extent(0), "terse::momentum_blend: views of the wrong extent");
  Impl::launch_update(
      "terse::momentum_blend", space, g.extent(0),
      Impl::UpdateMomentumBlend<MView, GView, GView>{m, g, g, {static_cast<T>(beta1), static_cast<T>(1.0 - beta1)}});
}

/// A worker's own momentum, in place (Signum, Bernstein et al. 2019): m <- b m + (1 - b) g; the same arithmetic
/// as momentum_blend, written into m instead of g.
template <class ExecSpace, class MView, class GView>
void momentum_update(const ExecSpace& space, const MView& m, const GView& g, double beta) {
  Impl::check_update_views<ExecSpace, GView, MView>();
  using T = typename GView::non_const_value_type;
  Impl::require(m.extent(0) == g.extent(0), "terse::momentum_update: views of the wrong extent");
  Impl::launch_update(
      "terse::momentum_update", space, g.extent(0),
      Impl::UpdateMomentumBlend<MView, GView, MView>{m, g, m, {static_cast<T>(beta), static_cast<T>(1.0 - beta)}});
}

/// 1-bit Adam's step after the warm-up, with the variance v frozen: m <- u (the momentum the server sent
/// back);  x <- x - lr u / sqrt(v + nu). v is read only.
template <class ExecSpace, class XView, class MView, class VView, class UView>
void frozen_adam_step(const ExecSpace& space, const XView& x, const MView& m, const VView& v, const UView& u,
                      double lr, double nu) {
  Impl::check_update_views<ExecSpace, XView, MView, VView, UView>();
  using T = typename XView::non_const_value_type;
  const std::size_t n = x.extent(0);
  Impl::require(m.extent(0) == n && v.extent(0) == n && u.extent(0) == n,
                "terse::frozen_adam_step: views of the wrong extent");
  Impl::launch_update("terse::frozen_adam_step", space, n,
                      Impl::UpdateFrozenAdam<XView, MView, VView, UView>{x, m, v, u, {static_cast<T>(lr), static_cast<T>(nu)}});
}

/// AdaGrad step (seed 002 Alg. 1): accum <- accum + g o g;  x <- x - lr g / sqrt(accum + eps^2).
/// eps is epsilon (squared here, in double, then rounded to T); accum starts at 0 (B_0^2 = 0).
template <class ExecSpace, class XView, class AView, class GView>
void adagrad_step(const ExecSpace& space, const XView& x, const AView& accum, const GView& g, double lr,
                  double eps) {
  Impl::check_update_views<ExecSpace, XView, AView, GView>();
  using T = typename XView::non_const_value_type;
  const std::size_t n = x.extent(0);
  Impl::require(accum.extent(0) == n && g.extent(0) == n, "terse::adagrad_step: views of the wrong extent");
  Impl::launch_update("terse::adagrad_step", space, n,
                      Impl::UpdateAdagrad<XView, AView, GView>{x, accum, g,
                                                               {static_cast<T>(lr), static_cast<T>(eps * eps)}});
}

/// Local AdaAlter local step of one worker (seed 002 Alg. 3), at global iteration t with
/// local_index = t' = mod(t-1, H) + 1 (adaalter_local_index):
///   x     <- x - lr g / sqrt(denom + t' eps^2)     (y_{i,t}; denom = B^2_{i,t-t'}, not changed here)
///   accum <- accum + g o g                         (A^2_{i,t} = B^2_{i,t-1} + G_{i,t} o G_{i,t})
/// lr is the warmed-up eta_t (adaalter_warmup_lr). Run it on every iteration, sync iterations included;
/// on a sync iteration follow it with the averaging of x and adaalter_sync_denominators.
template <class ExecSpace, class XView, class DView, class AView, class GView>
void adaalter_local_step(const ExecSpace& space, const XView& x, const DView& denom, const AView& accum,
                         const GView& g, double lr, double eps, long local_index) {
  Impl::check_update_views<ExecSpace, XView, DView, AView, GView>();
  using T = typename XView::non_const_value_type;
  const std::size_t n = x.extent(0);
  Impl::require(denom.extent(0) == n && accum.extent(0) == n && g.extent(0) == n,
                "terse::adaalter_local_step: views of the wrong extent");
  Impl::require(local_index >= 1, "terse::adaalter_local_step: local_index must be >= 1");
  Impl::launch_update("terse::adaalter_local_step", space, n,
                      Impl::UpdateAdaAlterLocal<XView, DView, AView, GView>{
                          x, denom, accum, g,
                          {static_cast<T>(lr), static_cast<T>(static_cast<double>(local_index) * eps * eps)}});
}

/// Local AdaAlter denominators at a sync (seed 002 Alg. 3, else branch), after the driver has replaced
/// accum by its allreduce sum over the n workers, sum_k A^2_{k,t}:
///   accum <- accum * inv_count;  denom <- accum        (B^2_{i,t} <- (1/n) sum_k A^2_{k,t})
/// so that the next H local steps use it as B^2_{i,t-t'} and keep accumulating from it.
template <class ExecSpace, class DView, class AView>
void adaalter_sync_denominators(const ExecSpace& space, const DView& denom, const AView& accum, double inv_count) {
  Impl::check_update_views<ExecSpace, DView, AView>();
  using T = typename DView::non_const_value_type;
  Impl::require(accum.extent(0) == denom.extent(0), "terse::adaalter_sync_denominators: views of the wrong extent");
  Impl::launch_update("terse::adaalter_sync_denominators", space, denom.extent(0),
                      Impl::UpdateAdaAlterSync<DView, AView>{denom, accum, {static_cast<T>(inv_count)}});
}

/// y <- y * inv_count: the averaging after an MPI allreduce sum of models (seed 002 Alg. 2 and 3,
/// x_{i,t} <- (1/n) sum_k y_{k,t}) or of denominators. The MPI call is the driver's.
template <class ExecSpace, class YView>
void average_in_place(const ExecSpace& space, const YView& y, double inv_count) {
  Impl::check_update_views<ExecSpace, YView>();
  using T = typename YView::non_const_value_type;
  Impl::launch_update("terse::average_in_place", space, y.extent(0),
                      Impl::UpdateScale<YView>{y, {static_cast<T>(inv_count)}});
}

/// Warm-up of seed 002 Sec. 6.2: eta_t = lr * min(1, step / warmup_steps), step = t >= 1 the global
/// iteration (1-based). warmup_steps <= 0: no warm-up, lr.
inline double adaalter_warmup_lr(double lr, long step, long warmup_steps) {
  if (warmup_steps <= 0 || step >= warmup_steps) return lr;
  return lr * (static_cast<double>(step) / static_cast<double>(warmup_steps));
}

/// t' = mod(t-1, H) + 1 of seed 002 Alg. 3: the number of local steps since the last sync, 1..H.
inline long adaalter_local_index(long step, long sync_period) {
  if (sync_period < 1) throw std::invalid_argument("terse: sync_period must be >= 1");
  return (step - 1) % sync_period + 1;
}

/// Whether iteration t (1-based) of seed 002 Alg. 3 ends with a sync: mod(t, H) == 0.
inline bool adaalter_is_sync_step(long step, long sync_period) {
  if (sync_period < 1) throw std::invalid_argument("terse: sync_period must be >= 1");
  return step % sync_period == 0;
}

}  // namespace terse
