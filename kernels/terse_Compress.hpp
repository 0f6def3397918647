#pragma once
// terse_Compress.hpp: the compression kernels and the messages they write (the compressor types and the memories
// over them, error feedback and the Markov sequence, are in terse_Compressor.hpp).
//
//   scaled sign     C(x) = (||x||_1 / d) sign(x)                          seed 004 Sec. 4 (footnote 2), seed 001 App. E
//   stochastic sign C(x) = ||x||_2 * sign~(x), P[sign~(x)_i = +1] = 1/2 + x_i / (2 ||x||_2),
//                   sign~(0) = 0                                          seed 001 App. E, Def. 3
//   top-k           C(x) keeps the k largest |x_j| (terse_TopK.hpp)       seed 004 Sec. 7.2 (EF21 baseline)
//   rand-k          C(x) keeps k coordinates drawn without replacement, each as (n / k) x_j (unbiased:
//                   E C(x) = x); the random counterpart of top-k          (Stich et al. 2018; Richtarik et al.)
//   sharded blocks  one rank's block of the server's scaled sign of a vector split over ranks, with a Markov
//                   or an error-feedback memory (markov_sign_block, error_feedback_sign_block)
//
// A sign-compressed vector travels as a SignMessage: the packed signs (terse_Sign.hpp conventions) and one
// scale, c_i = scale * (+-1); a top-k one as a SparseMessage of (index, value) pairs. message_add() decodes
// either into an accumulator: y <- y + alpha * c.
//
// Every sign compression is one fused pass over the vectors: it packs the signs and, in the same pass, writes
// the chunk sums of |p| (or p^2) that give the scale (a deterministic sum, terse_Reduce.hpp, so a run does
// not depend on the thread count). Impl::fused_sign_pass takes the per-coordinate value as a step functor
// (PlainStep, ErrorFeedbackStep, MarkovStep), so that a memory's update can ride in the same pass (the lazy
// memories of terse_Compressor.hpp).

#include <terse_Random.hpp>
#include <terse_Reduce.hpp>
#include <terse_Sign.hpp>
#include <terse_TopK.hpp>

#include <string>

namespace terse {

/// A sign-compressed vector: n packed signs and one scale on the device; c_i = scale * (+-1).
template <class ExecSpace, class T>
struct SignMessage {
  using execution_space = ExecSpace;
  using memory_space = typename ExecSpace::memory_space;
  using value_type = T;

  Kokkos::View<sign_word_t*, memory_space> words;
  Kokkos::View<T, memory_space> scale;
  std::size_t n = 0;

  SignMessage() = default;
  explicit SignMessage(std::size_t n_, const std::string& label = "terse::sign_message")
      : words(label + ".words", packed_words(n_)), scale(label + ".scale"), n(n_) {}

  /// Bits on the wire: one per coordinate plus the scale.
  std::size_t payload_bits() const { return n + 8 * sizeof(T); }
  /// Bytes the constructor allocates for n coordinates.
  static constexpr std::size_t bytes(std::size_t n) { return packed_words(n) * sizeof(sign_word_t) + sizeof(T); }
};

namespace Impl {

/// What the fused kernels sum besides packing the signs: |p_i|, in the vectors' own precision within a
/// word (lane_sum64), in double across words.
struct SumAbs {
  template <class T>
  KOKKOS_INLINE_FUNCTION static T term(T v) {
    return compat::fabs(v);
  }
};

/// One word per iteration: p_i = step(i [, c_prev_i]) for its 64 coordinates; writes the packed signs of p
/// and the chunk sum of Sum::term(p_i) (lane_sum64, as Impl::ChunkSum). With HasPrev, c_prev_i is the
/// previous message's value (prev_scale * (+-1)), passed to the step for its lazy memory update.
template <bool HasPrev, class Sum, class Step, class WView, class PView, class PrevWords, class PrevScale>
struct FusedSignPass {
  static constexpr bool has_prev = HasPrev;
  using sum_type = Sum;
  Step step;
  WView words;
  PView partials;
  PrevWords prev_words;
  PrevScale prev_scale;
  std::size_t n;

