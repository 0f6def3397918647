// terse_Rules.cpp: the update rules (terse_Rules.hpp).
#include "terse_Rules.hpp"

#include <terse_Update.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace terse::pieces {
namespace {

constexpr std::uint64_t f32 = sizeof(float);

/// x <- x - lr * direction (seed 002 Alg. 1 and 2, seed 004's EF21 and error feedback).
class Sgd final : public PieceRule {
 public:
  explicit Sgd(const OptimizerConfig& o) : PieceRule(o.lr) {}
  void step_piece(const Exec& space, const Vec& x, const Round& round, const CoordSlice& c) override {
    sgd_step(space, slice_of(x, c), slice_of(round.direction(), c), lr_);
  }
};

/// AMSGrad on the direction (seed 004 Alg. 1, lines 13-16).
class Amsgrad final : public PieceRule {
 public:
  Amsgrad(const OptimizerConfig& o, std::size_t d)
      : PieceRule(o.lr), p_{o.lr, o.beta1, o.beta2, o.nu}, m_("terse::amsgrad.m", d), v_("terse::amsgrad.v", d),
        v_hat_("terse::amsgrad.v_hat", d) {}
  static std::vector<MemoryTerm> memory(std::size_t d) { return {{"AMSGrad m, v, v_hat", 3 * d * f32}}; }
  void step_piece(const Exec& space, const Vec& x, const Round& round, const CoordSlice& c) override {
    amsgrad_step(space, slice_of(x, c), slice_of(m_, c), slice_of(v_, c), slice_of(v_hat_, c),
                 slice_of(round.direction(), c), p_);
  }
  void state(std::vector<StateArray>& out) override {
    out.push_back({"amsgrad.m", StateArray::Kind::replicated, {m_}});
    out.push_back({"amsgrad.v", StateArray::Kind::replicated, {v_}});
    out.push_back({"amsgrad.v_hat", StateArray::Kind::replicated, {v_hat_}});
  }

 private:
  AmsgradParams p_;
  Vec m_, v_, v_hat_;
};

/// AdaGrad on the direction (seed 002 Alg. 1).
class Adagrad final : public PieceRule {
 public:
  Adagrad(const OptimizerConfig& o, std::size_t d) : PieceRule(o.lr), eps_(o.eps), accum_("terse::adagrad.accum", d) {}
  static std::vector<MemoryTerm> memory(std::size_t d) { return {{"AdaGrad accumulator", d * f32}}; }
  void step_piece(const Exec& space, const Vec& x, const Round& round, const CoordSlice& c) override {
    adagrad_step(space, slice_of(x, c), slice_of(accum_, c), slice_of(round.direction(), c), lr_, eps_);
  }
  void state(std::vector<StateArray>& out) override {
    out.push_back({"adagrad.accum", StateArray::Kind::replicated, {accum_}});
  }

 private:
  double eps_;
  Vec accum_;
};

/// 1-bit Adam (Tang et al. 2021): Adam on the fp32 mean while warming up; then v frozen, the workers compress
/// their momentum b1 m + (1 - b1) g_w and the compressed average comes back as m.
class OnebitAdam final : public UpdateRule {
 public:
  OnebitAdam(const OptimizerConfig& o, std::size_t d)
      : UpdateRule(o.lr), p_{o.lr, o.beta1, o.beta2, o.nu}, m_("terse::adam.m", d), v_("terse::adam.v", d) {}
  static std::vector<MemoryTerm> memory(std::size_t d) { return {{"Adam m, v", 2 * d * f32}}; }
  void message(const Exec& space, const Vec& g, const Vec&, bool warm) override {
    if (!warm) momentum_blend(space, m_, g, p_.beta1);
  }
  void step(const Exec& space, const Vec& x, const Round& round, const StepInputs& in) override {
    if (in.warm) adam_step(space, x, m_, v_, round.direction(), p_);
    else frozen_adam_step(space, x, m_, v_, round.direction(), p_.lr, p_.nu);
  }
  void state(std::vector<StateArray>& out) override {
    out.push_back({"adam.m", StateArray::Kind::replicated, {m_}});
    out.push_back({"adam.v", StateArray::Kind::replicated, {v_}});
  }

