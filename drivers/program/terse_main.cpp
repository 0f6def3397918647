// terse: the command-line program. Subcommands: run, info, demo.
#include "terse_Deck.hpp"
#include "terse_Run.hpp"
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
                 "Kokkos flags (--kokkos-...) are passed through to Kokkos.",
                 "terse"};
    app.set_version_flag("--version", std::string("terse ") + TERSE_VERSION_STRING);
    app.require_subcommand(1);

    std::string deck_path, output;
    std::vector<std::string> overrides;
    auto* run = app.add_subcommand(
        "run",
        "Run the algorithm a YAML deck describes (docs/deck.md) on the MPI ranks of the job, e.g.\n"
        "  mpiexec -n 4 terse run inputs/quadratic_majority_vote_adaptive.yaml --set run.iterations=500\n"
        "Rank 0 prints progress (iteration, loss, |grad f|^2, lr, it/s, ETA, bits sent per worker); the history\n"
        "and the final model go to an HDF5 file (docs/hdf5.md). A bad deck, data file, output path or checkpoint\n"
        "stops the run before the first iteration with a message naming the file and key or line (exit status 2).\n"
        "With run.checkpoint the run writes restart files (docs/checkpoint.md); SIGTERM or SIGUSR1 make it write\n"
        "one after the current iteration and exit with status 75; a non-finite loss exits with status 3.");
    run->add_option("DECK", deck_path, "The input deck (YAML)")->required();
    run->add_option("--set", overrides,
                    "Override a deck key, section.key=value (the value is YAML: --set run.batch=full, "
                    "--set problem.classes=[0,6]); repeatable")
        ->type_name("SECTION.KEY=VALUE")
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    run->add_option("--output", output, "HDF5 history file (overrides run.output; default terse_history.h5)")
        ->type_name("FILE.h5")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    bool quiet = false;
    run->add_flag("--quiet,-q", quiet, "No progress lines (errors still go to stderr)");
    std::string restart;
    run->add_option("--restart", restart,
                    "Continue from a checkpoint written by a run of the same deck (the same problem, algorithm, "
                    "d, workers W and trajectory keys; run.iterations may grow): the history and final model "
                    "are those of an uninterrupted run")
        ->type_name("CKPT.h5")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);

    auto* info = app.add_subcommand("info", "Print the versions and parallel configuration terse runs with");

    terse::DemoOptions demo_opt;
    auto* demo = app.add_subcommand(
        "demo",
        "Majority-vote signSGD on the noisy quadratic f(x) = 0.5 ||x||^2: every MPI rank is one worker that "
        "sends 1 bit per coordinate; a deck built from these options and run as `terse run` runs it (no history "
        "file); prints progress and the bytes saved against fp32");
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
    if (*run) {
      terse::Deck deck = terse::parse_deck(deck_path, overrides);
      if (!output.empty()) {
        // The checkpoint's default name follows the history's.
        if (deck.run.checkpoint_path == terse::default_checkpoint_path(deck.run.output))
          deck.run.checkpoint_path = terse::default_checkpoint_path(output);
        deck.run.output = output;
      }
      terse::install_stop_handlers();
      terse::RunOptions options;
      options.restart = restart;
      if (quiet) options.progress = nullptr;
      const terse::RunSummary summary = terse::run_deck(MPI_COMM_WORLD, deck, options);
      if (summary.stopped_by_signal != 0) status = terse::exit_stopped;
    }
    if (*info) status = terse::run_info(rt);
    if (*demo) status = terse::run_demo(rt, demo_opt);
  } catch (const terse::UserError& e) {
    // Thrown the same way on every rank (run_deck makes the ranks agree on errors found before the first
    // iteration).
    if (rt.rank() == 0) std::fprintf(stderr, "terse: error: %s\n", e.what());
    status = terse::exit_user_error;
  } catch (const terse::DivergedError& e) {
    if (rt.rank() == 0) std::fprintf(stderr, "terse: error: %s\n", e.what());
    status = terse::exit_diverged;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "terse: rank %d: fatal: %s\n", rt.rank(), e.what());
    MPI_Abort(MPI_COMM_WORLD, terse::exit_internal_error);
  }
  return status;
}
