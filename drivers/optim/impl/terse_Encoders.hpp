#pragma once
// terse_Encoders.hpp: a worker's encoder, its compressor and its memory (terse_Compressor.hpp), behind the one
// interface of its wire: a sign wire's encoder writes its message into the worker's slot of the SignExchange, a
// sparse wire's hands back its (index, value) pairs. The two tables below are the only places that map the spec's
// wire to a compressor type and its memory to a memory type; the encoders' construction, their sizes and the
// payload bits all read them, so they cannot drift apart.

#include "../terse_Spec.hpp"
#include "../terse_State.hpp"

#include <terse_Exchange.hpp>

#include <terse_Compressor.hpp>
#include <terse_Qsgd.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace terse::pieces {

using optim::Memory;
using optim::Spec;
using optim::Wire;

template <class T>
struct TypeTag {
  using type = T;
};

/// The compressor table: f(Family{}) for the spec's wire (a new compressor is one row here and its type).
template <class F>
decltype(auto) visit_compressor(Wire w, F&& f) {
  switch (w) {
    case Wire::fp32: return f(Fp32{});
    case Wire::sign: return f(Sign{});
    case Wire::scaled_sign: return f(ScaledSign{});
    case Wire::stochastic_sign: return f(StochasticSign{});
    case Wire::top_k: return f(TopK{});
    case Wire::rand_k: return f(RandK{});
    case Wire::qsgd: return f(Qsgd{});
    case Wire::terngrad: return f(TernGrad{});
  }
  throw std::logic_error("terse: unknown wire");
}

/// The memory table: f(TypeTag<the memory over Family>{}) for the spec's worker memory.
template <class E, class Family, class F>
decltype(auto) visit_memory(Memory m, F&& f) {
  switch (m) {
    case Memory::none: return f(TypeTag<NoMemory<E, float, Family>>{});
    case Memory::error_feedback: return f(TypeTag<ErrorFeedback<E, float, Family>>{});
    case Memory::markov: return f(TypeTag<MarkovCompressor<E, float, Family>>{});
    case Memory::momentum: return f(TypeTag<Momentum<E, float, Family>>{});
  }
  throw std::logic_error("terse: unknown worker memory");
}

template <class Family, class E>
using CompressorOf = typename Family::template compressor<E, float>;
template <class Family, class E>
inline constexpr bool sign_family_v =
    std::is_same_v<typename CompressorOf<Family, E>::message_type, SignMessage<E, float>>;
template <class Family, class E>
inline constexpr bool sparse_family_v =
    std::is_same_v<typename CompressorOf<Family, E>::message_type, SparseMessage<E, float>>;
template <class Family, class E>
inline constexpr bool qsgd_family_v =
    std::is_same_v<typename CompressorOf<Family, E>::message_type, QsgdMessage<E, float>>;

/// What a worker's compressor is built from: k, QSGD's levels and bucket, and its own stream of the generator at
/// the worker's index.
template <class Family, class E>
CompressorOptions compressor_options(const Spec& s, std::size_t k, std::uint64_t seed, int worker,
                                     bool own_message = true) {
  CompressorOptions o;
  o.k = k;
  o.levels = s.levels;
  o.bucket = static_cast<std::size_t>(s.bucket);
  o.rng = CounterRng{seed, static_cast<std::uint32_t>(CompressorOf<Family, E>::stream)};
  o.worker = static_cast<std::uint32_t>(worker);
  o.own_message = own_message;
  return o;
}

/// A memory of the table, built from the spec (Momentum takes the spec's b first).
template <class M>
M make_memory(const Spec& s, std::size_t d, const CompressorOptions& o) {
  if constexpr (std::is_constructible_v<M, std::size_t, double, const CompressorOptions&>) return M(d, s.momentum, o);
  else return M(d, o);
}

/// Payload bits of one message of the spec's wire for a gradient of length d (k for the sparse wires).
template <class E>
double message_bits(const Spec& s, std::size_t d, std::size_t k) {
  CompressorOptions o;
  o.k = k;
  o.levels = s.levels;
  o.bucket = static_cast<std::size_t>(s.bucket);
  return visit_compressor(s.wire, [&](auto family) { return CompressorOf<decltype(family), E>::sizes(d, o).bits; });
}

// ---- the sign wires -----------------------------------------------------------------------------------------

