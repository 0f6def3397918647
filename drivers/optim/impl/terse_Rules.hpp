#pragma once
// terse_Rules.hpp: the update rules, each a piece that owns its state.
//
// A shared-model rule (SGD, the sign step, AMSGrad, AdaGrad, 1-bit Adam) moves the one model every rank holds
// from what the round brings back; the local rules (Local SGD, Local AdaAlter) move each worker's own model and
// average the models every sync_period steps. Each class allocates its arrays in its constructor, reports
// them for the memory estimate (a static memory(), computed before anything is allocated), lists them for
// checkpoints (state()), and counts the bytes it hands MPI itself (the adaptive step's and accept: descent's
// sums; a local rule's averages). make_update_rule() and make_local_rule() are the only places that map a
// spec's rule to a class (update_rule_memory() and local_rule_memory() give their memory terms).

#include "../terse_Spec.hpp"
#include "../terse_State.hpp"
#include "terse_Round.hpp"

#include <terse_Update.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace terse::pieces {

using optim::MemoryTerm;
using optim::Rule;
using optim::Scalars;
using optim::StepInputs;
using optim::StepSize;

inline constexpr std::uint64_t f32 = sizeof(float);

/// What every rule keeps besides its arrays, the same for all so that a checkpoint's layout is one: the step
/// size of the last update (the history's lr), the accepted loss (accept: descent) and the bytes it handed MPI.
class RuleScalars {
 public:
  explicit RuleScalars(double lr) : lr_(lr) {}
  /// The step size of the last update (the history's lr).
  double lr() const { return lr_; }
  /// The scalars a checkpoint keeps for the rule.
  void scalars(Scalars& out) {
    out.emplace_back("f_accepted", &f_accepted_);
    out.emplace_back("lr", &lr_);
  }
  /// Bytes the rule itself handed MPI.
  std::uint64_t bytes_sent() const { return bytes_; }

 protected:
  double lr_;
  double f_accepted_ = std::numeric_limits<double>::quiet_NaN();
  std::uint64_t bytes_ = 0;
};

/// A rule that moves the shared model x (every worker holds the same x after each round).
template <class E>
class UpdateRule : public RuleScalars {
 public:
  using Vec = optim::VecOf<E>;
  explicit UpdateRule(double lr) : RuleScalars(lr) {}
  virtual ~UpdateRule() = default;
  UpdateRule(const UpdateRule&) = delete;
  UpdateRule& operator=(const UpdateRule&) = delete;

  /// What a worker compresses, in place on its gradient g at the model x (1-bit Adam: its momentum; Signum
  /// with weight decay: g + weight_decay x). Default: g itself.
  virtual void message(const E& /*space*/, const Vec& /*g*/, const Vec& /*x*/, bool /*warm*/) {}
  /// One update of x from the round's aggregate (collective for the rules that reduce a scalar).
  virtual void step(const E& space, const Vec& x, const Round<E>& round, const StepInputs& in, bool warm) = 0;
  /// The arrays it carries across iterations.
  virtual void state(std::vector<optim::StateArray<E>>& /*out*/) {}

  /// A chunked round (Round::chunked()) hands the aggregate back piece by piece; a rule that moves each
  /// coordinate from that coordinate alone takes its step the same way, and the update overlaps the rest of the
  /// exchange: begin_step() before the exchange (the step size and what else needs no aggregate; collective for
  /// the rules that reduce a scalar), step_piece() on each piece as it is back, end_step() after the last one.
  /// The result is step()'s, bitwise. Rules that cannot (by_piece() false) take step() after the exchange.
  virtual bool by_piece() const { return false; }
  virtual void begin_step(const E& /*space*/, const Vec& /*x*/, const StepInputs& /*in*/) {}
  virtual void step_piece(const E& /*space*/, const Vec& /*x*/, const Round<E>& /*round*/, const CoordSlice& /*c*/) {}
  virtual void end_step(const E& /*space*/, const Vec& /*x*/) {}

  /// The loss of the model it accepted (accept: descent); set at iteration 0.
  void set_accepted_loss(double f) { f_accepted_ = f; }
};

