// Every algorithm of `terse run` against a scalar reference written from its paper's algorithm box.
//
// Each case is a deck on the planted logistic problem (300 features, 240 rows; W = 4 workers, each its block
// of 60 rows), followed for 20 iterations through `terse run` at the job's rank count (1, 2 or 4: W = 4 as
// (P, R) = (1, 4), (2, 2), (4, 1)) and through a double-precision loop over workers and coordinates that shares
// no code with terse's algorithms: it takes from terse only the problem (the workers' stochastic gradients at
// the reference's own model, rounded to fp32 as terse holds it, the objective, x0) and, for the stochastic
// sign, the counter-based generator's uniforms (the compressor's random input, like the data). At every
// history row (log_every 1) the run must match the reference:
//   * the loss within 2e-6 relative, the model in every coordinate within 1e-5 (+ 1e-5 relative), the lr
//     within 1e-6 relative (fp32 arithmetic against double);
//   * bits_up and bits_down exactly (the payload of docs/hdf5.md);
//   * bytes_sent exactly: the bytes the exchanges handed MPI on all ranks together, as docs/hdf5.md documents
//     them (payload in 64-bit words, sharded over the ranks' slices, plus the scales, tie masks, top-k counts
//     and scalar sums), with the top-k pairs that cross ranks counted from the reference's own selections.
// The comparison must have power: each case lists plausible wrong implementations (the vote replaced by the
// mean of signs, a tie that moves, error-feedback memory not updated, a Markov estimate not carried, AMSGrad
// without its max, Local AdaAlter without its placeholder, its average or its lazy denominators, ...); the
// reference run with that mistake must be rejected by the same comparison.
// Values within fp32 rounding of a decision (a sign, a tie, a top-k boundary, an accept test, a stochastic
// sign's threshold) would make the check moot: the reference counts them and the case must have none.
#include "terse_MpiTestSupport.hpp"

#include <terse_Compose.hpp>
#include <terse_Random.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <sstream>