/// A worker's encoder on a sign wire (sign, scaled sign, stochastic sign), with its memory.
template <class E>
class SignWireEncoder {
 public:
  using Vec = optim::VecOf<E>;
  using Words = Kokkos::View<sign_word_t*, typename E::memory_space>;
  virtual ~SignWireEncoder() = default;
  /// The message of g at iteration k into the worker's slot: its words, and its scale.
  virtual void encode(const E& space, const Vec& g, std::uint64_t k, const Words& out,
                      const Kokkos::View<float, typename E::memory_space>& scale) = 0;
  /// Whether the message can be formed piece by piece (the chunked exchange): the plain sign, with or without
  /// momentum (no scale over the whole vector); encode_piece() then gives encode()'s bits, piece by piece.
  virtual bool by_piece() const = 0;
  /// The coordinates c of the message (c.begin on a word boundary) into their words of `out` (by_piece() only).
  virtual void encode_piece(const E& space, const Vec& g, const CoordSlice& c, const Words& out) = 0;
  /// The memory as the algorithm defines it (error e, the Markov estimate, the momentum), writable; empty without.
  virtual Vec memory(const E& space) = 0;
  /// Its name in a checkpoint ("worker.error_feedback", ...); nullptr without a memory.
  virtual const char* state_name() const = 0;
};

template <class E, class M>
class SignWire final : public SignWireEncoder<E> {
 public:
  using typename SignWireEncoder<E>::Vec;
  using typename SignWireEncoder<E>::Words;
  static constexpr bool pieces = M::by_piece;
  /// What the constructor allocates (the memory over its compressor; a by-piece one writes the slot itself).
  static std::size_t bytes(std::size_t d, const CompressorOptions& o) { return M::sizes(d, o).allocated; }

  SignWire(const Spec& s, std::size_t d, const CompressorOptions& o) : d_(d), m_(make_memory<M>(s, d, o)) {}

  void encode(const E& space, const Vec& g, std::uint64_t k, const Words& out,
              const Kokkos::View<float, typename E::memory_space>& scale) override {
    if constexpr (pieces) {
      m_.compress_piece(space, g, 0, d_, out);  // straight into the slot
      (void)k, (void)scale;
    } else {
      const auto& m = m_.compress(space, g, k);
      Kokkos::deep_copy(space, out, m.words);
      Kokkos::deep_copy(space, scale, m.scale);
    }
  }
  bool by_piece() const override { return pieces; }
  void encode_piece(const E& space, const Vec& g, const CoordSlice& c, const Words& out) override {
    if constexpr (pieces) {
      const auto words = Kokkos::subview(out, std::make_pair(c.begin / sign_word_bits,
                                                             c.begin / sign_word_bits + packed_words(c.size())));
      m_.compress_piece(space, g, c.begin, c.end, words);
    } else {
      (void)space, (void)g, (void)c, (void)out;
      throw std::logic_error("terse: this sign wire's message is not formed by pieces");
    }
  }
  Vec memory(const E& space) override { return m_.memory(space); }
  const char* state_name() const override { return M::state_name; }

 private:
  std::size_t d_;
  M m_;
};

// ---- the sparse wires ---------------------------------------------------------------------------------------

/// A worker's encoder on a sparse wire (top-k, rand-k), with its memory; the message's views are valid until
/// its next encode.
template <class E>
class SparseWireEncoder {
 public:
  using Vec = optim::VecOf<E>;
  virtual ~SparseWireEncoder() = default;
  virtual SparseMessage<E, float> encode(const E& space, const Vec& g, std::uint64_t iteration) = 0;
  virtual Vec memory(const E& space) = 0;
  virtual const char* state_name() const = 0;
};

template <class E, class M>
class SparseWire final : public SparseWireEncoder<E> {
 public:
  using typename SparseWireEncoder<E>::Vec;
  static std::size_t bytes(std::size_t d, const CompressorOptions& o) { return M::sizes(d, o).allocated; }
  SparseWire(const Spec& s, std::size_t d, const CompressorOptions& o) : m_(make_memory<M>(s, d, o)) {}
  SparseMessage<E, float> encode(const E& space, const Vec& g, std::uint64_t iteration) override {
    return m_.compress(space, g, iteration);
  }
  Vec memory(const E& space) override { return m_.memory(space); }
  const char* state_name() const override { return M::state_name; }

 private:
  M m_;
};

// ---- the QSGD wires ----------------------------------------------------------------------------------------

/// A worker's encoder on a QSGD wire (qsgd, terngrad), with its memory (none, or error feedback: EF-QSGD): the
/// message into the worker's slot of the QSGD exchange.
template <class E>
class QsgdWireEncoder {
 public:
  using Vec = optim::VecOf<E>;
  using Planes = Kokkos::View<sign_word_t**, Kokkos::LayoutRight, typename E::memory_space>;
  using Norms = Kokkos::View<float*, typename E::memory_space>;
  virtual ~QsgdWireEncoder() = default;
  virtual void encode(const E& space, const Vec& g, std::uint64_t k, const Planes& planes, const Norms& norms) = 0;
  virtual Vec memory(const E& space) = 0;
  virtual const char* state_name() const = 0;
};