  template <class T, class Bits>
  KOKKOS_INLINE_FUNCTION T value(std::size_t i, Bits prev_bits, int j, T s) const {
    if constexpr (HasPrev) {
      return step(i, ((prev_bits >> j) & 1u) ? s : T(-s));
    } else {
      (void)prev_bits, (void)j, (void)s;
      return step(i);
    }
  }

  KOKKOS_INLINE_FUNCTION void operator()(std::size_t w) const {
    using T = typename Step::value_type;
    const std::size_t begin = w * sign_word_bits;
    sign_word_t prev_bits = 0;
    T s = 0;
    if constexpr (HasPrev) {
      prev_bits = prev_words(w);
      s = prev_scale();
    }
    // Simple loops over the word's 64 values (values, signs, sums) rather than one loop, and 32-bit halves
    // of the words: each loop vectorises.
    T v[sign_word_bits];
    sign_word_t bits = 0;
    if (begin + sign_word_bits <= n) {
      for (int h = 0; h < 2; ++h) {
        const std::uint32_t prev_half = static_cast<std::uint32_t>(prev_bits >> (32 * h));
        for (int j = 0; j < 32; ++j) v[32 * h + j] = value(begin + 32 * h + j, prev_half, j, s);
      }
      for (int h = 0; h < 2; ++h) {
        std::uint32_t half = 0;
        for (int j = 0; j < 32; ++j) half |= static_cast<std::uint32_t>(sign_bit(v[32 * h + j])) << j;
        bits |= static_cast<sign_word_t>(half) << (32 * h);
      }
    } else {
      for (int j = 0; j < sign_word_bits; ++j) {
        if (begin + j < n) {
          v[j] = value(begin + j, prev_bits, j, s);
          bits |= sign_bit(v[j]) << j;
        } else {
          v[j] = T(0);
        }
      }
    }
    T t[sign_word_bits];
    for (int j = 0; j < sign_word_bits; ++j) t[j] = Sum::term(v[j]);
    words(w) = bits;
    partials(w) = lane_sum64(t);
  }
};

/// Device path of FusedSignPass (impl/terse_Lanes.hpp): a team thread per word, lane u computes p_i for the
/// word's coordinates u, u+8, ..., u+56 (each exactly once, so the step's memory update happens once) and adds
/// their terms in lane_sum64's order; the bits and the chunk sum are bitwise those of FusedSignPass.
template <class Pass>
struct FusedSignPassLanes {
  Pass pass;  // its views, step and value()

