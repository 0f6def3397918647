#pragma once
// terse_Compressor.hpp: the compressor concept, the six compressors terse ships, and the worker memories written
// once over any compressor.
//
// A compressor family is a tag type (Fp32, Sign, ScaledSign, StochasticSign, TopK, RandK) whose member template
// `compressor<ExecSpace, T>` is the compressor itself. A compressor C (any of them, and any new one) provides:
//
//   C::message_type                     what goes on the wire (DenseMessage, SignMessage, SparseMessage)
//   C::name                             its deck spelling ("scaled_sign")
//   C::random, C::stream                whether it draws random numbers, and from which stream of CounterRng
//   C::sizes(n, options)                CompressorSizes: the bytes it allocates, one message's bytes on the wire,
//                                       its payload bits (docs/hdf5.md); the constructor allocates exactly that
//   C(n, options)                       its message buffer and workspace, allocated once
//   c.compress(space, x, iteration)     the message of x (a view, or a functor x(i) where C::takes_functors),
//                                       held by c until its next call; iteration keys the random draws
//   C::add(space, m, y, alpha)          y <- y + alpha * decode(m): what an aggregate or a memory does with m
//   optional: C::fuses_memory           compress_step(space, step, prev, out): one pass that computes each p_i
//                                       from a step functor (which may update a memory, lazily, with the previous
//                                       message's c_i) and writes the message into `out` (the sign family)
//   optional: C::by_piece               compress_piece(space, x_piece, words_piece): the message of a piece of
//                                       x, word-aligned (the plain sign: the chunked exchange forms it by chunks)
//
// QSGD and TernGrad (one compressor, two scales) are in their own header, terse_Qsgd.hpp, over this concept.
//
// CompressorOptions carries what a compressor is built from besides n: k (top-k, rand-k), levels and bucket
// (QSGD, TernGrad), the generator and the worker's index (random compressors: draws keyed by (seed, stream, iteration, worker, index)); a compressor
// ignores the fields it does not use. The natural constructors stay: TopK's (n, k), RandK's (n, k, rng, worker).
//
// The memories, each written once for every compressor (C is the family tag):
//
//   NoMemory<ExecSpace, T, C>          c = C(g)
//   ErrorFeedback<ExecSpace, T, C>     p = g + e; c = C(p); e <- p - c          seed 004 Sec. 4 (Karimireddy et al.)
//   MarkovCompressor<ExecSpace, T, C>  c = C(w - w_hat); w_hat <- w_hat + c     seed 004 Sec. 5 (Richtarik et al.,
//                                      (w_hat = 0 at first: w_hat_0 = C(w_0))   EF21)
//   Momentum<ExecSpace, T, C>          m <- b m + (1 - b) g; c = C(m)           Signum (Bernstein et al. 2019)
//
// Each has compress(space, g, iteration = 0) -> const message_type&, its state (error(), estimate(), momentum();
// memory() under one name for all), sizes(n, options), and the same constructors as its compressor. With a
// compressor that fuses memory (the sign family) error feedback and the Markov sequence take one pass over the
// vectors per call: the update that needs the scale (e <- p - c, w_hat <- w_hat + c) is applied lazily, at the
// start of the next pass, in the same floating-point operations as the eager form (results bitwise those of the
// eager algorithm); error() and estimate() apply it at once when the state is needed (checkpoints, inspection).
// Such a memory reads its previous message's scale on the device: call it with one execution space instance (one
// stream) throughout. With any other compressor they run the eager form: e += g, c = C(e), C::add(c, e, -1).

#include <terse_Compress.hpp>
#include <terse_Random.hpp>
#include <terse_Reduce.hpp>
#include <terse_Sign.hpp>
#include <terse_TopK.hpp>
#include <terse_Update.hpp>

#include <string>
#include <type_traits>
#include <utility>