namespace {

using namespace terse;
using namespace terse::test_support;
using Exec = Kokkos::DefaultExecutionSpace;
using Vd = std::vector<double>;

enum class Mistake {
  none,
  sum_not_mean,              // the server sums the W messages instead of averaging them
  vote_is_mean_of_signs,     // x <- x - lr (1/W) sum_w sign g_w
  vote_of_worker_0,          // x <- x - lr sign g_0
  tie_moves,                 // a tie of an even W moves the coordinate by +lr (sign 0 = +1)
  sample_vote_is_mean_sign,  // vote: samples sends sign(mean of the batch) instead of the batch's vote
  lr_not_adapted,            // lr_schedule: adaptive ignored
  lr_not_decayed,            // lr_schedule: inv_sqrt ignored
  always_accept,             // accept: descent ignored
  stochastic_sign_is_sign,   // the stochastic sign replaced by ||g||_2 sign g
  memory_not_updated,        // error feedback: e stays 0 (naive compression)
  uncompressed,              // the compressor skipped (the mean of the gradients)
  amsgrad_max_dropped,       // v_hat = v
  adagrad_old_accumulator,   // the step uses B_{t-1}^2 (AdaGrad's accumulator before this gradient)
  models_not_averaged,       // local methods never average the models
  placeholder_dropped,       // Local AdaAlter: eps^2 instead of t' eps^2
  denominators_not_averaged, // Local AdaAlter: each worker keeps its own accumulator as its denominator
  denominators_not_lazy,     // Local AdaAlter: the step uses the current accumulator (local AdaGrad)
  warmup_ignored,            // Local AdaAlter's lr warm-up / 1-bit Adam's Adam stage skipped
  estimate_not_carried,      // Markov: the workers' estimates stay at their start (g^_w never updated)
  exact_start_ignored,       // estimate_start: gradient treated as zero
  server_feedback_dropped,   // 1-bit Adam: the server's error feedback stays 0
  momentum_not_carried,      // Signum: each round's momentum starts from 0 (m_w = (1 - b) g_w)
  weight_decay_ignored,      // Signum: the gradient without weight_decay x
  rand_k_unscaled,           // rand-k values sent as x_i instead of (d / k) x_i
  rand_k_one_draw,           // every worker draws the same rand-k coordinates (worker 0's)
  qsgd_nearest_level,        // QSGD / TernGrad: the level rounded to the nearest instead of stochastically
  qsgd_norm_dropped,         // QSGD / TernGrad: the message decoded without its bucket's norm (sign * l / s)
  qsgd_one_bucket,           // QSGD / TernGrad: one norm for the whole vector, bucket ignored
  terngrad_l2_scale,         // TernGrad scaled by the 2-norm (QSGD s = 1) instead of max |g_i|
};

const char* name_of(Mistake m) {
  switch (m) {
    case Mistake::none: return "none";
    case Mistake::sum_not_mean: return "the sum instead of the mean";
    case Mistake::vote_is_mean_of_signs: return "the vote replaced by the mean of signs";
    case Mistake::vote_of_worker_0: return "the vote replaced by worker 0's signs";
    case Mistake::tie_moves: return "a tie moves the coordinate";
    case Mistake::sample_vote_is_mean_sign: return "the batch's vote replaced by the sign of its mean";
    case Mistake::lr_not_adapted: return "the adaptive step ignored";
    case Mistake::lr_not_decayed: return "the 1/sqrt(k+1) decay ignored";
    case Mistake::always_accept: return "accept: descent ignored";
    case Mistake::stochastic_sign_is_sign: return "the stochastic sign replaced by the scaled deterministic sign";
    case Mistake::memory_not_updated: return "the error-feedback memory not updated";
    case Mistake::uncompressed: return "the compressor skipped";
    case Mistake::amsgrad_max_dropped: return "AMSGrad's max dropped";
    case Mistake::adagrad_old_accumulator: return "AdaGrad's step before its accumulation";
    case Mistake::models_not_averaged: return "the models not averaged";
    case Mistake::placeholder_dropped: return "AdaAlter's t' eps^2 placeholder dropped";
    case Mistake::denominators_not_averaged: return "AdaAlter's denominators not averaged";
    case Mistake::denominators_not_lazy: return "AdaAlter's denominators not lazy";
    case Mistake::warmup_ignored: return "the warm-up ignored";
    case Mistake::estimate_not_carried: return "the Markov estimates not carried";
    case Mistake::exact_start_ignored: return "the exact start ignored";
    case Mistake::server_feedback_dropped: return "the server's error feedback dropped";
    case Mistake::momentum_not_carried: return "the workers' momentum not carried";
    case Mistake::weight_decay_ignored: return "the weight decay ignored";
    case Mistake::rand_k_unscaled: return "rand-k without its d / k";
    case Mistake::rand_k_one_draw: return "one rand-k draw for every worker";
    case Mistake::qsgd_nearest_level: return "QSGD's level rounded to the nearest";
    case Mistake::qsgd_norm_dropped: return "QSGD's norm dropped";
    case Mistake::qsgd_one_bucket: return "QSGD's buckets ignored";
    case Mistake::terngrad_l2_scale: return "TernGrad scaled by the 2-norm";
  }
  return "?";
}

struct Case {
  std::string optimizer;       ///< the optimizer section's keys, "kind: sgd, lr: 0.1"
  std::string batch = "full";  ///< run.batch
  std::vector<Mistake> mistakes;
};

const std::vector<Case>& cases() {
  using M = Mistake;
  static const std::vector<Case> c = {
      {"kind: sgd, lr: 0.5", "full", {M::sum_not_mean}},
      {"kind: majority_vote, lr: 0.01", "full", {M::vote_is_mean_of_signs, M::vote_of_worker_0, M::tie_moves}},
      {"kind: majority_vote, lr: 0.02, lr_schedule: inv_sqrt", "full", {M::lr_not_decayed, M::vote_is_mean_of_signs}},
      {"kind: majority_vote, lr: 0.05, lr_schedule: adaptive, lipschitz: 300", "8", {M::lr_not_adapted, M::tie_moves}},
      {"kind: majority_vote, lr: 0.05, accept: descent", "full", {M::always_accept}},
      {"kind: majority_vote, lr: 0.05, vote: samples", "8", {M::sample_vote_is_mean_sign, M::vote_is_mean_of_signs}},
      {"kind: stochastic_sign, lr: 0.02", "full", {M::stochastic_sign_is_sign}},
      {"kind: ef_signsgd, lr: 0.5", "full", {M::memory_not_updated}},
      {"kind: amsgrad, lr: 0.01, beta2: 0.9", "full", {M::amsgrad_max_dropped}},
      {"kind: amsgrad_naive, lr: 0.01, beta2: 0.9", "full", {M::uncompressed, M::amsgrad_max_dropped}},
      {"kind: amsgrad_ef, lr: 0.01, beta2: 0.9", "full", {M::memory_not_updated}},
      {"kind: adagrad, lr: 0.1, eps: 0.01", "full", {M::adagrad_old_accumulator}},
      {"kind: local_sgd, lr: 0.5, sync_period: 4", "8", {M::models_not_averaged}},
      {"kind: local_adaalter, lr: 0.1, sync_period: 4, eps: 0.1, b0: 0.1, warmup_steps: 6", "8",
       {M::placeholder_dropped, M::denominators_not_averaged, M::denominators_not_lazy, M::warmup_ignored,
        M::models_not_averaged}},
      {"kind: onebit_adam, lr: 0.01, beta2: 0.9, warmup_steps: 5", "full",
       {M::memory_not_updated, M::server_feedback_dropped, M::warmup_ignored}},
      {"kind: cd_adam, lr: 0.01, beta2: 0.9", "full", {M::estimate_not_carried, M::amsgrad_max_dropped}},
      {"kind: cd_adam, lr: 0.01, beta2: 0.9, broadcast: mean, estimate_start: gradient", "full",
       {M::estimate_not_carried, M::exact_start_ignored}},
      {"kind: cd_adam, lr: 0.01, beta2: 0.9, compressor: top_k, k_ratio: 0.05, estimate_start: gradient", "full",
       {M::estimate_not_carried}},
      {"kind: ef21, lr: 0.5, k_ratio: 0.05", "full", {M::estimate_not_carried}},
      {"kind: ef21, lr: 0.5, k_ratio: 0.05, broadcast: mean, estimate_start: gradient", "full",
       {M::estimate_not_carried, M::exact_start_ignored}},
      {"kind: ef21, lr: 0.5, compressor: scaled_sign, broadcast: mean", "8", {M::estimate_not_carried}},
      {"kind: ef21, lr: 0.5, compressor: rand_k, k_ratio: 0.6", "full",
       {M::estimate_not_carried, M::rand_k_unscaled, M::rand_k_one_draw}},
      {"kind: ef21, lr: 0.5, compressor: rand_k, k_ratio: 0.6, broadcast: mean, estimate_start: gradient", "8",
       {M::estimate_not_carried, M::rand_k_unscaled}},
      {"kind: cd_adam, lr: 0.01, beta2: 0.9, compressor: rand_k, k_ratio: 0.6", "full",
       {M::estimate_not_carried, M::rand_k_one_draw}},
      {"kind: signum, lr: 0.01, momentum: 0.9", "8", {M::momentum_not_carried, M::vote_is_mean_of_signs, M::tie_moves}},
      {"kind: signum, lr: 0.01, momentum: 0.5, weight_decay: 0.5", "full",
       {M::weight_decay_ignored, M::momentum_not_carried}},
      {"kind: qsgd, lr: 0.5, levels: 4, bucket: 100", "full",
       {M::qsgd_nearest_level, M::qsgd_norm_dropped, M::qsgd_one_bucket, M::uncompressed}},
      {"kind: qsgd, lr: 0.2, levels: 1", "8", {M::qsgd_nearest_level, M::qsgd_norm_dropped}},
      {"kind: ef_qsgd, lr: 0.5, levels: 2, bucket: 64", "full",
       {M::memory_not_updated, M::qsgd_nearest_level, M::qsgd_norm_dropped}},
      {"kind: terngrad, lr: 0.5, bucket: 100", "full",
       {M::terngrad_l2_scale, M::qsgd_nearest_level, M::qsgd_norm_dropped, M::qsgd_one_bucket}},
  };
  return c;
}

constexpr int kWorkers = 4, kIterations = 20;

Deck deck_of(const Case& c, int P) {
  std::ostringstream y;
  y << "problem: {kind: logistic, data: '" << files().svm_wide << "'}\n";
  y << "optimizer: {" << c.optimizer << "}\n";
  y << "run: {iterations: " << kIterations << ", batch: " << c.batch << ", seed: 7, log_every: 1}\n";
  y << "workers: {per_rank: " << kWorkers / P << "}\n";
  return parse_deck_string(y.str(), "test:reference {" + c.optimizer + "}");
}

/// What a reference predicts for every row (iterations 0 .. T).
struct Trajectory {
  Vd loss, lr, bits_up, bits_down, bytes;
  std::vector<Vd> x;
  int ambiguous = 0;  ///< decisions within fp32 rounding of their threshold
  std::string ambiguity;
};

double sgn(double v) { return v >= 0 ? 1.0 : -1.0; }  // the project's sign: 0 has sign +1 (README, Conventions)

/// The scalar reference of the deck's algorithm with W workers whose run uses P ranks (for the bytes), with
/// `mistake` made on purpose.
Trajectory reference(const Deck& deck, int W, int P, Mistake mistake) {
  using K = OptimizerKind;
  const OptimizerConfig& o = deck.optimizer;
  auto problem = make_problem<Exec>(deck.problem, workers_of_rank(0, 1, W));  // every worker on this rank
  const int d = static_cast<int>(problem->dim()), R = W / P, T = static_cast<int>(deck.run.iterations);
  const double dd = d;
  const Batch batch = batch_of(deck.run);
  Problem<Exec>::vector_type xd("x", d), gd("g", d);
  auto xh = Kokkos::create_mirror_view(xd);
  auto gh = Kokkos::create_mirror_view(gd);
  problem->initial_model(xd, deck.run.seed);
  Kokkos::deep_copy(xh, xd);
  Vd x(d);
  for (int i = 0; i < d; ++i) x[i] = xh(i);

  Trajectory out;
  const auto ambiguous = [&](bool close, const char* what, int t) {
    if (!close) return;
    if (out.ambiguous++ == 0) out.ambiguity = std::string(what) + " at iteration " + std::to_string(t);
  };
  const auto to_device = [&](const Vd& y) {
    for (int i = 0; i < d; ++i) xh(i) = static_cast<float>(y[i]);
    Kokkos::deep_copy(xd, xh);
  };
  const auto loss_at = [&](const Vd& y) {
    to_device(y);
    return problem->loss(xd);
  };
  const auto gradient = [&](const Vd& y, int w, int t) {  // worker w's stochastic gradient at y, iteration t
    to_device(y);
    problem->stochastic_gradient(xd, w, static_cast<std::uint64_t>(t), batch, deck.run.seed, gd);
    Kokkos::deep_copy(gh, gd);
    Vd g(d);
    for (int i = 0; i < d; ++i) g[i] = gh(i);
    return g;
  };
  const auto samples = [&](const Vd& y, int w, int t) {  // the per-sample gradients of the same batch
    to_device(y);
    const auto rows = problem->batch_rows(w, batch);
    Problem<Exec>::matrix_type G("G", rows, d);
    problem->per_sample_gradients(xd, w, static_cast<std::uint64_t>(t), batch, deck.run.seed, G);
    auto Gh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), G);
    std::vector<Vd> s(rows, Vd(d));
    for (std::int64_t b = 0; b < rows; ++b)
      for (int i = 0; i < d; ++i) s[b][i] = Gh(b, i);
    return s;
  };
  const auto max_abs = [](const Vd& v) {
    double m = 0;
    for (double q : v) m = std::max(m, std::fabs(q));
    return m;
  };
  // C(p) = (||p||_1 / d) sign p (seed 004 Sec. 4), checking that no sign is within rounding of 0.
  const auto scaled_sign = [&](const Vd& p, int t) {
    double l1 = 0;
    for (double q : p) l1 += std::fabs(q);
    const double top = max_abs(p);
    Vd c(d);
    for (int i = 0; i < d; ++i) {
      ambiguous(p[i] != 0 && std::fabs(p[i]) < 1e-6 * top, "a scaled sign's input", t);
      c[i] = sgn(p[i]) * l1 / dd;
    }
    return c;
  };
  // top-k: the k entries of largest |p|, ties to the lower index; `chosen` gets their indices.
  const int k = static_cast<int>(std::min<double>(d, std::max(1.0, std::round(o.k_ratio * dd))));
  const auto top_k = [&](const Vd& p, int t, std::vector<int>* chosen) {
    std::vector<int> order(d);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return std::fabs(p[a]) > std::fabs(p[b]); });
    ambiguous(k < d && std::fabs(p[order[k - 1]]) - std::fabs(p[order[k]]) < 1e-5 * max_abs(p), "a top-k boundary", t);
    Vd c(d, 0.0);
    for (int j = 0; j < k; ++j) c[order[j]] = p[order[j]];
    if (chosen) chosen->assign(order.begin(), order.begin() + k);
    return c;
  };
  // rand-k (unbiased: (d / k) x_i on k coordinates drawn without replacement): coordinate i's key is the top 24
  // bits of lane i % 4 of the generator's draw (t, drawer, i / 4) plus one, over 2^24; the k largest keys win,
  // ties to the lower index. Workers draw with their index, the server with 2^32 - 1.
  const CounterRng rand_rng{deck.run.seed, static_cast<std::uint32_t>(RandomStream::rand_k)};
  const auto rand_k = [&](const Vd& p, int t, std::uint32_t drawer, std::vector<int>* chosen) {
    if (mistake == Mistake::rand_k_one_draw && drawer != 0xFFFFFFFFu) drawer = 0;
    Vd key(d);
    for (int i = 0; i < d; ++i)
      key[i] = (static_cast<double>(rand_rng.draw(static_cast<std::uint64_t>(t), drawer, i / 4).v[i % 4] >> 8) + 1) /
               16777216.0;
    std::vector<int> order(d);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return key[a] > key[b]; });
    const double scale = mistake == Mistake::rand_k_unscaled ? 1.0 : static_cast<float>(dd / k);
    Vd c(d, 0.0);
    for (int j = 0; j < k; ++j) c[order[j]] = scale * p[order[j]];
    if (chosen) chosen->assign(order.begin(), order.begin() + k);
    return c;
  };
  const bool markov_kind = o.kind == K::cd_adam || o.kind == K::ef21;
  const bool topk_wire = markov_kind && o.compressor == Compressor::top_k;
  const bool randk_wire = markov_kind && o.compressor == Compressor::rand_k;
  const bool sparse_wire = topk_wire || randk_wire;
  const auto compress = [&](const Vd& p, int t, std::vector<int>* chosen, std::uint32_t drawer) {
    if (mistake == Mistake::uncompressed) return p;
    if (randk_wire) return rand_k(p, t, drawer, chosen);
    return topk_wire ? top_k(p, t, chosen) : scaled_sign(p, t);
  };

  // ---- bytes handed to MPI per round, all ranks together (docs/hdf5.md, "bytes_sent"); 0 on one rank ----
  const double nw = std::ceil(dd / 64), word = 8, f32 = 4, f64 = 8;
  // Rank r serves the words [floor(r nw / P), floor((r+1) nw / P)), i.e. the coordinates from 64 floor(r nw / P).
  const auto first_coord = [&](int r) {
    return std::min(d, 64 * static_cast<int>(std::floor(static_cast<double>(r) * nw / P)));
  };
  const auto server_of = [&](int i) {
    int r = 0;
    while (r + 1 < P && i >= first_coord(r + 1)) ++r;
    return r;
  };
  const bool multi = P > 1;
  const double allreduce_fp32 = multi ? P * f32 * dd : 0;   // every rank hands MPI its d values
  const double scalar_sum = multi ? P * f64 : 0;            // every rank hands MPI one double
  const double sign_uplink = (P - 1) * R * word * nw;       // each worker's words of the other ranks' slices
  const double scales_uplink = (P - 1) * W * f32;           // every worker's scale to every other rank
  const double words_down = (P - 1) * word * nw;            // each rank's slice of words to the other ranks
  const double values_down = (P - 1) * f32 * dd;            // each rank's slice of values to the other ranks
  const double topk_counts = multi ? P * (P - 1) * R * 4.0 : 0;  // the pair counts per destination and worker
  double candidates = 0;                                    // top-k downlink: each slice's min(k, size) pairs
  for (int r = 0; r < P; ++r) candidates += std::min(k, (r + 1 < P ? first_coord(r + 1) : d) - first_coord(r));
  const double topk_down = (P - 1) * word * candidates;
  const double randk_down = (P - 1) * f32 * k;  // the server's rand-k values: each rank's share to the others
  const auto topk_uplink = [&](const std::vector<std::vector<int>>& chosen) {  // pairs that leave their rank
    double pairs = 0;
    for (int w = 0; w < W; ++w)
      for (int i : chosen[w]) pairs += server_of(i) != w / R;
    return word * pairs + topk_counts;
  };

  // QSGD (Alistarh et al. 2017 Sec. 3.1) and TernGrad (Wen et al. 2017): per bucket of B coordinates the scale
  // ||p_b||_2 (TernGrad: max |p_i|, s = 1), rounded to fp32 as it travels; l = floor(s |p_i| / scale), the level
  // l + 1 with probability s |p_i| / scale - l (the uniform is lane i % 4 of the generator's draw (t, w, i / 4) of
  // the qsgd stream: the compressor's random input), and c_i = sign(p_i) scale l_i / s.
  const int qsgd_s = o.kind == K::terngrad ? 1 : static_cast<int>(o.levels);
  const int qsgd_B = std::min<int>(d, static_cast<int>(o.bucket));
  const CounterRng qsgd_rng{deck.run.seed, static_cast<std::uint32_t>(RandomStream::qsgd)};
  const auto quantize = [&](const Vd& p, int t, int w) {
    const int B = mistake == Mistake::qsgd_one_bucket ? d : qsgd_B;
    const bool max_scale = o.kind == K::terngrad && mistake != Mistake::terngrad_l2_scale;
    Vd c(d);
    for (int b0 = 0; b0 < d; b0 += B) {
      const int b1 = std::min(d, b0 + B);
      double acc = 0;
      for (int i = b0; i < b1; ++i) acc = max_scale ? std::max(acc, std::fabs(p[i])) : acc + p[i] * p[i];
      const double scale = static_cast<float>(max_scale ? acc : std::sqrt(acc));
      for (int i = b0; i < b1; ++i) {
        const double r = scale > 0 ? qsgd_s * std::fabs(p[i]) / scale : 0, l = std::floor(r);
        double level = l;
        if (l >= qsgd_s) {
          level = qsgd_s;
        } else if (mistake == Mistake::qsgd_nearest_level) {
          level = std::round(r);
        } else {
          const double u = qsgd_rng.uniform_lane(static_cast<std::uint64_t>(t), static_cast<std::uint32_t>(w), i);
          ambiguous(std::fabs(u - (r - l)) < 1e-6, "a QSGD level's threshold", t);
          level = l + (u < r - l ? 1 : 0);
        }
        c[i] = sgn(p[i]) * (mistake == Mistake::qsgd_norm_dropped ? 1.0 : scale) * level / qsgd_s;
      }
    }
    return c;
  };
  // QSGD uplink: each worker sends every other rank its 1 + q planes' words of that rank's slice and the norms of
  // the buckets that meet the slice (a bucket across two slices goes to both); the mean comes back as values.
  const int qsgd_q = [&] {
    int q = 0;
    while ((1 << q) < qsgd_s + 1) ++q;
    return q;
  }();
  double buckets_met = 0;  // sum over the slices of the buckets that meet them
  for (int r = 0; r < P; ++r) {
    const int lo = first_coord(r), hi = r + 1 < P ? first_coord(r + 1) : d;
    if (hi > lo) buckets_met += (hi + qsgd_B - 1) / qsgd_B - lo / qsgd_B;
  }
  const double qsgd_uplink = (P - 1) * R * (word * (1 + qsgd_q) * nw + f32 * buckets_met);

  // ---- state ----
  Vd m(d, 0.0), v(d, 0.0), vh(d, 0.0), acc(d, 0.0), es(d, 0.0), g_hat(d, 0.0), g_tilde(d, 0.0);
  std::vector<Vd> e(W, Vd(d, 0.0)), est(W, Vd(d, 0.0)), xs(W, x);
  std::vector<Vd> acc_w(W, Vd(d, o.b0 * o.b0)), denom_w(W, Vd(d, o.b0 * o.b0));
  const bool local = o.kind == K::local_sgd || o.kind == K::local_adaalter;
  double lr_now = o.lr, bits_up = 0, bits_down = 0, bytes = 0;
  const auto monitored = [&]() {
    if (!local) return x;
    Vd avg(d, 0.0);
    for (int w = 0; w < W; ++w)
      for (int i = 0; i < d; ++i) avg[i] += xs[w][i] / W;
    return avg;
  };
  const auto row = [&]() {
    const Vd xm = monitored();
    out.loss.push_back(loss_at(xm));
    out.x.push_back(xm);
    out.lr.push_back(lr_now);
    out.bits_up.push_back(bits_up);
    out.bits_down.push_back(bits_down);
    out.bytes.push_back(bytes);
  };
  const auto amsgrad = [&](const Vd& dir) {  // seed 004 Alg. 1 lines 13-16: no bias correction, nu in the root
    for (int i = 0; i < d; ++i) {
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * dir[i];
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * dir[i] * dir[i];
      vh[i] = mistake == Mistake::amsgrad_max_dropped ? v[i] : std::max(vh[i], v[i]);
      x[i] -= o.lr * m[i] / std::sqrt(vh[i] + o.nu);
    }
  };
  const auto mean = [&](const std::vector<Vd>& vs) {
    Vd mu(d, 0.0);
    for (const auto& q : vs)
      for (int i = 0; i < d; ++i) mu[i] += q[i] / static_cast<double>(vs.size());
    if (mistake == Mistake::sum_not_mean)
      for (double& q : mu) q *= static_cast<double>(vs.size());
    return mu;
  };
  double f_accepted = 0;

  row();
  f_accepted = out.loss.back();
  for (int t = 0; t < T; ++t) {
    std::vector<Vd> g(W);
    for (int w = 0; w < W; ++w) g[w] = gradient(local ? xs[w] : x, w, t);
    switch (o.kind) {
      case K::sgd: {  // x <- x - lr (1/W) sum_w g_w, an fp32 allreduce
        const Vd dir = mean(g);
        for (int i = 0; i < d; ++i) x[i] -= o.lr * dir[i];
        bits_up += 32 * dd, bits_down += 32 * dd, bytes += allreduce_fp32;
        break;
      }
      case K::majority_vote: {
        // Seed 000 Alg. 1 (vote: workers): each worker sends sign g_w; Alg. 2 (vote: samples): each worker
        // sends the majority of its batch's per-sample signs (a tie sends +1). The server's majority of the W
        // signs moves each coordinate by lr against it; a tie of an even W moves it by 0 (seed 001 Sec. 4.3).
        std::vector<Vd> s(W, Vd(d));
        double eta_sum = 0;
        for (int w = 0; w < W; ++w) {
          const bool per_sample = o.vote == VoteMode::samples || o.lr_schedule == LrSchedule::adaptive;
          std::vector<Vd> G;
          if (per_sample) G = samples(x, w, t);
          for (int i = 0; i < d; ++i) {
            if (o.vote == VoteMode::samples && mistake != Mistake::sample_vote_is_mean_sign) {
              int plus = 0;
              for (const auto& row_g : G) {
                plus += row_g[i] >= 0;
                ambiguous(row_g[i] != 0 && std::fabs(row_g[i]) < 1e-6, "a per-sample sign", t);
              }
              s[w][i] = 2 * plus >= static_cast<int>(G.size()) ? 1.0 : -1.0;
            } else {
              ambiguous(g[w][i] != 0 && std::fabs(g[w][i]) < 1e-6 * max_abs(g[w]), "a worker's sign", t);
              s[w][i] = sgn(g[w][i]);
            }
          }
          if (o.lr_schedule == LrSchedule::adaptive) {
            // Seed 000 Prop. 3, eq. (1), estimated as Sec. II-B says: g^ the batch mean, q_i the fraction of
            // per-sample signs that differ from sign g^_i; eta*_w = sum_i |g^_i| (1 - 2 q_i) / L.
            const double rows = static_cast<double>(G.size());
            double eta = 0;
            for (int i = 0; i < d; ++i) {
              double mu = 0;
              for (const auto& row_g : G) mu += row_g[i] / rows;
              double wrong = 0;
              for (const auto& row_g : G) wrong += sgn(row_g[i]) != sgn(mu);
              ambiguous(mu != 0 && std::fabs(mu) < 1e-7, "a batch mean's sign", t);
              eta += std::fabs(mu) * (1 - 2 * wrong / rows);
            }
            eta_sum += eta / *o.lipschitz;
          }
        }
        switch (o.lr_schedule) {
          case LrSchedule::constant: lr_now = o.lr; break;
          case LrSchedule::inv_sqrt: lr_now = mistake == Mistake::lr_not_decayed ? o.lr : o.lr / std::sqrt(t + 1.0); break;
          case LrSchedule::adaptive: {
            // The workers' estimates averaged, capped by lr, 0 when not positive.
            lr_now = mistake == Mistake::lr_not_adapted ? o.lr : std::clamp(eta_sum / W, 0.0, o.lr);
            ambiguous(std::fabs(eta_sum / W - o.lr) < 1e-6 * o.lr, "the adaptive step's cap", t);
            bytes += scalar_sum;
            break;
          }
        }
        const Vd before = x;
        for (int i = 0; i < d; ++i) {
          double votes = 0;
          for (int w = 0; w < W; ++w) votes += s[w][i];
          double step = votes > 0 ? 1.0 : votes < 0 ? -1.0 : 0.0;
          if (mistake == Mistake::vote_is_mean_of_signs) step = votes / W;
          if (mistake == Mistake::vote_of_worker_0) step = s[0][i];
          if (mistake == Mistake::tie_moves && votes == 0) step = 1.0;
          x[i] -= lr_now * step;
        }
        if (o.accept == AcceptRule::descent) {
          // Seed 001 Alg. 1, Option 2: keep x_k unless f(x_{k+1}) < f(x_k).
          const double f_new = loss_at(x);
          ambiguous(std::fabs(f_new - f_accepted) < 1e-6 * std::fabs(f_accepted), "the accept test", t);
          if (f_new < f_accepted || mistake == Mistake::always_accept) f_accepted = f_new;
          else x = before;
          bytes += scalar_sum;
        }
        const bool ties = W % 2 == 0;
        bits_up += dd, bits_down += ties ? 2 * dd : dd;
        const bool direct = multi && P * R < R + 1 + (ties ? 1 : 0);
        bytes += direct ? P * (P - 1) * R * word * nw : sign_uplink + words_down * (ties ? 2 : 1);
        break;
      }
      case K::signum: {
        // Signum (Bernstein et al. 2019, the signSGD-with-majority-vote code): worker w keeps its momentum
        // m_w <- b m_w + (1 - b) (g_w + weight_decay x) and sends sign m_w; the server's majority (a tie: 0)
        // moves every coordinate by lr against it.
        std::vector<Vd> s(W, Vd(d));
        for (int w = 0; w < W; ++w) {
          for (int i = 0; i < d; ++i) {
            const double decayed = g[w][i] + (mistake == Mistake::weight_decay_ignored ? 0.0 : o.weight_decay * x[i]);
            const double before = mistake == Mistake::momentum_not_carried ? 0.0 : est[w][i];
            est[w][i] = o.momentum * before + (1 - o.momentum) * decayed;
          }
          for (int i = 0; i < d; ++i) {
            ambiguous(est[w][i] != 0 && std::fabs(est[w][i]) < 1e-6 * max_abs(est[w]), "a momentum's sign", t);
            s[w][i] = sgn(est[w][i]);
          }
        }
        for (int i = 0; i < d; ++i) {
          double votes = 0;
          for (int w = 0; w < W; ++w) votes += s[w][i];
          double step = votes > 0 ? 1.0 : votes < 0 ? -1.0 : 0.0;
          if (mistake == Mistake::vote_is_mean_of_signs) step = votes / W;
          if (mistake == Mistake::tie_moves && votes == 0) step = 1.0;
          x[i] -= o.lr * step;
        }
        const bool ties = W % 2 == 0;
        bits_up += dd, bits_down += ties ? 2 * dd : dd;
        const bool direct = multi && P * R < R + 1 + (ties ? 1 : 0);
        bytes += direct ? P * (P - 1) * R * word * nw : sign_uplink + words_down * (ties ? 2 : 1);
        break;
      }
      case K::stochastic_sign: {
        // Seed 001 App. E: C(g) = ||g||_2 sign~(g), P[sign~(g)_i = +1] = 1/2 + g_i / (2 ||g||_2); the server
        // averages the W messages and sends the mean back as fp32 values; SGD on it.
        const CounterRng rng{deck.run.seed, static_cast<std::uint32_t>(RandomStream::stochastic_sign)};
        std::vector<Vd> c(W, Vd(d));
        for (int w = 0; w < W; ++w) {
          double sq = 0;
          for (double q : g[w]) sq += q * q;
          const double norm = std::sqrt(sq), scale = static_cast<float>(norm);
          for (int i = 0; i < d; ++i) {
            const double u = rng.uniform_lane(static_cast<std::uint64_t>(t), static_cast<std::uint32_t>(w), i);
            const double p_plus = 0.5 + g[w][i] / (2 * norm);
            ambiguous(std::fabs(u - p_plus) < 1e-6, "a stochastic sign's threshold", t);
            const bool plus = mistake == Mistake::stochastic_sign_is_sign ? g[w][i] >= 0 : norm == 0 || u < p_plus;
            c[w][i] = (plus ? 1.0 : -1.0) * scale;
          }
        }
        const Vd dir = mean(c);
        for (int i = 0; i < d; ++i) x[i] -= o.lr * dir[i];
        bits_up += dd + 32, bits_down += 32 * dd, bytes += sign_uplink + scales_uplink + values_down;
        break;
      }
      case K::ef_signsgd:
      case K::amsgrad:
      case K::amsgrad_naive:
      case K::amsgrad_ef: {
        // Seed 004 Sec. 4 / 7: c_w = C(g_w + e_w), e_w <- g_w + e_w - c_w (error feedback), or C(g_w) (naive),
        // or g_w itself (AMSGrad, an allreduce); the mean goes back as fp32 values; SGD or AMSGrad on it.
        const bool compressed = o.kind != K::amsgrad;
        const bool feedback = o.kind == K::ef_signsgd || o.kind == K::amsgrad_ef;
        std::vector<Vd> c(W);
        for (int w = 0; w < W; ++w) {
          if (!compressed) {
            c[w] = g[w];
            continue;
          }
          Vd p = g[w];
          if (feedback)
            for (int i = 0; i < d; ++i) p[i] += e[w][i];
          c[w] = compress(p, t, nullptr, static_cast<std::uint32_t>(w));
          if (feedback && mistake != Mistake::memory_not_updated)
            for (int i = 0; i < d; ++i) e[w][i] = p[i] - c[w][i];
        }
        const Vd dir = mean(c);
        if (o.kind == K::ef_signsgd)
          for (int i = 0; i < d; ++i) x[i] -= o.lr * dir[i];
        else
          amsgrad(dir);
        bits_up += compressed ? dd + 32 : 32 * dd, bits_down += 32 * dd;
        bytes += compressed ? sign_uplink + scales_uplink + values_down : allreduce_fp32;
        break;
      }
      case K::adagrad: {  // seed 002 Alg. 1: B^2 <- B^2 + G o G, x <- x - eta G / sqrt(B^2 + eps^2), G the mean
        const Vd dir = mean(g);
        for (int i = 0; i < d; ++i) {
          const double before = acc[i];
          acc[i] += dir[i] * dir[i];
          const double b2 = mistake == Mistake::adagrad_old_accumulator ? before : acc[i];
          x[i] -= o.lr * dir[i] / std::sqrt(b2 + o.eps * o.eps);
        }
        bits_up += 32 * dd, bits_down += 32 * dd, bytes += allreduce_fp32;
        break;
      }
      case K::local_sgd:
      case K::local_adaalter: {
        // Seed 002 Alg. 2 (local SGD) and Alg. 3 (Local AdaAlter), t1 = t + 1 the 1-based iteration:
        //   t' = mod(t1 - 1, H) + 1;  y_w = x_w - eta_t G_w / sqrt(B^2 + t' eps^2);  A^2_w = B^2_w + G_w o G_w;
        //   mod(t1, H) = 0: x_w <- mean_k y_k, B^2 <- mean_k A^2_k; else x_w <- y_w, B^2_w <- A^2_w;
        //   eta_t = eta min(1, t1 / warm_up_steps) (Sec. 6.2). Local SGD: y_w = x_w - eta G_w.
        const long t1 = t + 1, H = static_cast<long>(o.sync_period);
        const double tp = static_cast<double>((t1 - 1) % H + 1);
        if (o.kind == K::local_adaalter) {
          lr_now = o.warmup_steps > 0 && mistake != Mistake::warmup_ignored
                       ? o.lr * std::min(1.0, static_cast<double>(t1) / static_cast<double>(o.warmup_steps))
                       : o.lr;
        }
        for (int w = 0; w < W; ++w)
          for (int i = 0; i < d; ++i) {
            if (o.kind == K::local_sgd) {
              xs[w][i] -= o.lr * g[w][i];
              continue;
            }
            const double place = (mistake == Mistake::placeholder_dropped ? 1.0 : tp) * o.eps * o.eps;
            acc_w[w][i] += g[w][i] * g[w][i];
            const double b2 = mistake == Mistake::denominators_not_lazy ? acc_w[w][i] : denom_w[w][i];
            xs[w][i] -= lr_now * g[w][i] / std::sqrt(b2 + place);
          }
        if (t1 % H == 0) {
          if (mistake != Mistake::models_not_averaged) {
            const Vd avg = mean(xs);
            for (auto& y : xs) y = avg;
          }
          if (o.kind == K::local_adaalter) {
            const Vd avg = mean(acc_w);
            for (int w = 0; w < W; ++w) {
              if (mistake != Mistake::denominators_not_averaged) acc_w[w] = avg;
              denom_w[w] = acc_w[w];
            }
          }
          const double factor = o.kind == K::local_adaalter ? 2 : 1;  // models, plus the denominators
          bits_up += factor * 32 * dd, bits_down += factor * 32 * dd, bytes += factor * allreduce_fp32;
        }
        break;
      }
      case K::onebit_adam: {
        // Tang et al. 2021 with the seeds' Adam conventions: warmup_steps rounds of Adam on the fp32 mean; then
        // v frozen, worker w sends c_w = C(b1 m + (1 - b1) g_w + e_w) with error feedback, the server sends
        // c = C(mean c_w + e_s) with its own, m <- c, x <- x - lr m / sqrt(v + nu).
        if (t < o.warmup_steps && mistake != Mistake::warmup_ignored) {
          const Vd dir = mean(g);
          for (int i = 0; i < d; ++i) {
            m[i] = o.beta1 * m[i] + (1 - o.beta1) * dir[i];
            v[i] = o.beta2 * v[i] + (1 - o.beta2) * dir[i] * dir[i];
            x[i] -= o.lr * m[i] / std::sqrt(v[i] + o.nu);
          }
          bits_up += 32 * dd, bits_down += 32 * dd, bytes += allreduce_fp32;
          break;
        }
        std::vector<Vd> c(W);
        for (int w = 0; w < W; ++w) {
          Vd p(d);
          for (int i = 0; i < d; ++i) p[i] = o.beta1 * m[i] + (1 - o.beta1) * g[w][i] + e[w][i];
          c[w] = scaled_sign(p, t);
          if (mistake != Mistake::memory_not_updated)
            for (int i = 0; i < d; ++i) e[w][i] = p[i] - c[w][i];
        }
        const Vd mu = mean(c);
        Vd p(d);
        for (int i = 0; i < d; ++i) p[i] = mu[i] + es[i];
        const Vd cs = scaled_sign(p, t);
        for (int i = 0; i < d; ++i) {
          if (mistake != Mistake::server_feedback_dropped) es[i] = p[i] - cs[i];
          m[i] = cs[i];
          x[i] -= o.lr * m[i] / std::sqrt(v[i] + o.nu);
        }
        bits_up += dd + 32, bits_down += dd + 32;
        bytes += sign_uplink + scales_uplink + scalar_sum + words_down;
        break;
      }
      case K::qsgd:
      case K::ef_qsgd:
      case K::terngrad: {
        // QSGD / TernGrad (EF-QSGD: p = g_w + e_w, c_w = Q(p), e_w <- p - c_w): the server averages the decoded
        // messages and sends the mean back as fp32 values; SGD on it.
        std::vector<Vd> c(W);
        for (int w = 0; w < W; ++w) {
          Vd p = g[w];
          if (o.kind == K::ef_qsgd)
            for (int i = 0; i < d; ++i) p[i] += e[w][i];
          c[w] = mistake == Mistake::uncompressed ? p : quantize(p, t, w);
          if (o.kind == K::ef_qsgd && mistake != Mistake::memory_not_updated)
            for (int i = 0; i < d; ++i) e[w][i] = p[i] - c[w][i];
        }
        const Vd dir = mean(c);
        for (int i = 0; i < d; ++i) x[i] -= o.lr * dir[i];
        bits_up += 32 * std::ceil(dd / qsgd_B) + (1 + qsgd_q) * dd, bits_down += 32 * dd;
        bytes += qsgd_uplink + values_down;
        break;
      }
      case K::cd_adam:
      case K::ef21: {
        // Seed 004 Alg. 1 / EF21 (Richtarik et al. 2021, Alg. 1): c_w = C(g_w - g^_w), g^_w <- g^_w + c_w,
        // g^ <- g^ + mean c_w; broadcast markov: c~ = C(g^ - g~), g~ <- g~ + c~, the step uses g~; broadcast
        // mean: g^ goes back as fp32 values and the step uses it. estimate_start gradient: at t = 0 every g^_w
        // is g_w and g^ = g~ their mean (an fp32 allreduce). cd_adam: AMSGrad on the direction; ef21: SGD.
        const bool exact = o.estimate_start == EstimateStart::gradient && mistake != Mistake::exact_start_ignored;
        const bool one_way = o.broadcast == Broadcast::mean;
        if (t == 0 && o.estimate_start == EstimateStart::gradient) {
          bits_up += 32 * dd, bits_down += 32 * dd, bytes += allreduce_fp32;
        } else {
          bits_up += sparse_wire ? 64.0 * k : dd + 32;
          bits_down += one_way ? 32 * dd : topk_wire ? 64.0 * k : randk_wire ? 32.0 * k : dd + 32;
        }
        if (t == 0 && exact) {
          est = g;
          g_hat = mean(g);
          g_tilde = g_hat;
        } else {
          std::vector<std::vector<int>> chosen(W);
          for (int w = 0; w < W; ++w) {
            Vd diff(d);
            for (int i = 0; i < d; ++i) diff[i] = g[w][i] - est[w][i];
            const Vd c = compress(diff, t, &chosen[w], static_cast<std::uint32_t>(w));
            for (int i = 0; i < d; ++i) {
              if (mistake != Mistake::estimate_not_carried) est[w][i] += c[i];
              g_hat[i] += c[i] / W;
            }
          }
          if (!(t == 0 && o.estimate_start == EstimateStart::gradient))
            bytes += sparse_wire ? topk_uplink(chosen) : sign_uplink + scales_uplink;
          if (one_way) {
            g_tilde = g_hat;
            if (!(t == 0 && o.estimate_start == EstimateStart::gradient)) bytes += values_down;
          } else {
            Vd diff(d);
            for (int i = 0; i < d; ++i) diff[i] = g_hat[i] - g_tilde[i];
            const Vd c = compress(diff, t, nullptr, 0xFFFFFFFFu);
            for (int i = 0; i < d; ++i) g_tilde[i] += c[i];
            if (!(t == 0 && o.estimate_start == EstimateStart::gradient))
              bytes += topk_wire ? topk_down : randk_wire ? randk_down : scalar_sum + words_down;
          }
        }
        if (o.kind == K::ef21)
          for (int i = 0; i < d; ++i) x[i] -= o.lr * g_tilde[i];
        else
          amsgrad(g_tilde);
        break;
      }
    }
    if (o.kind == K::local_sgd) lr_now = o.lr;
    row();
  }
  return out;
}

