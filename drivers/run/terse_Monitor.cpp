// terse_Monitor.cpp: the history rows' measurements and the progress line (terse_Monitor.hpp).
#include "terse_Monitor.hpp"

#include <terse_Sign.hpp>
#include <terse_Statistics.hpp>

#include <cmath>
#include <limits>

namespace terse::pieces {

std::string format_bits(double bits) {
  char buf[32];
  const double bytes = bits / 8;
  if (bytes < 1e3) std::snprintf(buf, sizeof buf, "%.0f B", bytes);
  else if (bytes < 1e6) std::snprintf(buf, sizeof buf, "%.1f kB", bytes / 1e3);
  else if (bytes < 1e9) std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  else std::snprintf(buf, sizeof buf, "%.2f GB", bytes / 1e9);
  return buf;
}

std::string format_seconds(double s) {
  char buf[32];
  if (!std::isfinite(s)) return "-";
  if (s < 100) std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 6000) std::snprintf(buf, sizeof buf, "%.0fm%02.0fs", std::floor(s / 60), std::fmod(s, 60));
  else std::snprintf(buf, sizeof buf, "%.0fh%02.0fm", std::floor(s / 3600), std::fmod(s / 60, 60));
  return buf;
}

Monitor::Monitor(MPI_Comm comm, Problem<Exec>& problem, const Deck& deck, const WorkerRange& workers)
    : comm_(comm), problem_(problem), deck_(deck), workers_(workers), batch_(batch_of(deck.run)) {
  MPI_Comm_size(comm_, &P_);
  const std::size_t d = problem.dim();
  const bool sp = deck.run.success_probability_samples > 0;
  host_ = Kokkos::View<float*, Kokkos::HostSpace>("terse::host_buffer",
                                                  Kokkos::SpaceAccessibility<Kokkos::HostSpace, Mem>::accessible ? 0 : d);
  avg_ = Vec("terse::monitor.x", d);
  grad_ = Vec("terse::monitor.grad", d);
  // run.success_probability_samples: a stochastic gradient, its packed signs, the true gradient's, the counts.
  sp_g_ = Vec("terse::monitor.success_gradient", sp ? d : 0);
  sp_words_ = Words("terse::monitor.success_signs", sp ? packed_words(d) : 0);
  sp_ref_ = Words("terse::monitor.success_reference", sp ? packed_words(d) : 0);
  sp_count_ = Kokkos::View<std::uint32_t*, Mem>("terse::monitor.success_counts", sp ? d : 0);
}

std::vector<MemoryTerm> Monitor::memory(const Deck& deck, std::size_t d) {
  constexpr bool staged = !Kokkos::SpaceAccessibility<Kokkos::HostSpace, Mem>::accessible;
  const std::uint64_t f = sizeof(float);
  std::vector<MemoryTerm> t{{"monitoring: model and full gradient", 2 * d * f + (staged ? d * f : 0)}};
  if (deck.run.success_probability_samples > 0)
    t.push_back({"success probabilities: a stochastic gradient, its signs and the true gradient's, counts",
                 d * f + 2 * packed_words(d) * sizeof(sign_word_t) + d * sizeof(std::uint32_t)});
  return t;
}

bool Monitor::full_row(std::int64_t iteration) const {
  const std::int64_t every = deck_.run.objective_every;
  // accept: descent compares every step with the objective at x0, which the first row gives it.
  const bool descent = deck_.optimizer.kind == OptimizerKind::majority_vote && deck_.optimizer.accept == AcceptRule::descent;
  return (every > 0 && iteration % every == 0) || (iteration == 0 && descent);
}