 private:
  AmsgradParams p_;
  Vec m_, v_;
};

/// The sign step on the vote: x <- x - lr_k sign(vote) (a tie moves by 0), with the step sizes of seed 000
/// (adaptive eta*, Prop. 3) and seed 001 (gamma_0 / sqrt(k+1)), and seed 001 Alg. 1's Option 2 (accept:
/// descent: keep x_k unless the step lowers f).
class SignStep final : public PieceRule {
 public:
  SignStep(const OptimizerConfig& o, std::size_t d, MPI_Comm comm, int W, Objective objective)
      : PieceRule(o.lr), o_(o), comm_(comm), W_(W), objective_(std::move(objective)),
        x_prev_("terse::x_prev", o.accept == AcceptRule::descent ? d : 0) {
    MPI_Comm_size(comm_, &P_);
  }
  static std::vector<MemoryTerm> memory(const OptimizerConfig& o, std::size_t d) {
    if (o.accept != AcceptRule::descent) return {};
    return {{"previous model (accept: descent)", d * f32}};
  }
  /// Signum's weight decay (Bernstein et al.'s code): the worker's gradient becomes g + weight_decay x before
  /// its momentum.
  void message(const Exec& space, const Vec& g, const Vec& x, bool) override {
    if (o_.weight_decay > 0) sgd_step(space, g, x, -o_.weight_decay);  // g <- g - (-wd) x
  }
  void begin_step(const Exec& space, const Vec& x, const StepInputs& in) override {
    switch (o_.lr_schedule) {
      case LrSchedule::constant: lr_ = o_.lr; break;
      case LrSchedule::inv_sqrt: lr_ = o_.lr / std::sqrt(static_cast<double>(in.k) + 1.0); break;
      case LrSchedule::adaptive: {
        // eta*_k of seed 000 Prop. 3, each worker's estimate from its batch, averaged over the W workers;
        // capped by optimizer.lr, and 0 when the estimate is not positive.
        double eta = 0;
        MPI_Allreduce(&in.eta_sum, &eta, 1, MPI_DOUBLE, MPI_SUM, comm_);
        if (P_ > 1) bytes_ += sizeof(double);
        lr_ = std::clamp(eta / W_, 0.0, o_.lr);
        break;
      }
    }
    if (x_prev_.extent(0) > 0) Kokkos::deep_copy(space, x_prev_, x);
  }
  void step_piece(const Exec& space, const Vec& x, const Round& round, const CoordSlice& c) override {
    const auto words = std::make_pair(c.begin / sign_word_bits, c.begin / sign_word_bits + packed_words(c.size()));
    sign_apply_voted(space, Kokkos::subview(round.vote_words(), words), Kokkos::subview(round.tie_words(), words),
                     slice_of(x, c), static_cast<float>(lr_));
  }
  void end_step(const Exec& space, const Vec& x) override {
    if (x_prev_.extent(0) == 0) return;
    // Seed 001 Alg. 1, Option 2: keep x_k unless the step lowers f.
    const double f_new = objective_(x, bytes_);
    if (f_new < f_accepted_) f_accepted_ = f_new;
    else Kokkos::deep_copy(space, x, x_prev_);
  }

 private:
  OptimizerConfig o_;
  MPI_Comm comm_;
  int W_, P_ = 1;
  Objective objective_;
  Vec x_prev_;
};

// ---- local rules ----------------------------------------------------------------------------------------

/// Local SGD (seed 002 Alg. 2): y_w = x_w - lr g_w.
class LocalSgd final : public LocalRule {
 public:
  using LocalRule::LocalRule;
  void step(const Exec& space, int l, const Vec& g, std::int64_t) override { sgd_step(space, model(l), g, o_.lr); }
};

/// Local AdaAlter (seed 002 Alg. 3): local steps with the denominators of the last sync plus t' eps^2, the
/// accumulators and the models averaged every sync_period steps, the lr warm-up of Sec. 6.2.
class LocalAdaAlter final : public LocalRule {
 public:
  LocalAdaAlter(const OptimizerConfig& o, std::size_t d, int R, MPI_Comm comm, int W, Scratch scratch)
      : LocalRule(o, d, R, comm, W, std::move(scratch)), accum_("terse::adaalter.accum", R, d),
        denom_("terse::adaalter.denom", d) {
    const float b0sq = static_cast<float>(o.b0 * o.b0);
    Kokkos::deep_copy(accum_, b0sq);
    Kokkos::deep_copy(denom_, b0sq);
  }
  static std::vector<MemoryTerm> memory(std::size_t d, int R) {
    return {{"Local AdaAlter accumulators and denominators", (static_cast<std::uint64_t>(R) + 1) * d * f32}};
  }
  void step(const Exec& space, int l, const Vec& g, std::int64_t k) override {
    const long t = static_cast<long>(k) + 1;
    lr_ = adaalter_warmup_lr(o_.lr, t, static_cast<long>(o_.warmup_steps));
    adaalter_local_step(space, model(l), denom_, row(accum_, l), g, lr_, o_.eps,
                        adaalter_local_index(t, static_cast<long>(o_.sync_period)));
  }
  void state(std::vector<StateArray>& out) override {
    LocalRule::state(out);
    std::vector<Vec> acc;
    for (int l = 0; l < R_; ++l) acc.push_back(row(accum_, l));
    out.push_back({"worker.adaalter_accum", StateArray::Kind::workers, acc});
    out.push_back({"adaalter.denom", StateArray::Kind::replicated, {denom_}});
  }

