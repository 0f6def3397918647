#pragma once
// terse_Rules.hpp: the update rules of `terse run`, each a piece that owns its state (terse_Algorithm.hpp).
//
// A shared-model rule (SGD, the sign step, AMSGrad, AdaGrad, 1-bit Adam) moves the one model every rank holds
// from what the round brings back; the local rules (Local SGD, Local AdaAlter) move each worker's own model and
// average the models every sync_period steps. Each class allocates its arrays in its constructor, reports
// them for the memory estimate (a static memory(), computed before anything is allocated), lists them for
// checkpoints (state()), and counts the bytes it hands MPI itself (the adaptive step's and accept: descent's
// sums; a local rule's averages). make_update_rule() and make_local_rule() are the only places that map a
// Composition's rule to a class.

#include "terse_Algorithm.hpp"
#include "terse_Deck.hpp"
#include "terse_Round.hpp"

#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace terse {

namespace pieces {

/// The scalars a checkpoint holds besides the arrays, by name.
using Scalars = std::vector<std::pair<std::string, double*>>;

/// What a shared-model rule's step reads besides its own state and the round.
struct StepInputs {
  std::int64_t k = 0;     ///< the iteration (0-based)
  bool warm = false;      ///< a warm-up round (1-bit Adam's Adam stage)
  double eta_sum = 0;     ///< lr_schedule: adaptive: this rank's workers' eta* estimates, summed
};

/// The full objective at a model (collective); adds the bytes it hands MPI to its second argument.
using Objective = std::function<double(const Vec&, std::uint64_t&)>;

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
class UpdateRule : public RuleScalars {
 public:
  explicit UpdateRule(double lr) : RuleScalars(lr) {}
  virtual ~UpdateRule() = default;
  UpdateRule(const UpdateRule&) = delete;
  UpdateRule& operator=(const UpdateRule&) = delete;

  /// What a worker compresses, in place on its gradient g at the model x (1-bit Adam: its momentum; Signum
  /// with weight decay: g + weight_decay x). Default: g itself.
  virtual void message(const Exec& /*space*/, const Vec& /*g*/, const Vec& /*x*/, bool /*warm*/) {}
  /// One update of x from the round's aggregate (collective for the rules that reduce a scalar).
  virtual void step(const Exec& space, const Vec& x, const Round& round, const StepInputs& in) = 0;
  /// The arrays it carries across iterations.
  virtual void state(std::vector<StateArray>& /*out*/) {}

  /// A chunked round (Round::chunked()) hands the aggregate back piece by piece; a rule that moves each
  /// coordinate from that coordinate alone takes its step the same way, and the update overlaps the rest of the
  /// exchange: begin_step() before the exchange (the step size and what else needs no aggregate; collective for
  /// the rules that reduce a scalar), step_piece() on each piece as it is back, end_step() after the last one.
  /// The result is step()'s, bitwise. Rules that cannot (by_piece() false) take step() after the exchange.
  virtual bool by_piece() const { return false; }
  virtual void begin_step(const Exec& /*space*/, const Vec& /*x*/, const StepInputs& /*in*/) {}
  virtual void step_piece(const Exec& /*space*/, const Vec& /*x*/, const Round& /*round*/, const CoordSlice& /*c*/) {}
  virtual void end_step(const Exec& /*space*/, const Vec& /*x*/) {}

  /// The loss of the model it accepted (accept: descent); the run sets it at iteration 0.
  void set_accepted_loss(double f) { f_accepted_ = f; }
};

/// A rule whose step is coordinate-wise: step() is begin_step(), step_piece() on [0, d), end_step().
class PieceRule : public UpdateRule {
 public:
  using UpdateRule::UpdateRule;
  bool by_piece() const final { return true; }
  void step(const Exec& space, const Vec& x, const Round& round, const StepInputs& in) final {
    begin_step(space, x, in);
    step_piece(space, x, round, CoordSlice{0, x.extent(0)});
    end_step(space, x);
  }
};

/// The memory terms and the object of the deck's shared-model rule (comp.local() is false).
std::vector<MemoryTerm> update_rule_memory(const Composition& c, const OptimizerConfig& o, std::size_t d);
std::unique_ptr<UpdateRule> make_update_rule(const Composition& c, const OptimizerConfig& o, std::size_t d,
                                             MPI_Comm comm, int W, Objective objective);

/// Buffers a local rule borrows for its averages (the monitor's: the average, a second d-vector, the host
/// staging buffer of device backends); they hold nothing from one call to the next.
struct Scratch {
  Vec a, b;
  Kokkos::View<float*, Kokkos::HostSpace> host;
};

/// A rule that moves every worker's own model, with a periodic average (seed 002 Alg. 2 and 3).
class LocalRule : public RuleScalars {
 public:
  LocalRule(const OptimizerConfig& o, std::size_t d, int R, MPI_Comm comm, int W, Scratch scratch);
  virtual ~LocalRule() = default;
  LocalRule(const LocalRule&) = delete;
  LocalRule& operator=(const LocalRule&) = delete;

  /// Local worker l's model (its gradient is taken there).
  Vec model(int l) const { return row(x_, l); }
  /// Starts every local model at x0.
  void start(const Exec& space, const Vec& x0);
  /// Local worker l's step from its gradient g at iteration k.
  virtual void step(const Exec& space, int l, const Vec& g, std::int64_t k) = 0;
  /// After every worker's step of iteration k: the average when a sync period ends (collective). Returns
  /// whether it communicated.
  bool sync(const Exec& space, std::int64_t k);
  /// The workers' average model (collective), into scratch a (returned); adds the bytes handed MPI to `bytes`.
  Vec average(const Exec& space, std::uint64_t& bytes) const;
  virtual void state(std::vector<StateArray>& out);

 protected:
  /// What else a sync averages (Local AdaAlter's denominators).
  virtual void sync_more(const Exec& /*space*/) {}

  const OptimizerConfig o_;
  MPI_Comm comm_;
  int R_, W_;
  Mat x_;
  Scratch scratch_;
};

std::vector<MemoryTerm> local_rule_memory(const Composition& c, std::size_t d, int R);
std::unique_ptr<LocalRule> make_local_rule(const Composition& c, const OptimizerConfig& o, std::size_t d, int R,
                                           MPI_Comm comm, int W, Scratch scratch);

}  // namespace pieces
}  // namespace terse