  template <class Member>
  KOKKOS_INLINE_FUNCTION void operator()(const Member& team) const {
    using T = typename decltype(pass.step)::value_type;
    const std::size_t n = pass.n;
    for_team_words(team, packed_words(n), [&](std::size_t w) {
      const std::size_t begin = w * sign_word_bits;
      sign_word_t prev_bits = 0;
      T s = 0;
      if constexpr (Pass::has_prev) {
        prev_bits = pass.prev_words(w);
        s = pass.prev_scale();
      }
      WordPartial<T> r;
      Kokkos::parallel_reduce(
          Kokkos::ThreadVectorRange(team, word_lanes),
          [&](int u, WordPartial<T>& acc) {
            T lane = T(-0.0);  // lane_sum64's lane u: t_u + t_{u+8} + ... in turn
            for (int j = u; j < sign_word_bits; j += word_lanes) {
              T v = T(0);
              if (begin + j < n) {
                v = pass.value(begin + j, prev_bits, j, s);
                acc.bits |= sign_bit(v) << j;
              }
              lane += Pass::sum_type::term(v);
            }
            acc.add_to_slot(u, lane);
          },
          WordPartialReducer<T>(r));
      Kokkos::single(Kokkos::PerThread(team), [&]() {
        double d[word_lanes];
        for (int u = 0; u < word_lanes; ++u) d[u] = static_cast<double>(r.acc[u]);
        pass.words(w) = r.bits;
        pass.partials(w) = combine8(d);
      });
    });
  }
};

/// p_i = x(i).
template <class XView>
struct PlainStep {
  using value_type = typename XView::non_const_value_type;
  static constexpr bool has_memory = false;
  XView x;
  KOKKOS_INLINE_FUNCTION value_type operator()(std::size_t i) const { return x(i); }
};

/// Error feedback: p_i = g(i) + e(i), stored in e (e holds p until the next pass subtracts c).
template <class GView, class EView>
struct ErrorFeedbackStep {
  using value_type = typename EView::non_const_value_type;
  static constexpr bool has_memory = true;
  GView g;
  EView e;
  KOKKOS_INLINE_FUNCTION value_type operator()(std::size_t i) const {
    const value_type p = g(i) + e(i);
    e(i) = p;
    return p;
  }
  KOKKOS_INLINE_FUNCTION value_type operator()(std::size_t i, value_type c_prev) const {
    const value_type p = g(i) + (e(i) - c_prev);  // e_{t-1} = p_{t-1} - c_{t-1}, then p_t = g_t + e_{t-1}
    e(i) = p;
    return p;
  }
};

/// Markov sequence: p_i = w(i) - w_hat(i) (w_hat lags one message behind until the next pass adds it).
template <class WView, class HView>
struct MarkovStep {
  using value_type = typename HView::non_const_value_type;
  static constexpr bool has_memory = true;
  WView w;
  HView w_hat;
  KOKKOS_INLINE_FUNCTION value_type operator()(std::size_t i) const { return w(i) - w_hat(i); }
  KOKKOS_INLINE_FUNCTION value_type operator()(std::size_t i, value_type c_prev) const {
    const value_type h = w_hat(i) + c_prev;  // w_hat_{t-1} = w_hat_{t-2} + c_{t-1}
    w_hat(i) = h;
    return w(i) - h;
  }
};

/// The step factor * scale() of a sign apply, read on the device from a message's scale.
template <class ScaleView, class T>
struct ScaledStep {
  ScaleView scale;
  T factor;
  KOKKOS_INLINE_FUNCTION T operator()() const { return factor * static_cast<T>(scale()); }
};

/// double(x(i))^2.
template <class XView>
struct SquareOf {
  XView x;
  KOKKOS_INLINE_FUNCTION double operator()(std::size_t i) const {
    const double v = static_cast<double>(x(i));
    return v * v;
  }
};

/// One fused pass: a word per work item on host backends, FusedSignPassLanes on devices.
template <class ExecSpace, class Pass>
void launch_fused_sign_pass(const ExecSpace& space, const char* label, const Pass& pass) {
  if constexpr (host_loops_v<ExecSpace>) {
    if (!device_paths_on_host()) {
      Kokkos::parallel_for(label, Kokkos::RangePolicy<ExecSpace>(space, 0, packed_words(pass.n)), pass);
      return;
    }
  }
  Kokkos::parallel_for(label, word_lanes_policy(space, packed_words(pass.n)), FusedSignPassLanes<Pass>{pass});
}

template <class ExecSpace, class Sum, class Step, class T>
void fused_sign_pass(const ExecSpace& space, const char* label, const Step& step, std::size_t n,
                     const SignMessage<ExecSpace, T>& out, const SumWorkspace<ExecSpace>& ws,
                     const SignMessage<ExecSpace, T>* prev) {
  using Mem = typename ExecSpace::memory_space;
  using Words = Kokkos::View<sign_word_t*, Mem>;
  using Scale = Kokkos::View<T, Mem>;
  using Partials = typename SumWorkspace<ExecSpace>::partials_type;
  Impl::require(out.n == n, "terse: the message was made for another dimension");
  Impl::require(n <= ws.capacity(), "terse: the SumWorkspace is smaller than the vector");
  if constexpr (Step::has_memory) {
    if (prev) {
      launch_fused_sign_pass(space, label, FusedSignPass<true, Sum, Step, Words, Partials, Words, Scale>{
                                               step, out.words, ws.partials(), prev->words, prev->scale, n});
      ws.finish(space, packed_words(n));
      return;
    }
  }
  launch_fused_sign_pass(space, label, FusedSignPass<false, Sum, Step, Words, Partials, Words, Scale>{
                                           step, out.words, ws.partials(), Words(), Scale(), n});
  ws.finish(space, packed_words(n));
}

/// scale() = sum / n (scaled sign) or sqrt(sum) (stochastic sign), rounded to T.
template <class ExecSpace, class T>
void set_scale(const ExecSpace& space, const SignMessage<ExecSpace, T>& m, const SumWorkspace<ExecSpace>& ws,
               bool l2) {
  auto sum = ws.result();
  auto scale = m.scale;
  const double inv_n = m.n ? 1.0 / static_cast<double>(m.n) : 0.0;
  Kokkos::parallel_for(
      "terse::compress_scale", Kokkos::RangePolicy<ExecSpace>(space, 0, 1), KOKKOS_LAMBDA(std::size_t) {
        scale() = static_cast<T>(l2 ? compat::sqrt(sum()) : sum() * inv_n);
      });
}

/// Stochastic sign bits: +1 with probability 1/2 + x_i / (2 norm); all +1 (and scale 0) when norm = 0.
template <class XView, class WView, class SumView>
struct StochasticSignPack {
  XView x;
  WView words;
  SumView sum_squares;
  CounterRng rng;
  std::uint64_t iteration;
  std::uint32_t worker;
  std::size_t n;