/// A rule whose step is coordinate-wise: step() is begin_step(), step_piece() on [0, d), end_step().
template <class E>
class PieceRule : public UpdateRule<E> {
 public:
  using Vec = optim::VecOf<E>;
  using UpdateRule<E>::UpdateRule;
  bool by_piece() const final { return true; }
  void step(const E& space, const Vec& x, const Round<E>& round, const StepInputs& in, bool) final {
    this->begin_step(space, x, in);
    this->step_piece(space, x, round, CoordSlice{0, x.extent(0)});
    this->end_step(space, x);
  }
};

/// x <- x - lr * direction (seed 002 Alg. 1 and 2, seed 004's EF21 and error feedback).
template <class E>
class Sgd final : public PieceRule<E> {
 public:
  using Vec = optim::VecOf<E>;
  explicit Sgd(const optim::Spec& s) : PieceRule<E>(s.lr) {}
  void step_piece(const E& space, const Vec& x, const Round<E>& round, const CoordSlice& c) override {
    sgd_step(space, slice_of(x, c), slice_of(round.direction(), c), this->lr_);
  }
};

/// AMSGrad on the direction (seed 004 Alg. 1, lines 13-16).
template <class E>
class Amsgrad final : public PieceRule<E> {
 public:
  using Vec = optim::VecOf<E>;
  Amsgrad(const optim::Spec& s, std::size_t d)
      : PieceRule<E>(s.lr), p_{s.lr, s.beta1, s.beta2, s.nu}, m_("terse::amsgrad.m", d), v_("terse::amsgrad.v", d),
        v_hat_("terse::amsgrad.v_hat", d) {}
  static std::vector<MemoryTerm> memory(std::size_t d) { return {{"AMSGrad m, v, v_hat", 3 * d * f32}}; }
  void step_piece(const E& space, const Vec& x, const Round<E>& round, const CoordSlice& c) override {
    amsgrad_step(space, slice_of(x, c), slice_of(m_, c), slice_of(v_, c), slice_of(v_hat_, c),
                 slice_of(round.direction(), c), p_);
  }
  void state(std::vector<optim::StateArray<E>>& out) override {
    using K = typename optim::StateArray<E>::Kind;
    out.push_back({"amsgrad.m", K::replicated, {m_}});
    out.push_back({"amsgrad.v", K::replicated, {v_}});
    out.push_back({"amsgrad.v_hat", K::replicated, {v_hat_}});
  }

 private:
  AmsgradParams p_;
  Vec m_, v_, v_hat_;
};

/// AdaGrad on the direction (seed 002 Alg. 1).
template <class E>
class Adagrad final : public PieceRule<E> {
 public:
  using Vec = optim::VecOf<E>;
  Adagrad(const optim::Spec& s, std::size_t d) : PieceRule<E>(s.lr), eps_(s.eps), accum_("terse::adagrad.accum", d) {}
  static std::vector<MemoryTerm> memory(std::size_t d) { return {{"AdaGrad accumulator", d * f32}}; }
  void step_piece(const E& space, const Vec& x, const Round<E>& round, const CoordSlice& c) override {
    adagrad_step(space, slice_of(x, c), slice_of(accum_, c), slice_of(round.direction(), c), this->lr_, eps_);
  }
  void state(std::vector<optim::StateArray<E>>& out) override {
    out.push_back({"adagrad.accum", optim::StateArray<E>::Kind::replicated, {accum_}});
  }

 private:
  double eps_;
  Vec accum_;
};

/// 1-bit Adam (Tang et al. 2021): Adam on the fp32 mean while warming up; then v frozen, the workers compress
/// their momentum b1 m + (1 - b1) g_w and the compressed average comes back as m.
template <class E>
class OnebitAdam final : public UpdateRule<E> {
 public:
  using Vec = optim::VecOf<E>;
  OnebitAdam(const optim::Spec& s, std::size_t d)
      : UpdateRule<E>(s.lr), p_{s.lr, s.beta1, s.beta2, s.nu}, m_("terse::adam.m", d), v_("terse::adam.v", d) {}
  static std::vector<MemoryTerm> memory(std::size_t d) { return {{"Adam m, v", 2 * d * f32}}; }
  void message(const E& space, const Vec& g, const Vec&, bool warm) override {
    if (!warm) momentum_blend(space, m_, g, p_.beta1);
  }
  void step(const E& space, const Vec& x, const Round<E>& round, const StepInputs&, bool warm) override {
    if (warm) adam_step(space, x, m_, v_, round.direction(), p_);
    else frozen_adam_step(space, x, m_, v_, round.direction(), p_.lr, p_.nu);
  }
  void state(std::vector<optim::StateArray<E>>& out) override {
    using K = typename optim::StateArray<E>::Kind;
    out.push_back({"adam.m", K::replicated, {m_}});
    out.push_back({"adam.v", K::replicated, {v_}});
  }