namespace terse {

/// What a compressor is built from besides its length; each compressor reads the fields it uses.
struct CompressorOptions {
  std::size_t k = 0;          ///< top_k, rand_k: the entries kept (clamped to n)
  CounterRng rng{};           ///< random compressors: the generator (seed and the compressor's stream)
  std::uint32_t worker = 0;   ///< random compressors: the worker's index in the draws
  int levels = 1;             ///< qsgd: the levels s >= 1 (terse_Qsgd.hpp; terngrad is s = 1)
  std::size_t bucket = 0;     ///< qsgd, terngrad: coordinates per scale (0: one scale for the whole vector)
  /// Whether the compressor allocates its own message buffer. A caller that writes the message straight into
  /// its own buffers (by_piece compressors: compress_piece) sets it false; compress() is then refused.
  bool own_message = true;
};

/// The sizes of a compressor (or a memory over one) of n coordinates.
struct CompressorSizes {
  std::size_t allocated = 0;  ///< bytes the constructor allocates (messages, workspaces, memories)
  std::size_t message = 0;    ///< bytes of one message buffer as allocated
  std::size_t wire = 0;       ///< bytes of one message on the wire (what a worker's message holds)
  double bits = 0;            ///< payload bits of one message (docs/hdf5.md: 1 per sign, 32 per scale, ...)
};

/// An uncompressed vector: n values on the device.
template <class ExecSpace, class T>
struct DenseMessage {
  using execution_space = ExecSpace;
  using memory_space = typename ExecSpace::memory_space;
  using value_type = T;
  Kokkos::View<T*, memory_space> values;
  std::size_t n = 0;
  std::size_t payload_bits() const { return n * 8 * sizeof(T); }
};

/// y <- y + alpha * m.values.
template <class ExecSpace, class T, class YView>
void message_add(const ExecSpace& space, const DenseMessage<ExecSpace, T>& m, const YView& y,
                 typename YView::non_const_value_type alpha = 1) {
  Impl::check_view<ExecSpace, YView>();
  Impl::require(y.extent(0) == m.n, "terse::message_add: y's extent differs from the message's dimension");
  using T2 = typename YView::non_const_value_type;
  auto v = m.values;
  Kokkos::parallel_for("terse::dense_message_add", Kokkos::RangePolicy<ExecSpace>(space, 0, m.n),
                       KOKKOS_LAMBDA(std::size_t i) { y(i) += alpha * static_cast<T2>(v(i)); });
}

// ------------------------------------------------------------------------------------------------------------
// The compressors
// ------------------------------------------------------------------------------------------------------------

/// C(x) = x in T (the fp32 baseline as a compressor: 32 bits per value).
template <class ExecSpace, class T = float>
class Fp32Compressor {
 public:
  using execution_space = ExecSpace;
  using value_type = T;
  using message_type = DenseMessage<ExecSpace, T>;
  static constexpr const char* name = "fp32";
  static constexpr bool random = false;
  static constexpr RandomStream stream = RandomStream::none;
  static constexpr bool takes_functors = true;

  static CompressorSizes sizes(std::size_t n, const CompressorOptions& = {}) {
    return {n * sizeof(T), n * sizeof(T), n * sizeof(T), 8.0 * sizeof(T) * static_cast<double>(n)};
  }
  explicit Fp32Compressor(std::size_t n, const CompressorOptions& = {})
      : msg_{Kokkos::View<T*, typename ExecSpace::memory_space>("terse::fp32.message", n), n} {}
  std::size_t size() const { return msg_.n; }

  template <class X>
  const message_type& compress(const ExecSpace& space, const X& x, std::uint64_t /*iteration*/ = 0) {
    auto v = msg_.values;
    Kokkos::parallel_for("terse::fp32_compress", Kokkos::RangePolicy<ExecSpace>(space, 0, msg_.n),
                         KOKKOS_LAMBDA(std::size_t i) { v(i) = static_cast<T>(x(i)); });
    return msg_;
  }
  const message_type& message() const { return msg_; }
  template <class YView>
  static void add(const ExecSpace& space, const message_type& m, const YView& y,
                  typename YView::non_const_value_type alpha) {
    message_add(space, m, y, alpha);
  }

