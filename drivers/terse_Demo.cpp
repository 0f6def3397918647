// `terse demo`: majority-vote signSGD (seed 000 Alg. 1, seed 001 Alg. 2) on the noisy quadratic
// f(x) = 0.5 ||x||^2, one worker per MPI rank, 1 bit per coordinate on the wire.
#include "terse_Exchange.hpp"
#include "terse_Problem.hpp"
#include "terse_Runtime.hpp"

#include <terse_Sign.hpp>
#include <terse_Vote.hpp>

#include <cmath>
#include <cstdio>

namespace terse {


int run_demo(const Runtime& rt, const DemoOptions& opt) {
  using Exec = Kokkos::DefaultExecutionSpace;
  using Mem = Exec::memory_space;
  const std::size_t d = opt.dim;
  const int P = rt.size();
  Exec exec;

  Kokkos::View<float*, Mem> x("x", d), g("g", d);
  SignExchange exchange(MPI_COMM_WORLD, d, 1);  // one worker per rank; the server sharded over the ranks
  // The driver's quadratic problem: worker w = this rank; its noise comes from (seed, iteration, w).
  const auto problem = make_quadratic<Exec>(static_cast<std::int64_t>(d), opt.x0, opt.noise_std, NoiseCoords::all,
                                            workers_of_rank(rt.rank(), P, 1));
  problem->initial_model(x, opt.seed);
  const auto loss_of = [&] {
    const double local = problem->local_loss_sum(x);
    double global = 0;
    MPI_Allreduce(&local, &global, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return problem->finish_loss(global, x);
  };
  const double loss0 = loss_of();
  if (rt.rank() == 0) {
    std::printf("terse demo: majority-vote signSGD, %d workers (MPI ranks), d = %zu, %d iterations, lr = %g, "
                "noise std = %g, backend %s\n",
                P, d, opt.iterations, opt.lr, opt.noise_std, Exec::name());
    std::printf("%10s %14s %12s %10s\n", "iteration", "loss", "it/s", "ETA [s]");
    std::printf("%10d %14.6e %12s %10s\n", 0, loss0, "-", "-");
    std::fflush(stdout);
  }

  Kokkos::Timer timer;
  double loss = loss0;
  for (int k = 0; k < opt.iterations; ++k) {
    problem->stochastic_gradient(x, rt.rank(), static_cast<std::uint64_t>(k), Batch{false, 1}, opt.seed, g);
    sign_pack(exec, g, exchange.local_signs(0));
    exchange.vote(exec);
    sign_apply_voted(exec, exchange.vote_words(), exchange.tie_words(), x, static_cast<float>(opt.lr));

    if ((k + 1) % opt.log_every == 0 || k + 1 == opt.iterations) {
      loss = loss_of();
      const double elapsed = timer.seconds();
      const double rate = (k + 1) / elapsed;
      if (rt.rank() == 0) {
        std::printf("%10d %14.6e %12.1f %10.1f\n", k + 1, loss, rate, (opt.iterations - k - 1) / rate);
        std::fflush(stdout);
      }
    }
  }
  exec.fence();
  const double seconds = timer.seconds();
  const double sent = double(exchange.total_bytes_sent()) / opt.iterations;
  double max_sent = 0;
  MPI_Allreduce(&sent, &max_sent, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  if (rt.rank() == 0) {
    std::printf("done: loss %.6e -> %.6e in %.2f s; a rank handed MPI at most %.0f bytes per iteration "
                "(an fp32 vector is %.0f bytes: %.1fx more)\n",
                loss0, loss, seconds, max_sent, 4.0 * d, 4.0 * d / max_sent);
  }
  if (!(loss < loss0)) {
    if (rt.rank() == 0) std::fprintf(stderr, "terse demo: the loss did not decrease\n");
    return 1;
  }
  return 0;
}

}  // namespace terse