 private:
  AmsgradParams p_;
  Vec m_, v_;
};

/// The sign step on the vote: x <- x - lr_k sign(vote) (a tie moves by 0), with the step sizes of seed 000
/// (adaptive eta*, Prop. 3) and seed 001 (gamma_0 / sqrt(k+1)), and seed 001 Alg. 1's Option 2 (accept_descent:
/// keep x_k unless the step lowers f).
template <class E>
class SignStep final : public PieceRule<E> {
 public:
  using Vec = optim::VecOf<E>;
  SignStep(const optim::Spec& s, std::size_t d, MPI_Comm comm, int W, optim::Objective<E> objective)
      : PieceRule<E>(s.lr), s_(s), comm_(comm), W_(W), objective_(std::move(objective)),
        x_prev_("terse::x_prev", s.accept_descent ? d : 0) {
    MPI_Comm_size(comm_, &P_);
    if (s.accept_descent && !objective_)
      throw std::invalid_argument("terse::optim::Method: accept_descent needs the objective (Method's objective argument)");
  }
  static std::vector<MemoryTerm> memory(const optim::Spec& s, std::size_t d) {
    if (!s.accept_descent) return {};
    return {{"previous model (accept: descent)", d * f32}};
  }
  /// Signum's weight decay (Bernstein et al.'s code): the worker's gradient becomes g + weight_decay x before
  /// its momentum.
  void message(const E& space, const Vec& g, const Vec& x, bool) override {
    if (s_.weight_decay > 0) sgd_step(space, g, x, -s_.weight_decay);  // g <- g - (-wd) x
  }
  void begin_step(const E& space, const Vec& x, const StepInputs& in) override {
    switch (s_.step_size) {
      case StepSize::constant: this->lr_ = s_.lr; break;
      case StepSize::inv_sqrt: this->lr_ = s_.lr / std::sqrt(static_cast<double>(in.k) + 1.0); break;
      case StepSize::adaptive: {
        // eta*_k of seed 000 Prop. 3, each worker's estimate from its batch, averaged over the W workers;
        // capped by lr, and 0 when the estimate is not positive.
        double eta = 0;
        MPI_Allreduce(&in.eta_sum, &eta, 1, MPI_DOUBLE, MPI_SUM, comm_);
        if (P_ > 1) this->bytes_ += sizeof(double);
        this->lr_ = std::clamp(eta / W_, 0.0, s_.lr);
        break;
      }
    }
    if (x_prev_.extent(0) > 0) {
      if (std::isnan(this->f_accepted_))
        throw std::logic_error("terse::optim::Method: accept_descent needs the loss of the starting model first "
                               "(Method::set_accepted_loss)");
      Kokkos::deep_copy(space, x_prev_, x);
    }
  }
  void step_piece(const E& space, const Vec& x, const Round<E>& round, const CoordSlice& c) override {
    const auto words = std::make_pair(c.begin / sign_word_bits, c.begin / sign_word_bits + packed_words(c.size()));
    sign_apply_voted(space, Kokkos::subview(round.vote_words(), words), Kokkos::subview(round.tie_words(), words),
                     slice_of(x, c), static_cast<float>(this->lr_));
  }
  void end_step(const E& space, const Vec& x) override {
    if (x_prev_.extent(0) == 0) return;
    // Seed 001 Alg. 1, Option 2: keep x_k unless the step lowers f.
    const double f_new = objective_(x, this->bytes_);
    if (f_new < this->f_accepted_) this->f_accepted_ = f_new;
    else Kokkos::deep_copy(space, x, x_prev_);
  }

 private:
  optim::Spec s_;
  MPI_Comm comm_;
  int W_, P_ = 1;
  optim::Objective<E> objective_;
  Vec x_prev_;
};

