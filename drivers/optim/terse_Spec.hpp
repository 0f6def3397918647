#pragma once
// terse_Spec.hpp: the spec of a method, in plain C++ types (no deck, no Kokkos): the pieces an algorithm is made
// of and their hyper-parameters. terse::optim::Method (terse_Optim.hpp) is built from a Spec; `terse run` maps a
// deck's optimizer section onto one (terse::compose, drivers/run/terse_Compose.hpp: the composition table).
//
//   wire        what a worker sends: fp32 values, signs, scaled signs, stochastic signs, top-k or rand-k pairs,
//               QSGD's or TernGrad's packed levels (the compressor, terse_Compressor.hpp, terse_Qsgd.hpp)
//   memory      what a worker keeps between rounds: none, error feedback, a Markov compression sequence, its
//               momentum (Signum: the worker sends the sign of b m_w + (1 - b) g_w, which it keeps)
//   aggregate   what the (sharded) server forms: the mean of the messages, or their majority vote
//   downlink    what the server sends back: the aggregate as it is (the vote bits, or fp32 values), a Markov
//               compression sequence of it with the wire's compressor (seed 004 Alg. 1, lines 8-10), or its
//               scaled sign with the server's own error feedback (1-bit Adam)
//   rule        how the model moves: SGD, a sign step, AMSGrad, AdaGrad, 1-bit Adam (Adam while warming up with
//               the fp32 pieces, then the compressed momentum over a frozen variance), or local steps with a
//               periodic average of the models (Local SGD, Local AdaAlter)

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

namespace terse::optim {

enum class Wire { fp32, sign, scaled_sign, stochastic_sign, top_k, rand_k, qsgd, terngrad };
/// The wires that send (index, value) pairs (the sparse exchange).
inline bool sparse(Wire w) { return w == Wire::top_k || w == Wire::rand_k; }
/// The wires that send packed signs (the sign exchange).
inline bool signs(Wire w) { return w == Wire::sign || w == Wire::scaled_sign || w == Wire::stochastic_sign; }
/// The wires that send QSGD messages (norms per bucket and packed levels: the QSGD exchange).
inline bool quantized(Wire w) { return w == Wire::qsgd || w == Wire::terngrad; }
enum class Memory { none, error_feedback, markov, momentum };
enum class Aggregate { mean, vote };
enum class Downlink { plain, markov, error_feedback };
enum class Rule { sgd, sign, amsgrad, adagrad, onebit_adam, local_sgd, local_adaalter };
/// The sign step's step size: lr; lr / sqrt(k + 1) (seed 001); eta* of seed 000 Prop. 3 from the workers'
/// estimates (StepInputs::eta_sum), capped by lr.
enum class StepSize { constant, inv_sqrt, adaptive };


struct Spec {
  // ---- the composition
  Wire wire = Wire::fp32;
  Memory memory = Memory::none;
  Aggregate aggregate = Aggregate::mean;
  Downlink downlink = Downlink::plain;
  Rule rule = Rule::sgd;
  /// Markov memories only: iteration 0 is the exact start (Richtarik et al. 2021, Alg. 1: g_w^0 = grad f_w(x^0)),
  /// an fp32 round whose mean becomes g^ (and g~), each worker's gradient its estimate.
  bool exact_start = false;

  // ---- hyper-parameters (each piece reads the ones it uses)
  double lr = 0;                          ///< the step size (every rule), > 0
  StepSize step_size = StepSize::constant;  ///< the sign step
  bool accept_descent = false;            ///< the sign step: keep x_k unless the step lowers f (seed 001 Alg. 1, Opt. 2)
  double k_ratio = 0.016;                 ///< top_k, rand_k: k = top_k_count(k_ratio, d)
  int levels = 7;                         ///< qsgd: the levels s >= 1 (terngrad: 1 whatever it says)
  std::int64_t bucket = 512;              ///< qsgd, terngrad: coordinates per norm, >= 1 (>= d: one norm)
  double beta1 = 0.9, beta2 = 0.999, nu = 1e-8;  ///< AMSGrad, 1-bit Adam
  double eps = 1e-8;                      ///< AdaGrad, Local AdaAlter
  double momentum = 0.9;                  ///< Memory::momentum (Signum): the workers' b
  double weight_decay = 0;                ///< the sign step with momentum (Signum): g + weight_decay x is sent
  std::int64_t sync_period = 1;           ///< local rules: steps between averages
  double b0 = 1;                          ///< Local AdaAlter: the accumulators' start b0^2
  std::int64_t warmup_steps = 0;          ///< Local AdaAlter: lr warm-up steps; 1-bit Adam: fp32 rounds first