 private:
  message_type msg_;
};

namespace Impl {

/// What the sign compressors share: the message (words and scale) and the workspace of the scale's sum.
template <class ExecSpace, class T>
class SignFamily {
 public:
  using execution_space = ExecSpace;
  using value_type = T;
  using message_type = SignMessage<ExecSpace, T>;
  static constexpr bool takes_functors = false;

  std::size_t size() const { return msg_.n; }
  const message_type& message() const { return msg_; }
  /// Another message buffer of the same length (a lazy memory alternates two).
  message_type make_message(const std::string& label) const { return message_type(size(), label); }
  template <class YView>
  static void add(const ExecSpace& space, const message_type& m, const YView& y,
                  typename YView::non_const_value_type alpha) {
    message_add(space, m, y, alpha);
  }

 protected:
  /// own: allocate the message (a caller that writes the message into its own buffers passes false); with_sum: the
  /// workspace of the scale's sum. Nothing is allocated for what is not needed (no empty views either).
  SignFamily(std::size_t n, const std::string& label, bool with_sum, bool own = true) {
    if (own) msg_ = message_type(n, label);
    else msg_.n = n;
    if (with_sum) ws_ = SumWorkspace<ExecSpace>(n);
  }
  static std::size_t allocated(std::size_t n, bool with_sum, bool own = true) {
    return (own ? message_type::bytes(n) : 0) + (with_sum ? SumWorkspace<ExecSpace>::bytes(n) : 0);
  }
  message_type msg_;
  SumWorkspace<ExecSpace> ws_;
};

}  // namespace Impl

/// C(x) = sign(x): one bit per coordinate, no scale (the message's scale is 1, not sent). The majority vote's
/// wire (seed 000 Alg. 1); formed piece by piece for the chunked exchange.
template <class ExecSpace, class T = float>
class SignCompressor : public Impl::SignFamily<ExecSpace, T> {
  using Base = Impl::SignFamily<ExecSpace, T>;

 public:
  using typename Base::message_type;
  static constexpr const char* name = "sign";
  static constexpr bool random = false;
  static constexpr RandomStream stream = RandomStream::none;
  static constexpr bool by_piece = true;

  static CompressorSizes sizes(std::size_t n, const CompressorOptions& o = {}) {
    return {Base::allocated(n, false, o.own_message), message_type::bytes(n), packed_words(n) * sizeof(sign_word_t),
            static_cast<double>(n)};
  }
  explicit SignCompressor(std::size_t n, const CompressorOptions& o = {})
      : Base(n, "terse::sign.message", false, o.own_message), own_(o.own_message) {
    if (own_) Kokkos::deep_copy(this->msg_.scale, T(1));
  }
  template <class X>
  const message_type& compress(const ExecSpace& space, const X& x, std::uint64_t /*iteration*/ = 0) {
    Impl::require(own_, "terse::SignCompressor::compress: built without its message buffer (own_message = false)");
    Impl::require(x.extent(0) == this->msg_.n, "terse::SignCompressor::compress: x has another dimension");
    sign_pack(space, x, this->msg_.words);
    return this->msg_;
  }
  /// The words of a piece of x (the piece starts on a word boundary of the whole vector).
  template <class X, class W>
  static void compress_piece(const ExecSpace& space, const X& x_piece, const W& words_piece) {
    sign_pack(space, x_piece, words_piece);
  }

 private:
  bool own_;
};

/// C(x) = (||x||_1 / n) sign(x) (seed 004 Sec. 4, footnote 2): n bits and one fp32 scale; one fused pass.
template <class ExecSpace, class T = float>
class ScaledSignCompressor : public Impl::SignFamily<ExecSpace, T> {
  using Base = Impl::SignFamily<ExecSpace, T>;