  /// The bits of coordinates 4q .. 4q+3 of word w (in place), from one Philox draw: coordinate i uses
  /// rng.uniform_lane(iteration, worker, i).
  KOKKOS_INLINE_FUNCTION sign_word_t quad_bits(std::size_t w, int q, double norm, double half_inv_norm) const {
    const std::size_t begin = w * sign_word_bits;
    const Philox4x32 r = rng.draw(iteration, worker, begin / 4 + q);
    sign_word_t bits = 0;
    for (int lane = 0; lane < 4 && begin + 4 * q + lane < n; ++lane) {
      const std::size_t i = begin + 4 * q + lane;
      const double p_plus = 0.5 + half_inv_norm * static_cast<double>(x(i));
      const bool plus = norm == 0.0 || CounterRng::lane_to_uniform(r.v[lane]) < p_plus;
      bits |= static_cast<sign_word_t>(plus) << (4 * q + lane);
    }
    return bits;
  }

  /// Host backends: a word per work item.
  KOKKOS_INLINE_FUNCTION void operator()(std::size_t w) const {
    const double norm = compat::sqrt(sum_squares());
    const double half_inv_norm = norm == 0.0 ? 0.0 : 0.5 / norm;
    sign_word_t bits = 0;
    for (int q = 0; q < sign_word_bits / 4 && w * sign_word_bits + 4 * q < n; ++q)
      bits |= quad_bits(w, q, norm, half_inv_norm);
    words(w) = bits;
  }
};

/// Device path (impl/terse_Lanes.hpp): a team thread per word, lane u draws for the quads u and u+8 (16
/// consecutive bytes of fp32 per lane and step), the bits or'ed across the lanes.
template <class Pack>
struct StochasticSignPackLanes {
  Pack pack;