/// "" when the run follows the trajectory (loss, model and lr of every row), else the first difference.
std::string trajectory_mismatch(const RunSummary& run, const Trajectory& ref) {
  if (run.rows.size() != ref.loss.size() || run.row_models.size() != ref.x.size())
    return std::to_string(run.rows.size()) + " rows against " + std::to_string(ref.loss.size());
  char buf[256];
  for (std::size_t t = 0; t < ref.loss.size(); ++t) {
    const HistoryRow& r = run.rows[t];
    if (std::fabs(r.loss - ref.loss[t]) > 2e-6 * std::fabs(ref.loss[t])) {
      std::snprintf(buf, sizeof buf, "iteration %zu: loss %.9g, reference %.9g", t, r.loss, ref.loss[t]);
      return buf;
    }
    if (std::fabs(r.lr - ref.lr[t]) > 1e-6 * std::fabs(ref.lr[t])) {
      std::snprintf(buf, sizeof buf, "iteration %zu: lr %.9g, reference %.9g", t, r.lr, ref.lr[t]);
      return buf;
    }
    for (std::size_t i = 0; i < ref.x[t].size(); ++i)
      if (std::fabs(run.row_models[t][i] - ref.x[t][i]) > 1e-5 + 1e-5 * std::fabs(ref.x[t][i])) {
        std::snprintf(buf, sizeof buf, "iteration %zu: x[%zu] = %.9g, reference %.9g", t, i,
                      static_cast<double>(run.row_models[t][i]), ref.x[t][i]);
        return buf;
      }
  }
  return "";
}

