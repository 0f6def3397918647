// The public step (terse::optim::Method, terse_Optim.hpp) is `terse run`'s code path, and runs on every backend:
//   * the gradients `terse run` computes (the logistic problem's, the mlp's), handed to a Method built from the
//     deck's spec, give run_deck's models at every history row and its final model, bitwise;
//   * the same gradients through Method<Kokkos::Serial> and Method<Kokkos::OpenMP> give the same model, bitwise.
#include "terse_MpiTestSupport.hpp"

#include <terse_Compose.hpp>
#include <terse_Optim.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace terse;
using namespace terse::test_support;

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

template <class V>
std::vector<float> host_copy(const V& v) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
  return std::vector<float>(h.data(), h.data() + h.extent(0));
}

/// The deck's run through the library: the problem's gradients, the spec's Method, the loop a user writes.
/// Returns the model at each multiple of log_every (and at the end), as run_deck's rows keep them.
std::vector<std::vector<float>> through_the_library(const Deck& deck) {
  using Exec = Kokkos::DefaultExecutionSpace;
  const int P = size_of(), rank = rank_of();
  const WorkerRange workers = workers_of_rank(rank, P, deck.workers.per_rank);
  auto problem = make_problem<Exec>(deck.problem, workers);
  const std::size_t d = problem->dim();
  optim::VecOf<Exec> x("x", d);
  problem->initial_model(x, deck.run.seed);
  optim::Method<Exec> method(MPI_COMM_WORLD, compose(deck.optimizer), layout_of(deck, d));
  method.start(Exec(), x);
  optim::MatOf<Exec> grads("grads", workers.count, d);
  std::vector<std::vector<float>> models{host_copy(x)};
  Exec space;
  for (std::int64_t k = 0; k < deck.run.iterations; ++k) {
    for (int l = 0; l < workers.count; ++l)
      problem->stochastic_gradient(method.model(l, x), workers.first + l, static_cast<std::uint64_t>(k),
                                   batch_of(deck.run), deck.run.seed, Kokkos::subview(grads, l, Kokkos::ALL));
    optim::StepInputs in;
    in.k = k;
    method.step(space, grads, x, in);
    const std::int64_t done = k + 1;
    if (done % deck.run.log_every == 0 || done == deck.run.iterations) {
      std::uint64_t bytes = 0;
      models.push_back(host_copy(method.local() ? method.average(space, bytes) : x));
    }
  }
  return models;
}

TEST(MethodIsTheRun, TheProblemsGradientsThroughTheStepAreTerseRunsTrajectory) {
  struct Case {
    std::string problem, alg;
    std::vector<std::string> extra;
  };
  const std::vector<Case> cases = {
      {"logistic", "majority_vote", {}},
      {"logistic", "cd_adam", {}},
      {"logistic", "ef21", {"optimizer.compressor=top_k", "optimizer.k_ratio=0.2", "optimizer.estimate_start=gradient"}},
      {"logistic", "onebit_adam", {"optimizer.warmup_steps=3"}},
      {"logistic", "local_adaalter", {"optimizer.sync_period=3"}},
      {"logistic", "signum", {"run.exchange_chunk=64"}},
      {"logistic", "ef_qsgd", {"optimizer.bucket=100"}},
      {"mlp", "majority_vote", {}},
      {"mlp", "terngrad", {}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.problem + " / " + c.alg + " on " + std::to_string(size_of()) + " ranks");
    std::ostringstream y;
    y << problem_yaml(c.problem) << "optimizer: {kind: " << c.alg << ", lr: 0.01}\n"
      << "run: {iterations: 12, batch: 4, seed: 3, log_every: 4}\nworkers: {per_rank: 2}\n";
    const Deck deck = parse_deck_string(y.str(), "test:method/" + c.alg, c.extra);
    RunOptions o = quiet();
    o.keep_row_models = true;
    const RunSummary run = run_deck(MPI_COMM_WORLD, deck, o);
    const auto mine = through_the_library(deck);
    ASSERT_EQ(mine.size(), run.row_models.size());
    for (std::size_t r = 0; r < mine.size(); ++r)
      EXPECT_TRUE(same_bits(mine[r], run.row_models[r])) << "the model of row " << r << " differs";
    EXPECT_TRUE(same_bits(mine.back(), run.final_x));
  }
}

