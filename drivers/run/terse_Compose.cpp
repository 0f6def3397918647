// terse_Compose.cpp: the composition table, the deck's optimizer section onto a terse::optim::Spec.
#include "terse_Compose.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace terse {

optim::Spec compose(const OptimizerConfig& o) {
  using K = OptimizerKind;
  using optim::Aggregate;
  using optim::Downlink;
  using optim::Memory;
  using optim::Rule;
  using optim::Wire;
  const Wire compressor = o.compressor == Compressor::top_k    ? Wire::top_k
                          : o.compressor == Compressor::rand_k ? Wire::rand_k
                                                               : Wire::scaled_sign;
  // The Markov methods' broadcast: the Markov sequence of g^ (two-way) or g^ itself as fp32 values (one-way).
  const Downlink markov_down = o.broadcast == Broadcast::mean ? Downlink::plain : Downlink::markov;
  const bool exact = o.estimate_start == EstimateStart::gradient;
  struct Row {
    Wire wire;
    Memory memory;
    Aggregate aggregate;
    Downlink downlink;
    Rule rule;
    bool exact_start = false;
  };
  const Row row = [&]() -> Row {
    //                                   wire                   memory                  aggregate        downlink                  rule
    switch (o.kind) {
      case K::sgd:             return {Wire::fp32,            Memory::none,           Aggregate::mean, Downlink::plain,          Rule::sgd};
      case K::majority_vote:   return {Wire::sign,            Memory::none,           Aggregate::vote, Downlink::plain,          Rule::sign};
      case K::stochastic_sign: return {Wire::stochastic_sign, Memory::none,           Aggregate::mean, Downlink::plain,          Rule::sgd};
      case K::ef_signsgd:      return {Wire::scaled_sign,     Memory::error_feedback, Aggregate::mean, Downlink::plain,          Rule::sgd};
      case K::amsgrad:         return {Wire::fp32,            Memory::none,           Aggregate::mean, Downlink::plain,          Rule::amsgrad};
      case K::amsgrad_naive:   return {Wire::scaled_sign,     Memory::none,           Aggregate::mean, Downlink::plain,          Rule::amsgrad};
      case K::amsgrad_ef:      return {Wire::scaled_sign,     Memory::error_feedback, Aggregate::mean, Downlink::plain,          Rule::amsgrad};
      case K::cd_adam:         return {compressor,            Memory::markov,         Aggregate::mean, markov_down,              Rule::amsgrad, exact};
      case K::ef21:            return {compressor,            Memory::markov,         Aggregate::mean, markov_down,              Rule::sgd,     exact};
      case K::adagrad:         return {Wire::fp32,            Memory::none,           Aggregate::mean, Downlink::plain,          Rule::adagrad};
      case K::local_sgd:       return {Wire::fp32,            Memory::none,           Aggregate::mean, Downlink::plain,          Rule::local_sgd};
      case K::local_adaalter:  return {Wire::fp32,            Memory::none,           Aggregate::mean, Downlink::plain,          Rule::local_adaalter};
      case K::onebit_adam:     return {Wire::scaled_sign,     Memory::error_feedback, Aggregate::mean, Downlink::error_feedback, Rule::onebit_adam};
      case K::signum:          return {Wire::sign,            Memory::momentum,       Aggregate::vote, Downlink::plain,          Rule::sign};
      case K::qsgd:            return {Wire::qsgd,            Memory::none,           Aggregate::mean, Downlink::plain,          Rule::sgd};
      case K::ef_qsgd:         return {Wire::qsgd,            Memory::error_feedback, Aggregate::mean, Downlink::plain,          Rule::sgd};
      case K::terngrad:        return {Wire::terngrad,        Memory::none,           Aggregate::mean, Downlink::plain,          Rule::sgd};
    }
    throw std::logic_error("terse::compose: unknown optimizer kind");
  }();
  optim::Spec s;
  s.wire = row.wire;
  s.memory = row.memory;
  s.aggregate = row.aggregate;
  s.downlink = row.downlink;
  s.rule = row.rule;
  s.exact_start = row.exact_start;
  // The hyper-parameters: every field, whether the row's pieces read it or not (the deck resolved the defaults).
  s.lr = o.lr;
  s.step_size = o.lr_schedule == LrSchedule::inv_sqrt   ? optim::StepSize::inv_sqrt
                : o.lr_schedule == LrSchedule::adaptive ? optim::StepSize::adaptive
                                                        : optim::StepSize::constant;
  s.accept_descent = o.accept == AcceptRule::descent;
  s.k_ratio = o.k_ratio;
  s.beta1 = o.beta1;
  s.beta2 = o.beta2;
  s.nu = o.nu;
  s.eps = o.eps;
  s.momentum = o.momentum;
  s.weight_decay = o.weight_decay;
  s.sync_period = o.sync_period;
  s.b0 = o.b0;
  s.warmup_steps = o.warmup_steps;
  s.levels = static_cast<int>(std::min<std::int64_t>(o.levels, std::numeric_limits<int>::max()));
  s.bucket = o.bucket;
  return s;
}

optim::Layout layout_of(const Deck& deck, std::uint64_t d) {
  optim::Layout l;
  l.d = static_cast<std::size_t>(d);
  l.workers_per_rank = static_cast<int>(deck.workers.per_rank);
  l.seed = deck.run.seed;
  l.exchange_chunk = deck.run.exchange_chunk;
  return l;
}

}  // namespace terse