  template <class Member>
  KOKKOS_INLINE_FUNCTION void operator()(const Member& team) const {
    const double norm = compat::sqrt(pack.sum_squares());
    const double half_inv_norm = norm == 0.0 ? 0.0 : 0.5 / norm;
    for_team_words(team, packed_words(pack.n), [&](std::size_t w) {
      sign_word_t bits = 0;
      Kokkos::parallel_reduce(
          Kokkos::ThreadVectorRange(team, word_lanes),
          [&](int u, sign_word_t& acc) {
            for (int q = u; q < sign_word_bits / 4 && w * sign_word_bits + 4 * q < pack.n; q += word_lanes)
              acc |= pack.quad_bits(w, q, norm, half_inv_norm);
          },
          Kokkos::BOr<sign_word_t>(bits));
      Kokkos::single(Kokkos::PerThread(team), [&]() { pack.words(w) = bits; });
    });
  }
};

template <class ExecSpace, class Pack>
void launch_stochastic_sign_pack(const ExecSpace& space, const Pack& pack) {
  if constexpr (host_loops_v<ExecSpace>) {
    if (!device_paths_on_host()) {
      Kokkos::parallel_for("terse::stochastic_sign", Kokkos::RangePolicy<ExecSpace>(space, 0, packed_words(pack.n)), pack);
      return;
    }
  }
  Kokkos::parallel_for("terse::stochastic_sign", word_lanes_policy(space, packed_words(pack.n)),
                       StochasticSignPackLanes<Pack>{pack});
}

}  // namespace Impl

/// y <- y + alpha * c, c the message's vector (scale * (+-1)); y has extent m.n.
template <class ExecSpace, class T, class YView>
void message_add(const ExecSpace& space, const SignMessage<ExecSpace, T>& m, const YView& y,
                 typename YView::non_const_value_type alpha = 1) {
  Impl::check_view<ExecSpace, YView>();
  Impl::require(y.extent(0) == m.n, "terse::message_add: y's extent differs from the message's dimension");
  // y + alpha c = y - (-alpha scale) sign: the same floating-point operations (negation is exact).
  using T2 = typename YView::non_const_value_type;
  Impl::launch_sign_apply(space, "terse::message_add", m.words, y,
                          Impl::ScaledStep<decltype(m.scale), T2>{m.scale, T2(-alpha)});
}

/// Scaled sign of x (seed 004): out = (||x||_1 / n) sign(x), one fused pass. ws: a SumWorkspace(n).
template <class ExecSpace, class XView, class T>
void scaled_sign_compress(const ExecSpace& space, const XView& x, const SignMessage<ExecSpace, T>& out,
                          const SumWorkspace<ExecSpace>& ws) {
  Impl::check_view<ExecSpace, XView>();
  Impl::fused_sign_pass<ExecSpace, Impl::SumAbs>(space, "terse::scaled_sign", Impl::PlainStep<XView>{x}, x.extent(0),
                                                 out, ws, static_cast<const SignMessage<ExecSpace, T>*>(nullptr));
  Impl::set_scale(space, out, ws, false);
}

/// Stochastic sign of x (seed 001 App. E): out = ||x||_2 * sign~(x), unbiased (up to the 2^-32 resolution
/// of the uniforms). Coordinate i is +1 when rng.uniform_lane(iteration, worker, i) < 1/2 + x_i / (2 ||x||),
/// so the result is the same for any thread count. Two passes: the norm, then the signs.
template <class ExecSpace, class XView, class T>
void stochastic_sign_compress(const ExecSpace& space, const XView& x, const CounterRng& rng, std::uint64_t iteration,
                              std::uint32_t worker, const SignMessage<ExecSpace, T>& out,
                              const SumWorkspace<ExecSpace>& ws) {
  Impl::check_view<ExecSpace, XView>();
  const std::size_t n = x.extent(0);
  Impl::require(out.n == n, "terse::stochastic_sign_compress: the message was made for another dimension");
  deterministic_sum(space, Impl::SquareOf<XView>{x}, n, ws);
  using Words = decltype(out.words);
  using Sum = decltype(ws.result());
  Impl::launch_stochastic_sign_pack(
      space, Impl::StochasticSignPack<XView, Words, Sum>{x, out.words, ws.result(), rng, iteration, worker, n});
  Impl::set_scale(space, out, ws, true);
}

/// A top-k-compressed vector: k (index, value) pairs of an n-vector; c_j = value for j in indices, else 0.
/// The views belong to the compressor's TopKWorkspace and stay valid until its next selection.
template <class ExecSpace, class T>
struct SparseMessage {
  using execution_space = ExecSpace;
  using memory_space = typename ExecSpace::memory_space;
  using value_type = T;

