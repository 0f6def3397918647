#pragma once
// terse_Algorithm.hpp: the algorithms of the seeds as compositions of five pieces (docs/architecture.md).
//
//   wire        what a worker sends: fp32 values, signs, scaled signs, stochastic signs, top-k or rand-k pairs
//   memory      what a worker keeps between rounds: none, error feedback, a Markov compression sequence, its
//               momentum (Signum: the worker sends the sign of b m_w + (1 - b) g_w, which it keeps)
//   aggregate   what the (sharded) server forms: the mean of the messages, or their majority vote
//   downlink    what the server sends back: the aggregate as it is (the vote bits, or fp32 values), a
//               Markov compression sequence of it with the wire's compressor (seed 004 Alg. 1, lines 8-10),
//               or its scaled sign with the server's own error feedback (1-bit Adam)
//   rule        how the model moves: SGD, a sign step, AMSGrad, AdaGrad, 1-bit Adam (Adam while warming up
//               with the fp32 pieces, then the compressed momentum over a frozen variance), or local steps
//               with a periodic average of the models (Local SGD, Local AdaAlter)
//
// compose() maps each `optimizer.kind` of the deck to its pieces; the driver (terse_Run.cpp) builds the
// pieces once and runs them in this order every iteration. A new combination (majority vote on
// error-feedback messages, say) is a new row in compose(), not a new loop.

#include "terse_Deck.hpp"

#include <cstdint>
#include <string>

namespace terse {

enum class Wire { fp32, sign, scaled_sign, stochastic_sign, top_k, rand_k };
/// The wires that send (index, value) pairs (the sparse exchange).
inline bool sparse(Wire w) { return w == Wire::top_k || w == Wire::rand_k; }
enum class Memory { none, error_feedback, markov, momentum };
enum class Aggregate { mean, vote };
enum class Downlink { plain, markov, error_feedback };
enum class Rule { sgd, sign, amsgrad, adagrad, onebit_adam, local_sgd, local_adaalter };

const char* to_string(Wire v);
const char* to_string(Memory v);
const char* to_string(Aggregate v);
const char* to_string(Downlink v);
const char* to_string(Rule v);

struct Composition {
  Wire wire = Wire::fp32;
  Memory memory = Memory::none;
  Aggregate aggregate = Aggregate::mean;
  Downlink downlink = Downlink::plain;
  Rule rule = Rule::sgd;
  /// Markov memories only: iteration 0 is the exact start (optimizer.estimate_start: gradient), an fp32 round
  /// whose mean becomes g^ (and g~), each worker's gradient its estimate g^_w (Round::start).
  bool exact_start = false;
  /// Memory::momentum (Signum): the workers' momentum beta, optimizer.momentum.
  double momentum = 0;

  /// Local methods: workers keep their own models and communicate (fp32 models) every sync_period steps.
  bool local() const { return rule == Rule::local_sgd || rule == Rule::local_adaalter; }
  /// 1-bit Adam: the first optimizer.warmup_steps rounds use warmup() (fp32 gradients, plain mean).
  bool has_warmup() const { return rule == Rule::onebit_adam; }
  /// The pieces of the warm-up rounds: the same rule, uncompressed.
  Composition warmup() const { return {Wire::fp32, Memory::none, Aggregate::mean, Downlink::plain, rule, false, 0}; }
};

/// One term of what a rank of a run allocates (Kokkos views), in bytes: each piece reports its own.
struct MemoryTerm {
  std::string what;
  std::uint64_t bytes = 0;
};

/// The pieces of an algorithm of the deck (see the table in compose()'s definition).
Composition compose(const OptimizerConfig& optimizer);

/// One line for the log, e.g. "scaled_sign messages with markov memory -> mean -> markov downlink -> amsgrad".
std::string describe(const Composition& c);

/// k of the top-k and rand-k compressors: max(1, round(k_ratio d)), at most d.
std::uint64_t top_k_count(double k_ratio, std::uint64_t d);

/// Payload bits per worker of one communication round (docs/hdf5.md: 32 per fp32 value, 1 per sign, 32 per
/// scale, 64 per top-k or rand-k entry of a worker; 32 per entry of the server's rand-k message, whose
/// indices every rank draws itself). Local methods communicate fp32 models (and Local AdaAlter its denominators)
/// only on sync rounds; the driver adds these once per sync.
struct RoundBits {
  double up = 0, down = 0;
};
RoundBits round_bits(const Composition& c, std::uint64_t d, std::uint64_t k, int workers);
/// Payload bits per worker of the exact start's round: its gradient up, the mean down, 32 per value.
RoundBits start_bits(std::uint64_t d);

}  // namespace terse
