// terse: the command-line program. Subcommands: info, demo.
#include "terse_Runtime.hpp"

#include <terse_Version.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

int main(int argc, char* argv[]) {
  terse::Runtime rt(argc, argv);
  int status = 0;
  try {
    CLI::App app{"terse: communication-compressed distributed optimization with Kokkos and MPI.\n"
                 "Kokkos flags (--kokkos-...) are passed through to Kokkos."};
    app.set_version_flag("--version", std::string("terse ") + TERSE_VERSION_STRING);
    app.require_subcommand(1);

    auto* info = app.add_subcommand("info", "Print the versions and parallel configuration terse runs with");

    terse::DemoOptions demo_opt;
    auto* demo = app.add_subcommand(
        "demo",
        "Majority-vote signSGD on the noisy quadratic f(x) = 0.5 ||x||^2: every MPI rank is one worker that "
        "sends 1 bit per coordinate; prints progress and the bytes saved against fp32");
    demo->add_option("--dim", demo_opt.dim, "Dimension d")->capture_default_str()->check(CLI::Range(1ul, 1ul << 31));
    demo->add_option("--iterations", demo_opt.iterations, "Number of updates")->capture_default_str()->check(CLI::Range(1, 1 << 30));
    demo->add_option("--lr", demo_opt.lr, "Step size")->capture_default_str()->check(CLI::PositiveNumber);
    demo->add_option("--noise-std", demo_opt.noise_std, "Std of the Gaussian gradient noise per coordinate")->capture_default_str()->check(CLI::NonNegativeNumber);
    demo->add_option("--x0", demo_opt.x0, "Initial value of every coordinate")->capture_default_str();
    demo->add_option("--seed", demo_opt.seed, "Random seed")->capture_default_str();
    demo->add_option("--log-every", demo_opt.log_every, "Print progress every N updates")->capture_default_str()->check(CLI::PositiveNumber);

    std::vector<std::string> args(rt.args().rbegin(), rt.args().rend() - 1);  // CLI11 wants them reversed, no program name
    try {
      app.parse(args);
    } catch (const CLI::ParseError& e) {
      // Only rank 0 prints help and errors; every rank leaves with the same code.
      if (rt.rank() == 0) status = app.exit(e);
      else status = e.get_exit_code();
      return status;
    }
    if (*info) status = terse::run_info(rt);
    if (*demo) status = terse::run_demo(rt, demo_opt);
  } catch (const terse::UserError& e) {
    if (rt.rank() == 0) std::fprintf(stderr, "terse: error: %s\n", e.what());
    status = 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "terse: rank %d: fatal: %s\n", rt.rank(), e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return status;
}