/// The memory terms of the spec's shared-model rule (spec.local() is false).
template <class E>
std::vector<MemoryTerm> update_rule_memory(const optim::Spec& s, std::size_t d) {
  switch (s.rule) {
    case Rule::amsgrad: return Amsgrad<E>::memory(d);
    case Rule::adagrad: return Adagrad<E>::memory(d);
    case Rule::onebit_adam: return OnebitAdam<E>::memory(d);
    case Rule::sign: return SignStep<E>::memory(s, d);
    default: return {};
  }
}

template <class E>
std::unique_ptr<UpdateRule<E>> make_update_rule(const optim::Spec& s, std::size_t d, MPI_Comm comm, int W,
                                                optim::Objective<E> objective) {
  switch (s.rule) {
    case Rule::sgd: return std::make_unique<Sgd<E>>(s);
    case Rule::sign: return std::make_unique<SignStep<E>>(s, d, comm, W, std::move(objective));
    case Rule::amsgrad: return std::make_unique<Amsgrad<E>>(s, d);
    case Rule::adagrad: return std::make_unique<Adagrad<E>>(s, d);
    case Rule::onebit_adam: return std::make_unique<OnebitAdam<E>>(s, d);
    case Rule::local_sgd:
    case Rule::local_adaalter: break;
  }
  throw std::logic_error("terse::make_update_rule: " + std::string(to_string(s.rule)) + " is a local rule");
}

// ---- local rules ----------------------------------------------------------------------------------------

/// A rule that moves every worker's own model, with a periodic average (seed 002 Alg. 2 and 3).
template <class E>
class LocalRule : public RuleScalars {
 public:
  using Vec = optim::VecOf<E>;
  using Mat = optim::MatOf<E>;
  LocalRule(const optim::Spec& s, std::size_t d, int R, MPI_Comm comm, int W, optim::Scratch<E> scratch)
      : RuleScalars(s.lr), s_(s), comm_(comm), R_(R), W_(W), x_("terse::x_local", R, d), scratch_(std::move(scratch)) {}
  virtual ~LocalRule() = default;
  LocalRule(const LocalRule&) = delete;
  LocalRule& operator=(const LocalRule&) = delete;

  /// Local worker l's model (its gradient is taken there).
  Vec model(int l) const { return row_of(x_, l); }
  /// Starts every local model at x0.
  void start(const E& space, const Vec& x0) {
    for (int l = 0; l < R_; ++l) Kokkos::deep_copy(space, row_of(x_, l), x0);
  }
  /// Local worker l's step from its gradient g at iteration k.
  virtual void step(const E& space, int l, const Vec& g, std::int64_t k) = 0;
  /// After every worker's step of iteration k: the average when a sync period ends (collective). Returns
  /// whether it communicated.
  bool sync(const E& space, std::int64_t k) {
    const long t = static_cast<long>(k) + 1;
    if (!adaalter_is_sync_step(t, static_cast<long>(s_.sync_period))) return false;
    // x_{i,t} <- (1/W) sum_k y_{k,t} (seed 002 Alg. 2 and 3), and what else the rule averages.
    bytes_ += mean_over_workers<E>(comm_, space, x_, scratch_.a, scratch_.host, W_);
    for (int l = 0; l < R_; ++l) Kokkos::deep_copy(space, row_of(x_, l), scratch_.a);
    sync_more(space);
    return true;
  }
  /// The workers' average model (collective), into scratch a (returned); adds the bytes handed MPI to `bytes`.
  Vec average(const E& space, std::uint64_t& bytes) const {
    bytes += mean_over_workers<E>(comm_, space, x_, scratch_.a, scratch_.host, W_);
    return scratch_.a;
  }
  virtual void state(std::vector<optim::StateArray<E>>& out) {
    std::vector<Vec> rows;
    for (int l = 0; l < R_; ++l) rows.push_back(row_of(x_, l));
    out.push_back({"worker.x", optim::StateArray<E>::Kind::workers, rows});
  }

 protected:
  /// What else a sync averages (Local AdaAlter's denominators).
  virtual void sync_more(const E& /*space*/) {}

