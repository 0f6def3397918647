// terse_Algorithm.cpp: the table of compositions and the payload-bit formula.
#include "terse_Algorithm.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace terse {

const char* to_string(Wire v) {
  switch (v) {
    case Wire::fp32: return "fp32";
    case Wire::sign: return "sign";
    case Wire::scaled_sign: return "scaled_sign";
    case Wire::stochastic_sign: return "stochastic_sign";
    case Wire::top_k: return "top_k";
    case Wire::rand_k: return "rand_k";
  }
  return "?";
}
const char* to_string(Memory v) {
  switch (v) {
    case Memory::none: return "no";
    case Memory::error_feedback: return "error-feedback";
    case Memory::markov: return "markov";
    case Memory::momentum: return "momentum";
  }
  return "?";
}
const char* to_string(Aggregate v) { return v == Aggregate::mean ? "mean" : "majority vote"; }
const char* to_string(Downlink v) {
  switch (v) {
    case Downlink::plain: return "plain";
    case Downlink::markov: return "markov";
    case Downlink::error_feedback: return "error-feedback scaled-sign";
  }
  return "?";
}
const char* to_string(Rule v) {
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

Composition compose(const OptimizerConfig& o) {
  using K = OptimizerKind;
  const Wire compressor = o.compressor == Compressor::top_k    ? Wire::top_k
                           : o.compressor == Compressor::rand_k ? Wire::rand_k
                                                                : Wire::scaled_sign;
  // The Markov methods' broadcast: the Markov sequence of g^ (two-way) or g^ itself as fp32 values (one-way).
  const Downlink markov_down = o.broadcast == Broadcast::mean ? Downlink::plain : Downlink::markov;
  const bool exact = o.estimate_start == EstimateStart::gradient;
  //                         wire                  memory                  aggregate        downlink          rule
  switch (o.kind) {
    case K::sgd:             return {Wire::fp32,            Memory::none,           Aggregate::mean, Downlink::plain,  Rule::sgd};
    case K::majority_vote:   return {Wire::sign,            Memory::none,           Aggregate::vote, Downlink::plain,  Rule::sign};
    case K::stochastic_sign: return {Wire::stochastic_sign, Memory::none,           Aggregate::mean, Downlink::plain,  Rule::sgd};
    case K::ef_signsgd:      return {Wire::scaled_sign,     Memory::error_feedback, Aggregate::mean, Downlink::plain,  Rule::sgd};
    case K::amsgrad:         return {Wire::fp32,            Memory::none,           Aggregate::mean, Downlink::plain,  Rule::amsgrad};
    case K::amsgrad_naive:   return {Wire::scaled_sign,     Memory::none,           Aggregate::mean, Downlink::plain,  Rule::amsgrad};
    case K::amsgrad_ef:      return {Wire::scaled_sign,     Memory::error_feedback, Aggregate::mean, Downlink::plain,  Rule::amsgrad};
    case K::cd_adam:         return {compressor,            Memory::markov,         Aggregate::mean, markov_down,      Rule::amsgrad, exact};
    case K::ef21:            return {compressor,            Memory::markov,         Aggregate::mean, markov_down,      Rule::sgd,     exact};
    case K::adagrad:         return {Wire::fp32,            Memory::none,           Aggregate::mean, Downlink::plain,  Rule::adagrad};
    case K::local_sgd:       return {Wire::fp32,            Memory::none,           Aggregate::mean, Downlink::plain,  Rule::local_sgd};
    case K::local_adaalter:  return {Wire::fp32,            Memory::none,           Aggregate::mean, Downlink::plain,  Rule::local_adaalter};
    case K::onebit_adam:     return {Wire::scaled_sign,     Memory::error_feedback, Aggregate::mean, Downlink::error_feedback, Rule::onebit_adam};
    case K::signum:          return {Wire::sign,            Memory::momentum,       Aggregate::vote, Downlink::plain,  Rule::sign,    false, o.momentum};
  }
  throw std::logic_error("terse::compose: unknown optimizer kind");
}

std::string describe(const Composition& c) {
  std::string s = std::string(to_string(c.wire)) + " messages with " + to_string(c.memory) + " memory -> " +
                  to_string(c.aggregate) + " on the sharded server -> " + to_string(c.downlink) + " downlink -> " +
                  to_string(c.rule);
  if (c.has_warmup()) s += " (warm-up rounds: fp32 gradients -> mean -> plain downlink)";
  if (c.exact_start) s += " (iteration 0: fp32 gradients -> mean; the estimates start there)";
  return s;
}

std::uint64_t top_k_count(double k_ratio, std::uint64_t d) {
  const double k = std::round(k_ratio * static_cast<double>(d));
  return std::min<std::uint64_t>(d, std::max<std::uint64_t>(1, static_cast<std::uint64_t>(k)));
}

namespace {
double message_bits(Wire w, std::uint64_t d, std::uint64_t k) {
  const double dd = static_cast<double>(d);
  switch (w) {
    case Wire::fp32: return 32 * dd;
    case Wire::sign: return dd;
    case Wire::scaled_sign:
    case Wire::stochastic_sign: return dd + 32;
    case Wire::top_k:
    case Wire::rand_k: return 64 * static_cast<double>(k);
  }
  return 0;
}
}  // namespace

RoundBits start_bits(std::uint64_t d) { return {32.0 * static_cast<double>(d), 32.0 * static_cast<double>(d)}; }

RoundBits round_bits(const Composition& c, std::uint64_t d, std::uint64_t k, int workers) {
  RoundBits b;
  if (c.local()) {
    const double factor = c.rule == Rule::local_adaalter ? 2 : 1;  // models, plus the denominators
    b.up = b.down = factor * 32.0 * static_cast<double>(d);
    return b;
  }
  b.up = message_bits(c.wire, d, k);
  if (c.downlink == Downlink::markov && c.wire == Wire::rand_k) {
    b.down = 32 * static_cast<double>(k);  // the server's rand-k values; every rank draws their indices
  } else if (c.downlink == Downlink::markov || c.downlink == Downlink::error_feedback) {
    b.down = message_bits(c.wire, d, k);
  } else if (c.aggregate == Aggregate::vote) {
    b.down = static_cast<double>(d) * (workers % 2 == 0 ? 2 : 1);  // the vote, plus the tie mask for even W
  } else {
    b.down = 32.0 * static_cast<double>(d);  // the mean, as fp32 values
  }
  return b;
}

}  // namespace terse