template <class E, class M>
class QsgdWire final : public QsgdWireEncoder<E> {
 public:
  using typename QsgdWireEncoder<E>::Vec;
  using typename QsgdWireEncoder<E>::Planes;
  using typename QsgdWireEncoder<E>::Norms;
  static std::size_t bytes(std::size_t d, const CompressorOptions& o) { return M::sizes(d, o).allocated; }
  QsgdWire(const Spec& s, std::size_t d, const CompressorOptions& o) : m_(make_memory<M>(s, d, o)) {}
  void encode(const E& space, const Vec& g, std::uint64_t k, const Planes& planes, const Norms& norms) override {
    const auto& m = m_.compress(space, g, k);
    Kokkos::deep_copy(space, planes, m.planes);
    Kokkos::deep_copy(space, norms, m.norms);
  }
  Vec memory(const E& space) override { return m_.memory(space); }
  const char* state_name() const override { return M::state_name; }

 private:
  M m_;
};

// ---- the factory: one visit of the tables for the type, used for the object and for its size ---------------

/// f(TypeTag<the encoder type>{}, options) for the spec's wire and memory on a sign or sparse wire.
template <class E, class F>
decltype(auto) visit_encoder(const Spec& s, std::size_t k, std::uint64_t seed, int worker, F&& f) {
  return visit_compressor(s.wire, [&](auto family) -> decltype(auto) {
    using Family = decltype(family);
    return visit_memory<E, Family>(s.memory, [&](auto memory) -> decltype(auto) {
      using M = typename decltype(memory)::type;
      if constexpr (sign_family_v<Family, E>) {
        return f(TypeTag<SignWire<E, M>>{}, compressor_options<Family, E>(s, k, seed, worker, !M::by_piece));
      } else if constexpr (sparse_family_v<Family, E>) {
        return f(TypeTag<SparseWire<E, M>>{}, compressor_options<Family, E>(s, k, seed, worker));
      } else if constexpr (qsgd_family_v<Family, E>) {
        return f(TypeTag<QsgdWire<E, M>>{}, compressor_options<Family, E>(s, k, seed, worker));
      } else {
        return f(TypeTag<void>{}, CompressorOptions{});  // the fp32 wire: no encoder
      }
    });
  });
}

/// Bytes of one worker's encoder of the spec (0 on the fp32 wire).
template <class E>
std::size_t encoder_bytes(const Spec& s, std::size_t d, std::size_t k) {
  return visit_encoder<E>(s, k, 0, 0, [&](auto tag, const CompressorOptions& o) -> std::size_t {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_void_v<T>) return 0;
    else return T::bytes(d, o);
  });
}

template <class E>
std::unique_ptr<SignWireEncoder<E>> make_sign_encoder(const Spec& s, std::size_t d, std::uint64_t seed, int worker) {
  return visit_encoder<E>(s, 0, seed, worker,
                          [&](auto tag, const CompressorOptions& o) -> std::unique_ptr<SignWireEncoder<E>> {
                            using T = typename decltype(tag)::type;
                            if constexpr (std::is_base_of_v<SignWireEncoder<E>, T>) return std::make_unique<T>(s, d, o);
                            else throw std::logic_error("terse: not a sign wire");
                          });
}

template <class E>
std::unique_ptr<QsgdWireEncoder<E>> make_qsgd_encoder(const Spec& s, std::size_t d, std::uint64_t seed, int worker) {
  return visit_encoder<E>(s, 0, seed, worker,
                          [&](auto tag, const CompressorOptions& o) -> std::unique_ptr<QsgdWireEncoder<E>> {
                            using T = typename decltype(tag)::type;
                            if constexpr (std::is_base_of_v<QsgdWireEncoder<E>, T>) return std::make_unique<T>(s, d, o);
                            else throw std::logic_error("terse: not a qsgd wire");
                          });
}

template <class E>
std::unique_ptr<SparseWireEncoder<E>> make_sparse_encoder(const Spec& s, std::size_t d, std::size_t k,
                                                          std::uint64_t seed, int worker) {
  return visit_encoder<E>(s, k, seed, worker,
                          [&](auto tag, const CompressorOptions& o) -> std::unique_ptr<SparseWireEncoder<E>> {
                            using T = typename decltype(tag)::type;
                            if constexpr (std::is_base_of_v<SparseWireEncoder<E>, T>) return std::make_unique<T>(s, d, o);
                            else throw std::logic_error("terse: not a sparse wire");
                          });
}

}  // namespace terse::pieces