 public:
  using typename Base::message_type;
  static constexpr const char* name = "scaled_sign";
  static constexpr bool random = false;
  static constexpr RandomStream stream = RandomStream::none;
  static constexpr bool fuses_memory = true;

  static CompressorSizes sizes(std::size_t n, const CompressorOptions& = {}) {
    return {Base::allocated(n, true), message_type::bytes(n), packed_words(n) * sizeof(sign_word_t) + sizeof(float),
            static_cast<double>(n) + 32};
  }
  explicit ScaledSignCompressor(std::size_t n, const CompressorOptions& = {})
      : Base(n, "terse::scaled_sign.message", true) {}
  template <class X>
  const message_type& compress(const ExecSpace& space, const X& x, std::uint64_t /*iteration*/ = 0) {
    scaled_sign_compress(space, x, this->msg_, this->ws_);
    return this->msg_;
  }
  /// One fused pass: p_i = step(i) (or step(i, c_prev_i) with a previous message, for a lazy memory update),
  /// its signs and the scale (sum |p_i|) / n into out.
  template <class Step>
  void compress_step(const ExecSpace& space, const char* label, const Step& step, const message_type* prev,
                     const message_type& out) {
    Impl::fused_sign_pass<ExecSpace, Impl::SumAbs>(space, label, step, this->size(), out, this->ws_, prev);
    Impl::set_scale(space, out, this->ws_, false);
  }
};

/// C(x) = ||x||_2 sign~(x), P[sign~(x)_i = +1] = 1/2 + x_i / (2 ||x||_2) (seed 001 App. E): unbiased; draws from
/// the stochastic_sign stream at (iteration, worker, i).
template <class ExecSpace, class T = float>
class StochasticSignCompressor : public Impl::SignFamily<ExecSpace, T> {
  using Base = Impl::SignFamily<ExecSpace, T>;

 public:
  using typename Base::message_type;
  static constexpr const char* name = "stochastic_sign";
  static constexpr bool random = true;
  static constexpr RandomStream stream = RandomStream::stochastic_sign;

  static CompressorSizes sizes(std::size_t n, const CompressorOptions& = {}) {
    return {Base::allocated(n, true), message_type::bytes(n), packed_words(n) * sizeof(sign_word_t) + sizeof(float),
            static_cast<double>(n) + 32};
  }
  explicit StochasticSignCompressor(std::size_t n, const CompressorOptions& o = {})
      : Base(n, "terse::stochastic_sign.message", true), rng_(o.rng), worker_(o.worker) {}
  template <class X>
  const message_type& compress(const ExecSpace& space, const X& x, std::uint64_t iteration = 0) {
    stochastic_sign_compress(space, x, rng_, iteration, worker_, this->msg_, this->ws_);
    return this->msg_;
  }

 private:
  CounterRng rng_;
  std::uint32_t worker_;
};

namespace Impl {

/// What the sparse compressors share: the selection's workspace, whose outputs are the message.
template <class ExecSpace, class T>
class SparseFamily {
 public:
  using execution_space = ExecSpace;
  using value_type = T;
  using message_type = SparseMessage<ExecSpace, T>;
  static constexpr bool takes_functors = true;

  static CompressorSizes sizes(std::size_t n, std::size_t k) {
    const std::size_t kk = k < n ? k : n, pair = sizeof(std::uint32_t) + sizeof(T);
    return {TopKWorkspace<ExecSpace, T>::bytes(n, k), kk * pair, kk * (sizeof(std::uint32_t) + sizeof(float)),
            64.0 * static_cast<double>(kk)};
  }
  std::size_t size() const { return ws_.n(); }
  std::size_t k() const { return ws_.k(); }
  const message_type& message() const { return msg_; }
  template <class YView>
  static void add(const ExecSpace& space, const message_type& m, const YView& y,
                  typename YView::non_const_value_type alpha) {
    message_add(space, m, y, alpha);
  }