class RunReference : public ::testing::TestWithParam<std::size_t> {};

TEST_P(RunReference, FollowsTheScalarReference) {
  const int P = size_of();
  if (kWorkers % P != 0) GTEST_SKIP() << "W = 4 workers do not spread over " << P << " ranks";
  const Case& c = cases()[GetParam()];
  SCOPED_TRACE("{" + c.optimizer + "}, batch " + c.batch + ", on " + std::to_string(P) + " ranks");
  const Deck deck = deck_of(c, P);
  RunOptions options = quiet();
  options.keep_row_models = true;
  const RunSummary run = run_deck(MPI_COMM_WORLD, deck, options);
  const Trajectory ref = reference(deck, kWorkers, P, Mistake::none);
  ASSERT_EQ(ref.ambiguous, 0) << "choose another case: " << ref.ambiguity << " is within fp32 rounding of its threshold";
  ASSERT_EQ(run.dim, 300u);
  const std::string mismatch = trajectory_mismatch(run, ref);
  EXPECT_EQ(mismatch, "");
  // The run moved: a model that stayed put would follow a broken reference too.
  EXPECT_GT(std::fabs(ref.loss.back() - ref.loss.front()), 1e-3 * ref.loss.front());
  // Bits: the payload formula; bytes: what the exchanges handed MPI, counted where they call it.
  for (std::size_t t = 0; t < ref.loss.size() && t < run.rows.size(); ++t) {
    EXPECT_EQ(run.rows[t].bits_up, ref.bits_up[t]) << "iteration " << t;
    EXPECT_EQ(run.rows[t].bits_down, ref.bits_down[t]) << "iteration " << t;
    EXPECT_EQ(run.rows[t].bytes_sent, ref.bytes[t]) << "iteration " << t;
  }
  // Power: each plausible mistake leaves the trajectory the run follows.
  for (const Mistake m : c.mistakes) {
    const Trajectory wrong = reference(deck, kWorkers, P, m);
    EXPECT_NE(trajectory_mismatch(run, wrong), "") << "a reference with " << name_of(m) << " is not told apart";
  }
}

std::string case_name(const ::testing::TestParamInfo<std::size_t>& info) {
  std::string out;
  for (char ch : cases()[info.param].optimizer) out += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  while (out.find("__") != std::string::npos) out.replace(out.find("__"), 2, "_");
  return std::to_string(info.param) + "_" + out.substr(0, 60);
}

INSTANTIATE_TEST_SUITE_P(EveryAlgorithm, RunReference, ::testing::Range<std::size_t>(0, cases().size()), case_name);

}  // namespace