  const optim::Spec s_;
  MPI_Comm comm_;
  int R_, W_;
  Mat x_;
  optim::Scratch<E> scratch_;
};

/// Local SGD (seed 002 Alg. 2): y_w = x_w - lr g_w.
template <class E>
class LocalSgd final : public LocalRule<E> {
 public:
  using Vec = optim::VecOf<E>;
  using LocalRule<E>::LocalRule;
  void step(const E& space, int l, const Vec& g, std::int64_t) override { sgd_step(space, this->model(l), g, this->s_.lr); }
};

/// Local AdaAlter (seed 002 Alg. 3): local steps with the denominators of the last sync plus t' eps^2, the
/// accumulators and the models averaged every sync_period steps, the lr warm-up of Sec. 6.2.
template <class E>
class LocalAdaAlter final : public LocalRule<E> {
 public:
  using Vec = optim::VecOf<E>;
  using Mat = optim::MatOf<E>;
  LocalAdaAlter(const optim::Spec& s, std::size_t d, int R, MPI_Comm comm, int W, optim::Scratch<E> scratch)
      : LocalRule<E>(s, d, R, comm, W, std::move(scratch)), accum_("terse::adaalter.accum", R, d),
        denom_("terse::adaalter.denom", d) {
    const float b0sq = static_cast<float>(s.b0 * s.b0);
    Kokkos::deep_copy(accum_, b0sq);
    Kokkos::deep_copy(denom_, b0sq);
  }
  static std::vector<MemoryTerm> memory(std::size_t d, int R) {
    return {{"Local AdaAlter accumulators and denominators", (static_cast<std::uint64_t>(R) + 1) * d * f32}};
  }
  void step(const E& space, int l, const Vec& g, std::int64_t k) override {
    const long t = static_cast<long>(k) + 1;
    this->lr_ = adaalter_warmup_lr(this->s_.lr, t, static_cast<long>(this->s_.warmup_steps));
    adaalter_local_step(space, this->model(l), denom_, row_of(accum_, l), g, this->lr_, this->s_.eps,
                        adaalter_local_index(t, static_cast<long>(this->s_.sync_period)));
  }
  void state(std::vector<optim::StateArray<E>>& out) override {
    LocalRule<E>::state(out);
    std::vector<Vec> acc;
    for (int l = 0; l < this->R_; ++l) acc.push_back(row_of(accum_, l));
    out.push_back({"worker.adaalter_accum", optim::StateArray<E>::Kind::workers, acc});
    out.push_back({"adaalter.denom", optim::StateArray<E>::Kind::replicated, {denom_}});
  }

 private:
  void sync_more(const E& space) override {
    // adaalter_sync_denominators averages the sum itself (accum <- sum / W, denom <- accum).
    const Vec sum = this->scratch_.b;
    this->bytes_ += mean_over_workers<E>(this->comm_, space, accum_, sum, this->scratch_.host, 0);
    adaalter_sync_denominators(space, denom_, sum, 1.0 / this->W_);
    for (int l = 0; l < this->R_; ++l) Kokkos::deep_copy(space, row_of(accum_, l), sum);
  }

  Mat accum_;
  Vec denom_;
};

template <class E>
std::vector<MemoryTerm> local_rule_memory(const optim::Spec& s, std::size_t d, int R) {
  std::vector<MemoryTerm> t{{"the local workers' models", static_cast<std::uint64_t>(R) * d * f32}};
  if (s.rule == Rule::local_adaalter) {
    const auto more = LocalAdaAlter<E>::memory(d, R);
    t.insert(t.end(), more.begin(), more.end());
  }
  return t;
}

template <class E>
std::unique_ptr<LocalRule<E>> make_local_rule(const optim::Spec& s, std::size_t d, int R, MPI_Comm comm, int W,
                                              optim::Scratch<E> scratch) {
  if (s.rule == Rule::local_sgd) return std::make_unique<LocalSgd<E>>(s, d, R, comm, W, std::move(scratch));
  if (s.rule == Rule::local_adaalter) return std::make_unique<LocalAdaAlter<E>>(s, d, R, comm, W, std::move(scratch));
  throw std::logic_error("terse::make_local_rule: " + std::string(to_string(s.rule)) + " is not a local rule");
}

}  // namespace terse::pieces