  /// Local methods: workers keep their own models and communicate (fp32 models) every sync_period steps.
  bool local() const { return rule == Rule::local_sgd || rule == Rule::local_adaalter; }
  /// 1-bit Adam: the first warmup_steps rounds use warmup() (fp32 gradients, plain mean).
  bool has_warmup() const { return rule == Rule::onebit_adam; }
  /// The pieces of the warm-up rounds: the same rule, uncompressed.
  Spec warmup() const {
    Spec s = *this;
    s.wire = Wire::fp32;
    s.memory = Memory::none;
    s.aggregate = Aggregate::mean;
    s.downlink = Downlink::plain;
    s.exact_start = false;
    return s;
  }
  /// Whether the wire sends (index, value) pairs (k of them: top_k_count(k_ratio, d)).
  bool sparse_wire() const { return sparse(wire); }
};

/// Where a Method runs: the gradient's length d, the logical workers on this rank (R, the same on every rank;
/// W = P R workers in all, worker w on rank floor(w / R)), the seed of the random streams, and the chunk of the
/// chunked exchange (coordinates of each server slice per chunk; 0: one chunk; exchange_chunk_auto: chunks of
/// exchange_chunk_size from 3 ranks on, one chunk on 1 or 2; only the compositions Method::chunkable() names
/// chunk, and the results do not depend on it).
struct Layout {
  static constexpr std::int64_t exchange_chunk_auto = -1;
  static constexpr std::int64_t exchange_chunk_size = std::int64_t{1} << 18;
  std::size_t d = 0;
  int workers_per_rank = 1;
  std::uint64_t seed = 0;
  std::int64_t exchange_chunk = exchange_chunk_auto;
  /// The chunk on P ranks, in coordinates (0: one chunk).
  std::int64_t chunk_for(int P) const {
    if (exchange_chunk != exchange_chunk_auto) return exchange_chunk;
    return P >= 3 ? exchange_chunk_size : 0;
  }
};

/// One term of what a rank allocates (Kokkos views), in bytes: each piece reports its own.
struct MemoryTerm {
  std::string what;
  std::uint64_t bytes = 0;
};

/// Payload bits per worker of one communication round (docs/hdf5.md).
struct RoundBits {
  double up = 0, down = 0;
};

// ---- names -------------------------------------------------------------------------------------------


inline const char* to_string(Wire v) {
  switch (v) {
    case Wire::fp32: return "fp32";
    case Wire::sign: return "sign";
    case Wire::scaled_sign: return "scaled_sign";
    case Wire::stochastic_sign: return "stochastic_sign";
    case Wire::top_k: return "top_k";
    case Wire::rand_k: return "rand_k";
    case Wire::qsgd: return "qsgd";
    case Wire::terngrad: return "terngrad";
  }
  return "?";
}
inline const char* to_string(Memory v) {
  switch (v) {
    case Memory::none: return "no";
    case Memory::error_feedback: return "error-feedback";
    case Memory::markov: return "markov";
    case Memory::momentum: return "momentum";
  }
  return "?";
}
inline const char* to_string(Aggregate v) { return v == Aggregate::mean ? "mean" : "majority vote"; }
inline const char* to_string(Downlink v) {
  switch (v) {
    case Downlink::plain: return "plain";
    case Downlink::markov: return "markov";
    case Downlink::error_feedback: return "error-feedback scaled-sign";
  }
  return "?";
}
inline const char* to_string(StepSize v) {
  switch (v) {
    case StepSize::constant: return "constant";
    case StepSize::inv_sqrt: return "inv_sqrt";
    case StepSize::adaptive: return "adaptive";
  }
  return "?";
}
inline const char* to_string(Rule v) {
  switch (v) {
    case Rule::sgd: return "sgd";
    case Rule::sign: return "sign step";
    case Rule::amsgrad: return "amsgrad";
    case Rule::adagrad: return "adagrad";
    case Rule::onebit_adam: return "adam, variance frozen after the warm-up";
    case Rule::local_sgd: return "local sgd";
    case Rule::local_adaalter: return "local adaalter";
  }
  return "?";
}

/// One line for the log, e.g. "scaled_sign messages with markov memory -> mean -> markov downlink -> amsgrad".
inline std::string describe(const Spec& c) {
  std::string s = std::string(to_string(c.wire)) + " messages with " + to_string(c.memory) + " memory -> " +
                  to_string(c.aggregate) + " on the sharded server -> " + to_string(c.downlink) + " downlink -> " +
                  to_string(c.rule);
  if (c.has_warmup()) s += " (warm-up rounds: fp32 gradients -> mean -> plain downlink)";
  if (c.exact_start) s += " (iteration 0: fp32 gradients -> mean; the estimates start there)";
  return s;
}

/// k of the top-k and rand-k compressors: max(1, round(k_ratio d)), at most d.
inline std::uint64_t top_k_count(double k_ratio, std::uint64_t d) {
  const double k = std::round(k_ratio * static_cast<double>(d));
  return std::min<std::uint64_t>(d, std::max<std::uint64_t>(1, static_cast<std::uint64_t>(k)));
}


}  // namespace terse::optim