 protected:
  SparseFamily(std::size_t n, std::size_t k) : ws_(n, k), msg_{ws_.indices(), ws_.values(), n} {}
  TopKWorkspace<ExecSpace, T> ws_;
  message_type msg_;
};

}  // namespace Impl

/// C(x) = the k entries of largest |x_i| (seed 004 Sec. 7.2), indices ascending; ties to the lower index.
template <class ExecSpace, class T = float>
class TopKCompressor : public Impl::SparseFamily<ExecSpace, T> {
  using Base = Impl::SparseFamily<ExecSpace, T>;

 public:
  using typename Base::message_type;
  static constexpr const char* name = "top_k";
  static constexpr bool random = false;
  static constexpr RandomStream stream = RandomStream::none;

  static CompressorSizes sizes(std::size_t n, const CompressorOptions& o) { return Base::sizes(n, o.k); }
  TopKCompressor(std::size_t n, const CompressorOptions& o) : Base(n, o.k) {}
  TopKCompressor(std::size_t n, std::size_t k) : Base(n, k) {}
  template <class X>
  const message_type& compress(const ExecSpace& space, const X& x, std::uint64_t /*iteration*/ = 0) {
    top_k_select(space, x, this->ws_);
    return this->msg_;
  }
};

/// C(x) = (n / k) x on k coordinates drawn without replacement (rand_k_compress; unbiased), draws from the
/// rand_k stream at (iteration, worker).
template <class ExecSpace, class T = float>
class RandKCompressor : public Impl::SparseFamily<ExecSpace, T> {
  using Base = Impl::SparseFamily<ExecSpace, T>;

 public:
  using typename Base::message_type;
  static constexpr const char* name = "rand_k";
  static constexpr bool random = true;
  static constexpr RandomStream stream = RandomStream::rand_k;

  static CompressorSizes sizes(std::size_t n, const CompressorOptions& o) { return Base::sizes(n, o.k); }
  RandKCompressor(std::size_t n, const CompressorOptions& o) : Base(n, o.k), rng_(o.rng), worker_(o.worker) {}
  RandKCompressor(std::size_t n, std::size_t k, CounterRng rng, std::uint32_t worker)
      : Base(n, k), rng_(rng), worker_(worker) {}
  template <class X>
  const message_type& compress(const ExecSpace& space, const X& x, std::uint64_t iteration = 0) {
    rand_k_compress(space, x, rng_, iteration, worker_, this->ws_);
    return this->msg_;
  }

 private:
  CounterRng rng_;
  std::uint32_t worker_;
};

/// The compressor families: tags naming a compressor for the memories and the driver's tables.
struct Fp32 {
  template <class E, class T>
  using compressor = Fp32Compressor<E, T>;
};
struct Sign {
  template <class E, class T>
  using compressor = SignCompressor<E, T>;
};
struct ScaledSign {
  template <class E, class T>
  using compressor = ScaledSignCompressor<E, T>;
};
struct StochasticSign {
  template <class E, class T>
  using compressor = StochasticSignCompressor<E, T>;
};
struct TopK {
  template <class E, class T>
  using compressor = TopKCompressor<E, T>;
};
struct RandK {
  template <class E, class T>
  using compressor = RandKCompressor<E, T>;
};

namespace Impl {

template <class C, class = void>
struct fuses_memory : std::false_type {};
template <class C>
struct fuses_memory<C, std::void_t<decltype(C::fuses_memory)>> : std::bool_constant<C::fuses_memory> {};
template <class C, class = void>
struct compresses_by_piece : std::false_type {};
template <class C>
struct compresses_by_piece<C, std::void_t<decltype(C::by_piece)>> : std::bool_constant<C::by_piece> {};

/// e(i) <- e(i) + g(i).
template <class ExecSpace, class EView, class GView>
void accumulate(const ExecSpace& space, const EView& e, const GView& g) {
  Kokkos::parallel_for("terse::error_feedback_accumulate", Kokkos::RangePolicy<ExecSpace>(space, 0, e.extent(0)),
                       KOKKOS_LAMBDA(std::size_t i) { e(i) = g(i) + e(i); });
}

/// out(i) <- w(i) - w_hat(i).
template <class ExecSpace, class OView, class WView, class HView>
void difference(const ExecSpace& space, const OView& out, const WView& w, const HView& w_hat) {
  Kokkos::parallel_for("terse::markov_difference", Kokkos::RangePolicy<ExecSpace>(space, 0, out.extent(0)),
                       KOKKOS_LAMBDA(std::size_t i) { out(i) = w(i) - w_hat(i); });
}

}  // namespace Impl

// ------------------------------------------------------------------------------------------------------------
// The memories, over any compressor
// ------------------------------------------------------------------------------------------------------------

/// c = C(g): the compressor alone, with the memories' interface.
template <class ExecSpace, class T, class Family>
class NoMemory {
 public:
  using compressor_type = typename Family::template compressor<ExecSpace, T>;
  using message_type = typename compressor_type::message_type;
  using memory_space = typename ExecSpace::memory_space;
  static constexpr const char* state_name = nullptr;
  static constexpr bool by_piece = Impl::compresses_by_piece<compressor_type>::value;