  Kokkos::View<std::uint32_t*, memory_space> indices;
  Kokkos::View<T*, memory_space> values;
  std::size_t n = 0;

  std::size_t k() const { return indices.extent(0); }
  /// Bits on the wire: a 32-bit index and a value per entry.
  std::size_t payload_bits() const { return k() * (32 + 8 * sizeof(T)); }
};

/// y <- y + alpha * c for a top-k message.
template <class ExecSpace, class T, class YView>
void message_add(const ExecSpace& space, const SparseMessage<ExecSpace, T>& m, const YView& y,
                 typename YView::non_const_value_type alpha = 1) {
  Impl::require(y.extent(0) == m.n, "terse::message_add: y's extent differs from the message's dimension");
  top_k_scatter_add(space, m.indices, m.values, y, alpha);
}

/// Top-k of x (seed 004 Sec. 7.2): the message refers to ws's outputs.
template <class ExecSpace, class XView, class T>
SparseMessage<ExecSpace, T> top_k_compress(const ExecSpace& space, const XView& x, TopKWorkspace<ExecSpace, T>& ws) {
  top_k_select(space, x, ws);
  return SparseMessage<ExecSpace, T>{ws.indices(), ws.values(), ws.n()};
}

namespace Impl {

/// d_i = w(i) - w_hat(i), for a selection without a temporary vector.
template <class WView, class HView>
struct Difference {
  using non_const_value_type = typename HView::non_const_value_type;
  WView w;
  HView w_hat;
  KOKKOS_INLINE_FUNCTION typename HView::non_const_value_type operator()(std::size_t i) const {
    return w(i) - w_hat(i);
  }
};

}  // namespace Impl

namespace Impl {

/// Coordinate i's key in a rand-k draw: a uniform in (0, 1] with 24 bits (exactly representable in fp32) from
/// the generator at (iteration, worker, i), the lane of i of the Philox draw of i / 4.
template <class T>
struct RandKKeys {
  using non_const_value_type = T;
  CounterRng rng;
  std::uint64_t iteration;
  std::uint32_t worker;
  KOKKOS_INLINE_FUNCTION T operator()(std::size_t i) const {
    const Philox4x32 r = rng.draw(iteration, worker, i / 4);
    return static_cast<T>((r.v[i % 4] >> 8) + 1u) * static_cast<T>(1.0 / 16777216.0);
  }
};

/// values(j) <- scale * src(indices(j)): the selected coordinates' values, scaled.
template <class ExecSpace, class Source, class T>
void rand_k_values(const ExecSpace& space, const Source& src, TopKWorkspace<ExecSpace, T>& ws) {
  auto idx = ws.indices();
  auto val = ws.values();
  const T scale = static_cast<T>(static_cast<double>(ws.n()) / static_cast<double>(ws.k()));
  Kokkos::parallel_for("terse::rand_k_values", Kokkos::RangePolicy<ExecSpace>(space, 0, ws.k()),
                       KOKKOS_LAMBDA(std::size_t j) { val(j) = scale * src(idx(j)); });
}

}  // namespace Impl

/// rand-k of x: k coordinates drawn without replacement, the k largest of n keys Impl::RandKKeys (so a draw
/// is a pure function of (rng, iteration, worker), the same on every backend; 24-bit keys can tie for large n,
/// ties go to the lower index, which biases the draw by at most about n / 2^24 of a coordinate), each sent as
/// (n / k) x_i, so E C(x) = x. Indices ascending, as top-k's. x: a view or a functor, as top_k_select takes.
template <class ExecSpace, class XView, class T>
SparseMessage<ExecSpace, T> rand_k_compress(const ExecSpace& space, const XView& x, const CounterRng& rng,
                                            std::uint64_t iteration, std::uint32_t worker,
                                            TopKWorkspace<ExecSpace, T>& ws) {
  top_k_select(space, Impl::RandKKeys<T>{rng, iteration, worker}, ws);
  Impl::rand_k_values(space, x, ws);
  return SparseMessage<ExecSpace, T>{ws.indices(), ws.values(), ws.n()};
}

/// One block of a scaled sign of w - w_hat whose coordinates are split across ranks (the sharded server of
/// seed 004 Alg. 1, line 9, when each rank holds a slice of g^ and g~): packs sign(w_i - w_hat_i) of this block
/// into words (bit j of word q is block coordinate 64 q + j: blocks start on word boundaries) and leaves the
/// block's sum of |w_i - w_hat_i| in ws.result() (deterministic, on the device). The caller adds the blocks'
/// sums (e.g. MPI_Allreduce) and sets the scale to total / n_global, then every holder of w_hat applies the
/// message (message_add). Nothing is updated here. ws: a SumWorkspace of at least the block's length.
template <class ExecSpace, class WView, class HView, class WordsView>
void markov_sign_block(const ExecSpace& space, const WView& w, const HView& w_hat, const WordsView& words,
                       const SumWorkspace<ExecSpace>& ws) {
  Impl::check_view<ExecSpace, WView>();
  Impl::check_view<ExecSpace, HView>();
  using T = typename HView::non_const_value_type;
  const std::size_t n = w.extent(0);
  Impl::require(w_hat.extent(0) == n, "terse::markov_sign_block: w and w_hat differ in length");
  Impl::require(words.extent(0) >= packed_words(n), "terse::markov_sign_block: words needs packed_words(n) words");
  SignMessage<ExecSpace, T> out;  // the words only: the fused pass does not touch the scale
  out.words = words;
  out.n = n;
  Impl::fused_sign_pass<ExecSpace, Impl::SumAbs>(space, "terse::markov_sign_block",
                                                 Impl::PlainStep<Impl::Difference<WView, HView>>{{w, w_hat}}, n,
                                                 out, ws, static_cast<const SignMessage<ExecSpace, T>*>(nullptr));
}

/// One block of a scaled sign with error feedback whose coordinates are split across ranks (1-bit Adam's
/// server, Tang et al. 2021, when each rank holds a slice of the averaged momentum and of the server's
/// error): p_i = g_i + e_i is stored in e, sign(p_i) packed into words (blocks start on word boundaries) and
/// the block's sum of |p_i| left in ws.result(). The caller adds the blocks' sums, sets the scale to
/// total / n_global and finishes the error with message_add(c, e, -1) on the block (e <- p - c).
template <class ExecSpace, class GView, class EView, class WordsView>
void error_feedback_sign_block(const ExecSpace& space, const GView& g, const EView& e, const WordsView& words,
                               const SumWorkspace<ExecSpace>& ws) {
  Impl::check_view<ExecSpace, GView>();
  Impl::check_view<ExecSpace, EView>();
  using T = typename EView::non_const_value_type;
  const std::size_t n = e.extent(0);
  Impl::require(g.extent(0) == n, "terse::error_feedback_sign_block: g and e differ in length");
  Impl::require(words.extent(0) >= packed_words(n), "terse::error_feedback_sign_block: words needs packed_words(n) words");
  SignMessage<ExecSpace, T> out;  // the words only: the fused pass does not touch the scale
  out.words = words;
  out.n = n;
  Impl::fused_sign_pass<ExecSpace, Impl::SumAbs>(space, "terse::error_feedback_sign_block",
                                                 Impl::ErrorFeedbackStep<GView, EView>{g, e}, n, out, ws,
                                                 static_cast<const SignMessage<ExecSpace, T>*>(nullptr));
}

}  // namespace terse