 private:
  void sync_more(const Exec& space) override {
    // adaalter_sync_denominators averages the sum itself (accum <- sum / W, denom <- accum).
    const Vec sum = scratch_.b;
    bytes_ += mean_over_workers(comm_, space, accum_, sum, scratch_.host, 0);
    adaalter_sync_denominators(space, denom_, sum, 1.0 / W_);
    for (int l = 0; l < R_; ++l) Kokkos::deep_copy(space, row(accum_, l), sum);
  }

  Mat accum_;
  Vec denom_;
};

}  // namespace

// ---- the shared-model rules' table ----------------------------------------------------------------------

std::vector<MemoryTerm> update_rule_memory(const Composition& c, const OptimizerConfig& o, std::size_t d) {
  switch (c.rule) {
    case Rule::amsgrad: return Amsgrad::memory(d);
    case Rule::adagrad: return Adagrad::memory(d);
    case Rule::onebit_adam: return OnebitAdam::memory(d);
    case Rule::sign: return SignStep::memory(o, d);
    default: return {};
  }
}

std::unique_ptr<UpdateRule> make_update_rule(const Composition& c, const OptimizerConfig& o, std::size_t d,
                                             MPI_Comm comm, int W, Objective objective) {
  switch (c.rule) {
    case Rule::sgd: return std::make_unique<Sgd>(o);
    case Rule::sign: return std::make_unique<SignStep>(o, d, comm, W, std::move(objective));
    case Rule::amsgrad: return std::make_unique<Amsgrad>(o, d);
    case Rule::adagrad: return std::make_unique<Adagrad>(o, d);
    case Rule::onebit_adam: return std::make_unique<OnebitAdam>(o, d);
    case Rule::local_sgd:
    case Rule::local_adaalter: break;
  }
  throw std::logic_error("terse::make_update_rule: " + std::string(to_string(c.rule)) + " is a local rule");
}

// ---- local rules ----------------------------------------------------------------------------------------

LocalRule::LocalRule(const OptimizerConfig& o, std::size_t d, int R, MPI_Comm comm, int W, Scratch scratch)
    : RuleScalars(o.lr), o_(o), comm_(comm), R_(R), W_(W), x_("terse::x_local", R, d), scratch_(std::move(scratch)) {}

void LocalRule::start(const Exec& space, const Vec& x0) {
  for (int l = 0; l < R_; ++l) Kokkos::deep_copy(space, row(x_, l), x0);
}

bool LocalRule::sync(const Exec& space, std::int64_t k) {
  const long t = static_cast<long>(k) + 1;
  if (!adaalter_is_sync_step(t, static_cast<long>(o_.sync_period))) return false;
  // x_{i,t} <- (1/W) sum_k y_{k,t} (seed 002 Alg. 2 and 3), and what else the rule averages.
  bytes_ += mean_over_workers(comm_, space, x_, scratch_.a, scratch_.host, W_);
  for (int l = 0; l < R_; ++l) Kokkos::deep_copy(space, row(x_, l), scratch_.a);
  sync_more(space);
  return true;
}

Vec LocalRule::average(const Exec& space, std::uint64_t& bytes) const {
  bytes += mean_over_workers(comm_, space, x_, scratch_.a, scratch_.host, W_);
  return scratch_.a;
}

void LocalRule::state(std::vector<StateArray>& out) {
  std::vector<Vec> rows;
  for (int l = 0; l < R_; ++l) rows.push_back(row(x_, l));
  out.push_back({"worker.x", StateArray::Kind::workers, rows});
}

std::vector<MemoryTerm> local_rule_memory(const Composition& c, std::size_t d, int R) {
  std::vector<MemoryTerm> t{{"the local workers' models", static_cast<std::uint64_t>(R) * d * f32}};
  if (c.rule == Rule::local_adaalter) {
    const auto more = LocalAdaAlter::memory(d, R);
    t.insert(t.end(), more.begin(), more.end());
  }
  return t;
}

std::unique_ptr<LocalRule> make_local_rule(const Composition& c, const OptimizerConfig& o, std::size_t d, int R,
                                           MPI_Comm comm, int W, Scratch scratch) {
  if (c.rule == Rule::local_sgd) return std::make_unique<LocalSgd>(o, d, R, comm, W, std::move(scratch));
  if (c.rule == Rule::local_adaalter) return std::make_unique<LocalAdaAlter>(o, d, R, comm, W, std::move(scratch));
  throw std::logic_error("terse::make_local_rule: " + std::string(to_string(c.rule)) + " is not a local rule");
}

}  // namespace terse::pieces