  static CompressorSizes sizes(std::size_t n, const CompressorOptions& o) { return compressor_type::sizes(n, o); }
  template <class... A, class = std::enable_if_t<std::is_constructible_v<compressor_type, std::size_t, A&&...>>>
  explicit NoMemory(std::size_t n, A&&... a) : c_(n, std::forward<A>(a)...) {}

  template <class GView>
  const message_type& compress(const ExecSpace& space, const GView& g, std::uint64_t iteration = 0) {
    return c_.compress(space, g, iteration);
  }
  /// The message of the piece [begin, end) of g into words_piece (by_piece compressors).
  template <class GView, class W>
  void compress_piece(const ExecSpace& space, const GView& g, std::size_t begin, std::size_t end, const W& words_piece) {
    compressor_type::compress_piece(space, Kokkos::subview(g, std::make_pair(begin, end)), words_piece);
  }
  const message_type& message() const { return c_.message(); }
  Kokkos::View<T*, memory_space> memory(const ExecSpace&) { return {}; }

 private:
  compressor_type c_;
};

/// Error feedback over any compressor (seed 004 Sec. 4): compress(g) forms p = g + e, returns the message
/// c = C(p) and leaves e = p - c. With a memory-fusing compressor (scaled sign): one pass over g and e per call.
template <class ExecSpace, class T, class Family = ScaledSign>
class ErrorFeedback {
 public:
  using compressor_type = typename Family::template compressor<ExecSpace, T>;
  using message_type = typename compressor_type::message_type;
  using memory_space = typename ExecSpace::memory_space;
  static constexpr const char* state_name = "worker.error_feedback";
  static constexpr bool by_piece = false;
  static constexpr bool lazy = Impl::fuses_memory<compressor_type>::value;

  /// What the constructor allocates: e, the compressor, and with a lazy update a second message.
  static CompressorSizes sizes(std::size_t n, const CompressorOptions& o) {
    CompressorSizes s = compressor_type::sizes(n, o);
    s.allocated += n * sizeof(T) + (lazy ? s.message : 0);
    return s;
  }
  template <class... A, class = std::enable_if_t<std::is_constructible_v<compressor_type, std::size_t, A&&...>>>
  explicit ErrorFeedback(std::size_t n, A&&... a)
      : c_(n, std::forward<A>(a)...), e_("terse::error_feedback.e", n) {
    if constexpr (lazy) {
      msg_[0] = c_.message();
      msg_[1] = c_.make_message("terse::error_feedback.c1");
    }
  }
  std::size_t size() const { return e_.extent(0); }