// A spec whose pieces do not fit together is refused when the Method is built, naming the piece.
TEST(MethodSpec, PiecesThatDoNotFitAreRefused) {
  const auto refused = [](optim::Spec s, const char* what) {
    s.lr = 0.01;
    try {
      optim::Method<> m(MPI_COMM_WORLD, s, optim::Layout{100, 1, 0});
      ADD_FAILURE() << "accepted: " << what;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  optim::Spec sign_mean;  // the plain sign has no scale to average
  sign_mean.wire = optim::Wire::sign;
  refused(sign_mean, "aggregate: vote");
  optim::Spec markov_vote;  // a Markov memory the server would not keep
  markov_vote.wire = optim::Wire::sign;
  markov_vote.memory = optim::Memory::markov;
  markov_vote.aggregate = optim::Aggregate::vote;
  markov_vote.rule = optim::Rule::sign;
  refused(markov_vote, "aggregate: mean");
  optim::Spec vote_sgd;
  vote_sgd.wire = optim::Wire::sign;
  vote_sgd.aggregate = optim::Aggregate::vote;
  refused(vote_sgd, "rule: sign");
  optim::Spec no_lr;
  no_lr.wire = optim::Wire::fp32;
  try {
    optim::Method<> m(MPI_COMM_WORLD, no_lr, optim::Layout{100, 1, 0});
    ADD_FAILURE() << "lr 0 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("lr"), std::string::npos);
  }
}

#if defined(KOKKOS_ENABLE_SERIAL) && defined(KOKKOS_ENABLE_OPENMP)
/// n iterations of `spec` on Method<E> with the gradients g(k, w) = N(0, 1) draws (the same on every backend).
template <class E>
std::vector<float> steps_on(const optim::Spec& spec, std::size_t d, int R, int n) {
  const int rank = rank_of();
  optim::Layout layout;
  layout.d = d;
  layout.workers_per_rank = R;
  layout.seed = 9;
  layout.exchange_chunk = 128;  // chunked where the method allows, from 1 rank on
  optim::Method<E> method(MPI_COMM_WORLD, spec, layout);
  optim::VecOf<E> x("x", d);
  optim::MatOf<E> grads("grads", R, d);
  auto gh = Kokkos::create_mirror_view(grads);
  E space;
  for (int k = 0; k < n; ++k) {
    for (int l = 0; l < R; ++l)
      for (std::size_t i = 0; i < d; ++i) {
        const CounterRng rng{42, static_cast<std::uint32_t>(RandomStream::gradient_noise)};
        gh(l, i) = static_cast<float>(rng.normal(k, static_cast<std::uint32_t>(rank * R + l), i)) + 0.01f * k;
      }
    Kokkos::deep_copy(grads, gh);
    optim::StepInputs in;
    in.k = k;
    method.step(space, grads, x, in);
  }
  return host_copy(x);
}

TEST(MethodBackends, SerialAndOpenMPStepsAreBitwise) {
  for (const char* alg : {"majority_vote", "signum", "cd_adam", "ef21", "ef_signsgd", "stochastic_sign", "onebit_adam",
                          "qsgd", "ef_qsgd", "terngrad"}) {
    SCOPED_TRACE(std::string(alg) + " on " + std::to_string(size_of()) + " ranks");
    const Deck deck = parse_deck_string(std::string("problem: {kind: quadratic, dim: 10}\noptimizer: {kind: ") + alg +
                                            ", lr: 0.01" + (std::string(alg) == "onebit_adam" ? ", warmup_steps: 2" : "") +
                                            (std::string(alg) == "ef21" ? ", compressor: rand_k, k_ratio: 0.1" : "") +
                                            "}\nrun: {iterations: 1}\n",
                                        "test:backends");
    const optim::Spec spec = compose(deck.optimizer);
    const auto serial = steps_on<Kokkos::Serial>(spec, 1000, 2, 6);
    const auto openmp = steps_on<Kokkos::OpenMP>(spec, 1000, 2, 6);
    EXPECT_TRUE(same_bits(serial, openmp));
    double moved = 0;
    for (float v : serial) moved += std::fabs(v);
    EXPECT_GT(moved, 0.0);  // the step did something
  }
}
#endif

}  // namespace