bool Monitor::measure(const Exec& space, const Vec& xm, HistoryRow& r) {
  Kokkos::Timer timer;
  const std::size_t d = problem_.dim();
  // An estimate where the row need not be full and the problem offers one (the same answer on every rank).
  std::optional<LossSample> sample;
  if (!full_row(r.iteration))
    sample = problem_.local_loss_sample(xm, static_cast<std::uint64_t>(deck_.run.objective_sample),
                                        static_cast<std::uint64_t>(r.iteration), deck_.run.seed);
  if (sample) {
    double v[2] = {sample->mean, sample->variance};
    MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_SUM, comm_);
    if (P_ > 1) bytes_ += sizeof v;
    r.loss = problem_.finish_loss(v[0] * static_cast<double>(problem_.rows()), xm);
    r.loss_std_error = std::sqrt(v[1]);
    r.loss_rows = static_cast<double>(deck_.run.objective_sample) * workers_.total;
    r.grad_norm_sq = std::numeric_limits<double>::quiet_NaN();
  } else {
    double loss_sum = 0, local = problem_.local_loss_and_grad_sum(xm, grad_);
    MPI_Allreduce(&local, &loss_sum, 1, MPI_DOUBLE, MPI_SUM, comm_);
    if (P_ > 1) bytes_ += sizeof(double);
    r.loss = problem_.finish_loss(loss_sum, xm);
    r.loss_rows = static_cast<double>(problem_.rows());
    r.loss_std_error = 0;
    bytes_ += allreduce_sum(comm_, space, grad_, host_);
    problem_.finish_grad(grad_, xm);
    double gn = 0;
    auto gf = grad_;
    Kokkos::parallel_reduce(
        "terse::monitor.grad_norm_sq", Kokkos::RangePolicy<Exec>(space, 0, d),
        KOKKOS_LAMBDA(std::size_t i, double& acc) { acc += static_cast<double>(gf(i)) * gf(i); }, gn);
    r.grad_norm_sq = gn;
  }
  if (sp_count_.extent(0) > 0) {
    // Seed 001 Sec. 2: rho_i = Prob(sign g~_i = sign g_i) at the monitored model, estimated from S stochastic
    // gradients per worker (random keys beyond any iteration's, so the run's own draws are untouched) against
    // the true gradient's signs; the counts are summed over the ranks.
    const auto S = static_cast<std::uint64_t>(deck_.run.success_probability_samples);
    Kokkos::deep_copy(space, sp_count_, 0u);
    sign_pack(space, grad_, sp_ref_);
    for (int l = 0; l < workers_.count; ++l)
      for (std::uint64_t q = 0; q < S; ++q) {
        const std::uint64_t key = (std::uint64_t(1) << 62) + static_cast<std::uint64_t>(r.iteration) * S + q;
        problem_.stochastic_gradient(xm, workers_.first + l, key, batch_, deck_.run.seed, sp_g_);
        sign_pack(space, sp_g_, sp_words_);
        sign_agreement_accumulate(space, sp_words_, sp_ref_, sp_count_);
      }
    auto count_h = Kokkos::create_mirror_view(sp_count_);  // the same memory on host backends
    Kokkos::deep_copy(space, count_h, sp_count_);
    space.fence();
    if (P_ > 1) {
      MPI_Allreduce(MPI_IN_PLACE, count_h.data(), static_cast<int>(d), MPI_UINT32_T, MPI_SUM, comm_);
      bytes_ += d * sizeof(std::uint32_t);
      Kokkos::deep_copy(space, sp_count_, count_h);
    }
    std::uint32_t lowest = 0;
    double total = 0;
    auto cnt = sp_count_;
    Kokkos::parallel_reduce(
        "terse::monitor.success_min", Kokkos::RangePolicy<Exec>(space, 0, d),
        KOKKOS_LAMBDA(std::size_t i, std::uint32_t& m) { m = cnt(i) < m ? cnt(i) : m; },
        Kokkos::Min<std::uint32_t>(lowest));
    Kokkos::parallel_reduce(
        "terse::monitor.success_sum", Kokkos::RangePolicy<Exec>(space, 0, d),
        KOKKOS_LAMBDA(std::size_t i, double& acc) { acc += cnt(i); }, total);
    const double draws = static_cast<double>(S) * workers_.total;
    r.success_probability_min = lowest / draws;
    r.success_probability_mean = total / (draws * static_cast<double>(d));
  } else {
    r.success_probability_min = r.success_probability_mean = std::numeric_limits<double>::quiet_NaN();
  }
  // The test set with the full objective, and on the last row (the run's result) in any case.
  if (image_classifier(deck_.problem.kind) && (!sample || r.iteration >= deck_.run.iterations)) {
    const auto correct = problem_.local_test_correct(xm);
    double mine = static_cast<double>(correct.value_or(0)), all = 0;
    MPI_Allreduce(&mine, &all, 1, MPI_DOUBLE, MPI_SUM, comm_);
    if (P_ > 1) bytes_ += sizeof(double);
    r.test_accuracy = problem_.test_rows() ? all / static_cast<double>(problem_.test_rows()) : 0.0;
  } else {
    r.test_accuracy = std::numeric_limits<double>::quiet_NaN();
  }
  space.fence();
  if (last_print_ >= 0) {  // rows after start_clock (the row at the start is not part of the rate)
    monitor_seconds_ += timer.seconds();
    ++rows_timed_;
  }
  return !sample;
}