  /// c = C(g + e); e <- g + e - c. The message stays valid until the next call.
  template <class GView>
  const message_type& compress(const ExecSpace& space, const GView& g, std::uint64_t iteration = 0) {
    Impl::check_view<ExecSpace, GView>();
    Impl::require(g.extent(0) == size(), "terse::ErrorFeedback::compress: g has another dimension");
    if constexpr (lazy) {
      const message_type* prev = pending_ ? &msg_[current_] : nullptr;
      const int next = pending_ ? 1 - current_ : current_;
      using Step = Impl::ErrorFeedbackStep<GView, Kokkos::View<T*, memory_space>>;
      c_.compress_step(space, "terse::error_feedback", Step{g, e_}, prev, msg_[next]);
      current_ = next;
      pending_ = true;
      return msg_[current_];
    } else {
      Impl::accumulate(space, e_, g);
      const message_type& m = c_.compress(space, e_, iteration);
      compressor_type::add(space, m, e_, T(-1));
      return m;
    }
  }

  /// The error e as the algorithm defines it (applies a pending e <- p - c now).
  Kokkos::View<T*, memory_space> error(const ExecSpace& space) {
    if constexpr (lazy) {
      if (pending_) {
        compressor_type::add(space, msg_[current_], e_, T(-1));
        pending_ = false;
      }
    }
    return e_;
  }
  Kokkos::View<T*, memory_space> memory(const ExecSpace& space) { return error(space); }
  const message_type& message() const {
    if constexpr (lazy) return msg_[current_];
    else return c_.message();
  }

 private:
  compressor_type c_;
  Kokkos::View<T*, memory_space> e_;
  message_type msg_[lazy ? 2 : 1];
  int current_ = 0;
  bool pending_ = false;
};

/// The Markov compression sequence over any compressor (seed 004 Sec. 5; EF21): compress(w) returns
/// c = C(w - w_hat) and advances w_hat <- w_hat + c; w_hat starts at 0, so the first message is C(w_0). The
/// receiving side keeps its own copy of w_hat and applies C::add(c) to it.
template <class ExecSpace, class T, class Family = ScaledSign>
class MarkovCompressor {
 public:
  using compressor_type = typename Family::template compressor<ExecSpace, T>;
  using message_type = typename compressor_type::message_type;
  using memory_space = typename ExecSpace::memory_space;
  static constexpr const char* state_name = "worker.markov_estimate";
  static constexpr bool by_piece = false;
  static constexpr bool lazy = Impl::fuses_memory<compressor_type>::value;
  /// Compressors that take only views get the difference w - w_hat in a buffer of n values.
  static constexpr bool buffered = !lazy && !compressor_type::takes_functors;

  static CompressorSizes sizes(std::size_t n, const CompressorOptions& o) {
    CompressorSizes s = compressor_type::sizes(n, o);
    s.allocated += n * sizeof(T) + (lazy ? s.message : 0) + (buffered ? n * sizeof(T) : 0);
    return s;
  }
  template <class... A, class = std::enable_if_t<std::is_constructible_v<compressor_type, std::size_t, A&&...>>>
  explicit MarkovCompressor(std::size_t n, A&&... a)
      : c_(n, std::forward<A>(a)...), w_hat_("terse::markov.w_hat", n) {
    if constexpr (buffered) diff_ = Kokkos::View<T*, memory_space>("terse::markov.difference", n);
    if constexpr (lazy) {
      msg_[0] = c_.message();
      msg_[1] = c_.make_message("terse::markov.c1");
    }
  }
  std::size_t size() const { return w_hat_.extent(0); }

