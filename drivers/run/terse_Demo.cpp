// `terse demo`: majority-vote signSGD (seed 000 Alg. 1, seed 001 Alg. 2) on the noisy quadratic
// f(x) = 0.5 ||x||^2, one worker per MPI rank, 1 bit per coordinate on the wire: a deck built from the command
// line and run by run_deck(), the code `terse run` runs (no history file).
#include "terse_Deck.hpp"
#include "terse_Run.hpp"
#include "terse_Runtime.hpp"

#include <cstdio>
#include <string>

namespace terse {

namespace {
std::string number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  const std::string s(buf);
  return s.find_first_of(".eEn") == std::string::npos ? s + ".0" : s;
}
}  // namespace

/// The deck `terse demo` runs.
std::string demo_deck(const DemoOptions& opt) {
  return "problem: {kind: quadratic, dim: " + std::to_string(opt.dim) + ", x0: " + number(opt.x0) +
         ", noise_std: " + number(opt.noise_std) + ", noise_coords: all}\n"
         "optimizer: {kind: majority_vote, lr: " + number(opt.lr) + "}\n"
         "run: {iterations: " + std::to_string(opt.iterations) + ", batch: 1, seed: " + std::to_string(opt.seed) +
         ", log_every: " + std::to_string(opt.log_every) + "}\n"
         "workers: {per_rank: 1}\n";
}

int run_demo(const Runtime& rt, const DemoOptions& opt) {
  const Deck deck = parse_deck_string(demo_deck(opt), "demo (the deck of the command line)");
  RunOptions options;
  options.write_history = false;
  const RunSummary s = run_deck(MPI_COMM_WORLD, deck, options);
  const double sent = static_cast<double>(s.algorithm_bytes) / opt.iterations;
  double max_sent = 0;
  MPI_Allreduce(&sent, &max_sent, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  const double loss0 = s.rows.front().loss, loss = s.rows.back().loss, fp32 = 4.0 * static_cast<double>(opt.dim);
  if (rt.rank() == 0) {
    if (max_sent > 0)
      std::printf("terse demo: a rank handed MPI at most %.0f bytes per iteration (an fp32 vector is %.0f bytes: "
                  "%.1fx more)\n",
                  max_sent, fp32, fp32 / max_sent);
    else
      std::printf("terse demo: one rank: nothing crossed MPI (an fp32 vector is %.0f bytes)\n", fp32);
  }
  if (!(loss < loss0)) {
    if (rt.rank() == 0) std::fprintf(stderr, "terse demo: the loss did not decrease\n");
    return 1;
  }
  return 0;
}

}  // namespace terse