void Monitor::print_header(std::FILE* out) const {
  if (!out) return;
  if (image_classifier(deck_.problem.kind))
    std::fprintf(out, "%10s %13s %9s %12s %9s %11s %9s %9s %10s\n", "iteration", "loss", "+-", "|grad|^2", "test_acc",
                 "lr", "it/s", "ETA", "up/worker");
  else
    std::fprintf(out, "%10s %13s %12s %11s %9s %9s %10s\n", "iteration", "loss", "|grad|^2", "lr", "it/s", "ETA",
                 "up/worker");
  std::fflush(out);
}

void Monitor::print_row(std::FILE* out, const HistoryRow& r, double t, std::int64_t iterations) {
  const std::int64_t iteration = r.iteration;
  // The algorithm's own time since the last line: the wall time less the rows' measurements in between.
  const double algorithm_seconds = (t - std::max(last_print_, 0.0)) - (monitor_seconds_ - last_monitor_);
  const double rate = iteration > last_iteration_ && algorithm_seconds > 0
                          ? (iteration - last_iteration_) / algorithm_seconds
                          : 0;
  std::int64_t rows_left = 0;  // the rows still to come: every log_every updates and the last
  if (iteration < iterations) rows_left = (iterations - 1) / deck_.run.log_every - iteration / deck_.run.log_every + 1;
  const double per_row = rows_timed_ > 0 ? monitor_seconds_ / static_cast<double>(rows_timed_) : 0.0;
  const double eta = rate > 0 ? (iterations - iteration) / rate + static_cast<double>(rows_left) * per_row
                              : std::numeric_limits<double>::infinity();
  last_print_ = t;
  last_monitor_ = monitor_seconds_;
  last_iteration_ = iteration;
  if (!out) return;
  if (image_classifier(deck_.problem.kind)) {
    // "full": the objective over every training row (and |grad f|^2); otherwise the estimate's standard error.
    char se[16];
    if (std::isnan(r.grad_norm_sq))
      std::snprintf(se, sizeof se, "%.1e", r.loss_std_error);
    else
      std::snprintf(se, sizeof se, "full");
    char gn[16];
    if (std::isnan(r.grad_norm_sq)) std::snprintf(gn, sizeof gn, "-");
    else std::snprintf(gn, sizeof gn, "%.4e", r.grad_norm_sq);
    char acc[16];
    if (std::isnan(r.test_accuracy)) std::snprintf(acc, sizeof acc, "-");
    else std::snprintf(acc, sizeof acc, "%.4f", r.test_accuracy);
    std::fprintf(out, "%10lld %13.6e %9s %12s %9s %11.4e %9.1f %9s %10s\n", static_cast<long long>(iteration), r.loss,
                 se, gn, acc, r.lr, rate, format_seconds(eta).c_str(), format_bits(r.bits_up).c_str());
  } else {
    std::fprintf(out, "%10lld %13.6e %12.4e %11.4e %9.1f %9s %10s\n", static_cast<long long>(iteration), r.loss,
                 r.grad_norm_sq, r.lr, rate, format_seconds(eta).c_str(), format_bits(r.bits_up).c_str());
  }
  std::fflush(out);
}

}  // namespace terse::pieces