  /// c = C(w - w_hat); w_hat <- w_hat + c. The message stays valid until the next call.
  template <class WView>
  const message_type& compress(const ExecSpace& space, const WView& w, std::uint64_t iteration = 0) {
    Impl::check_view<ExecSpace, WView>();
    Impl::require(w.extent(0) == size(), "terse::MarkovCompressor::compress: w has another dimension");
    using HView = Kokkos::View<T*, memory_space>;
    if constexpr (lazy) {
      const message_type* prev = pending_ ? &msg_[current_] : nullptr;
      const int next = pending_ ? 1 - current_ : current_;
      c_.compress_step(space, "terse::markov_compress", Impl::MarkovStep<WView, HView>{w, w_hat_}, prev, msg_[next]);
      current_ = next;
      pending_ = true;
      return msg_[current_];
    } else if constexpr (buffered) {
      Impl::difference(space, diff_, w, w_hat_);
      const message_type& m = c_.compress(space, diff_, iteration);
      compressor_type::add(space, m, w_hat_, T(1));
      return m;
    } else {
      const message_type& m = c_.compress(space, Impl::Difference<WView, HView>{w, w_hat_}, iteration);
      compressor_type::add(space, m, w_hat_, T(1));
      return m;
    }
  }

  /// w_hat as the algorithm defines it (applies a pending w_hat <- w_hat + c now).
  Kokkos::View<T*, memory_space> estimate(const ExecSpace& space) {
    if constexpr (lazy) {
      if (pending_) {
        compressor_type::add(space, msg_[current_], w_hat_, T(1));
        pending_ = false;
      }
    }
    return w_hat_;
  }
  Kokkos::View<T*, memory_space> memory(const ExecSpace& space) { return estimate(space); }
  const message_type& message() const {
    if constexpr (lazy) return msg_[current_];
    else return c_.message();
  }

 private:
  compressor_type c_;
  Kokkos::View<T*, memory_space> w_hat_, diff_;
  message_type msg_[lazy ? 2 : 1];
  int current_ = 0;
  bool pending_ = false;
};

/// A worker's own momentum over any compressor (Signum, Bernstein et al. 2019): m <- b m + (1 - b) g, c = C(m).
/// With a compressor that forms pieces (the sign), compress_piece() does both on a piece of the coordinates.
template <class ExecSpace, class T, class Family = Sign>
class Momentum {
 public:
  using compressor_type = typename Family::template compressor<ExecSpace, T>;
  using message_type = typename compressor_type::message_type;
  using memory_space = typename ExecSpace::memory_space;
  static constexpr const char* state_name = "worker.momentum";
  static constexpr bool by_piece = Impl::compresses_by_piece<compressor_type>::value;

  static CompressorSizes sizes(std::size_t n, const CompressorOptions& o) {
    CompressorSizes s = compressor_type::sizes(n, o);
    s.allocated += n * sizeof(T);
    return s;
  }
  /// beta: the momentum's b; the compressor's arguments follow.
  template <class... A, class = std::enable_if_t<std::is_constructible_v<compressor_type, std::size_t, A&&...>>>
  Momentum(std::size_t n, double beta, A&&... a) : c_(n, std::forward<A>(a)...), m_("terse::worker.momentum", n), beta_(beta) {}

  template <class GView>
  const message_type& compress(const ExecSpace& space, const GView& g, std::uint64_t iteration = 0) {
    momentum_update(space, m_, g, beta_);
    return c_.compress(space, m_, iteration);
  }
  /// m <- b m + (1 - b) g on [begin, end), and the message of that piece of m into words_piece (by_piece only).
  template <class GView, class W>
  void compress_piece(const ExecSpace& space, const GView& g, std::size_t begin, std::size_t end, const W& words_piece) {
    const auto r = std::make_pair(begin, end);
    momentum_update(space, Kokkos::subview(m_, r), Kokkos::subview(g, r), beta_);
    compressor_type::compress_piece(space, Kokkos::subview(m_, r), words_piece);
  }
  Kokkos::View<T*, memory_space> momentum() const { return m_; }
  Kokkos::View<T*, memory_space> memory(const ExecSpace&) { return m_; }
  const message_type& message() const { return c_.message(); }

 private:
  compressor_type c_;
  Kokkos::View<T*, memory_space> m_;
  double beta_;
};

}  // namespace terse
