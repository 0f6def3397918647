// The input-deck parser against its contract docs/deck.md: valid decks give the expected values and defaults,
// every class of error gives a DeckError naming the file and the key (or line), --set overrides win and are
// checked, the effective deck round-trips, and the accepted keys are exactly those the document lists.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <terse_Deck.hpp>
#include <vector>

namespace {

using namespace terse;

const std::string kDecks = std::string(TERSE_TEST_DATA_DIR) + "/decks/";

// The smallest valid deck; tests add or replace lines.
const std::string kQuadSgd =
    "problem:\n"
    "  kind: quadratic\n"
    "  dim: 10\n"
    "optimizer:\n"
    "  kind: sgd\n"
    "  lr: 0.1\n"
    "run:\n"
    "  iterations: 5\n";

/// A deck with the given problem and optimizer bodies (each line indented by the caller) and 250 iterations.
std::string deck(const std::string& problem, const std::string& optimizer, const std::string& run = "") {
  return "problem:\n" + problem + "optimizer:\n" + optimizer + "run:\n  iterations: 250\n" + run;
}

/// The message of the DeckError that parsing throws ("" and a failure when it throws none).
std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_deck_string(yaml, "deck.yaml", overrides);
  } catch (const DeckError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no DeckError for\n" << yaml;
  return "";
}

/// Parsing fails with a message that starts with the file name and contains every phrase.
void expect_error(const std::string& yaml, const std::vector<std::string>& overrides,
                  const std::vector<std::string>& phrases) {
  const std::string msg = error_of(yaml, overrides);
  EXPECT_EQ(msg.rfind("deck.yaml:", 0), 0u) << msg;
  for (const auto& p : phrases) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}
void expect_error(const std::string& yaml, const std::vector<std::string>& phrases) { expect_error(yaml, {}, phrases); }

// ------------------------------------------------------------------------------------------------ valid decks

TEST(Deck, QuadraticMajorityVoteFile) {
  const std::string path = kDecks + "quadratic_majority_vote.yaml";
  const Deck d = parse_deck(path);
  EXPECT_EQ(d.path, path);
  EXPECT_EQ(d.problem.kind, ProblemKind::quadratic);
  EXPECT_EQ(d.problem.dim, 1000);
  EXPECT_EQ(d.problem.x0, 1.0);  // quadratic default
  EXPECT_EQ(d.problem.noise_std, 0.5);
  EXPECT_EQ(d.problem.noise_coords, NoiseCoords::first);
  EXPECT_EQ(d.optimizer.kind, OptimizerKind::majority_vote);
  EXPECT_EQ(d.optimizer.lr, 1e-3);
  EXPECT_EQ(d.optimizer.lr_schedule, LrSchedule::adaptive);
  EXPECT_EQ(d.optimizer.lipschitz, 2.0);
  EXPECT_EQ(d.optimizer.vote, VoteMode::samples);
  EXPECT_EQ(d.optimizer.accept, AcceptRule::descent);
  EXPECT_EQ(d.run.iterations, 500);
  EXPECT_FALSE(d.run.batch_full);
  EXPECT_EQ(d.run.batch, 8);
  EXPECT_EQ(d.run.seed, 7u);
  EXPECT_EQ(d.run.log_every, 5);  // max(1, 500 / 100)
  EXPECT_EQ(d.run.output, "terse_history.h5");
  EXPECT_EQ(d.workers.per_rank, 4);
}

TEST(Deck, RosenbrockAmsgradDefaults) {
  const Deck d = parse_deck(kDecks + "rosenbrock_amsgrad.yaml");
  EXPECT_EQ(d.problem.kind, ProblemKind::rosenbrock);
  EXPECT_EQ(d.problem.dim, 10);  // rosenbrock default
  EXPECT_EQ(d.problem.x0, 0.0);  // rosenbrock default
  EXPECT_EQ(d.problem.noise_std, 0.0);
  EXPECT_EQ(d.optimizer.kind, OptimizerKind::amsgrad);
  EXPECT_EQ(d.optimizer.lr, 0.01);
  EXPECT_EQ(d.optimizer.beta1, 0.9);
  EXPECT_EQ(d.optimizer.beta2, 0.99);
  EXPECT_EQ(d.optimizer.nu, 1e-8);
  EXPECT_FALSE(d.optimizer.lipschitz.has_value());
  EXPECT_EQ(d.run.iterations, 2000);
  EXPECT_EQ(d.run.batch, 1);
  EXPECT_EQ(d.run.seed, 0u);
  EXPECT_EQ(d.run.log_every, 20);
  EXPECT_EQ(d.workers.per_rank, 1);
}

TEST(Deck, LogisticLibsvmEf21) {
  const Deck d = parse_deck(kDecks + "logistic_libsvm_ef21.yaml");
  EXPECT_EQ(d.problem.kind, ProblemKind::logistic);
  EXPECT_FALSE(d.problem.dim.has_value());  // the largest feature index of the data
  EXPECT_EQ(d.problem.data, std::string("a9a.libsvm"));
  EXPECT_EQ(d.problem.data_format, DataFormat::libsvm);
  EXPECT_EQ(d.problem.lambda, 0.05);
  EXPECT_EQ(d.optimizer.kind, OptimizerKind::ef21);
  EXPECT_EQ(d.optimizer.compressor, Compressor::top_k);  // ef21's default
  EXPECT_EQ(d.optimizer.k_ratio, 0.1);
  EXPECT_TRUE(d.run.batch_full);
  EXPECT_EQ(d.run.log_every, 10);
  EXPECT_EQ(d.run.output, "ef21_a9a.h5");
}

TEST(Deck, LogisticFashionMnistCdAdam) {
  const Deck d = parse_deck(kDecks + "logistic_fmnist_cd_adam.yaml");
  EXPECT_EQ(d.problem.data_format, DataFormat::fashion_mnist);
  EXPECT_FALSE(d.problem.data.has_value());
  EXPECT_EQ(d.problem.lambda, 0.1);
  EXPECT_EQ(d.problem.classes, (std::array<int, 2>{{2, 4}}));
  EXPECT_EQ(d.problem.train_images, "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
  EXPECT_EQ(d.problem.train_labels, "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz");
  EXPECT_EQ(d.optimizer.kind, OptimizerKind::cd_adam);
  EXPECT_EQ(d.optimizer.compressor, Compressor::scaled_sign);  // cd_adam's default
  EXPECT_EQ(d.optimizer.beta1, 0.8);
  EXPECT_EQ(d.optimizer.beta2, 0.999);
  EXPECT_EQ(d.optimizer.nu, 1e-6);
  EXPECT_EQ(d.run.batch, 32);
  EXPECT_EQ(d.run.log_every, 3);
}

TEST(Deck, MlpLocalAdaalter) {
  const Deck d = parse_deck(kDecks + "mlp_local_adaalter.yaml");
  EXPECT_EQ(d.problem.kind, ProblemKind::mlp);
  EXPECT_FALSE(d.problem.dim.has_value());
  EXPECT_EQ(d.problem.hidden, 128);
  EXPECT_EQ(d.problem.train_images, "train-images-idx3-ubyte");
  EXPECT_EQ(d.problem.test_images, "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
  EXPECT_EQ(d.problem.test_labels, "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz");
  EXPECT_EQ(d.optimizer.kind, OptimizerKind::local_adaalter);
  EXPECT_EQ(d.optimizer.lr, 0.1);
  EXPECT_EQ(d.optimizer.eps, 1e-6);
  EXPECT_EQ(d.optimizer.sync_period, 4);
  EXPECT_EQ(d.optimizer.b0, 0.5);
  EXPECT_EQ(d.optimizer.warmup_steps, 100);
  EXPECT_EQ(d.run.seed, std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(d.workers.per_rank, 2);
}

TEST(Deck, EveryAlgorithmParsesWithItsDefaults) {
  const char* kinds[] = {"sgd",     "majority_vote", "stochastic_sign", "ef_signsgd",
                         "amsgrad", "amsgrad_naive", "amsgrad_ef",      "cd_adam",
                         "ef21",    "adagrad",       "local_sgd",       "local_adaalter",
                         "onebit_adam", "qsgd",         "ef_qsgd",         "terngrad"};
  for (const char* k : kinds) {
    SCOPED_TRACE(k);
    // onebit_adam has no default for its warm-up (the variance it freezes).
    const std::string extra = std::string(k) == "onebit_adam" ? "  warmup_steps: 10\n" : "";
    const Deck d = parse_deck_string(deck("  kind: quadratic\n  dim: 3\n", std::string("  kind: ") + k + "\n  lr: 2\n" + extra),
                                     "deck.yaml");
    EXPECT_STREQ(to_string(d.optimizer.kind), k);
    EXPECT_EQ(d.optimizer.lr, 2.0);  // an integer is a number
    EXPECT_EQ(d.optimizer.lr_schedule, LrSchedule::constant);
    EXPECT_EQ(d.optimizer.vote, VoteMode::workers);
    EXPECT_EQ(d.optimizer.accept, AcceptRule::always);
    EXPECT_EQ(d.optimizer.compressor,
              d.optimizer.kind == OptimizerKind::ef21 ? Compressor::top_k : Compressor::scaled_sign);
    EXPECT_EQ(d.optimizer.k_ratio, 0.016);
    EXPECT_EQ(d.optimizer.broadcast, Broadcast::markov);
    EXPECT_EQ(d.optimizer.estimate_start, EstimateStart::zero);
    EXPECT_EQ(d.optimizer.eps, 1e-8);
    EXPECT_EQ(d.optimizer.sync_period, 1);
    EXPECT_EQ(d.optimizer.b0, 1.0);
    EXPECT_EQ(d.optimizer.warmup_steps, extra.empty() ? 0 : 10);
    EXPECT_EQ(d.optimizer.levels, 7);   // qsgd: 3 level bits
    EXPECT_EQ(d.optimizer.bucket, 512); // the paper's buckets
    EXPECT_EQ(d.problem.noise_coords, NoiseCoords::all);
    EXPECT_EQ(d.run.log_every, 2);  // max(1, 250 / 100)
  }
  EXPECT_EQ(parse_deck_string(kQuadSgd, "deck.yaml").run.log_every, 1);  // max(1, 5 / 100)
  EXPECT_EQ(parse_deck_string(deck("  kind: mlp\n", "  kind: sgd\n  lr: 1\n"), "d").problem.hidden, 64);
  {  // the cnn: seed 000's network by default (hidden 512, channels 32 and 64, same padding); a round trip
    const Deck c = parse_deck_string(deck("  kind: cnn\n", "  kind: sgd\n  lr: 1\n"), "d");
    EXPECT_EQ(c.problem.hidden, 512);
    EXPECT_EQ(c.problem.channels, (std::array<std::int64_t, 2>{{32, 64}}));
    EXPECT_EQ(c.problem.padding, Padding::same);
    const Deck e = parse_deck_string(
        deck("  kind: cnn\n  channels: [4, 8]\n  padding: valid\n  hidden: 16\n  products: fixed_order\n",
             "  kind: sgd\n  lr: 1\n"),
        "d");
    EXPECT_EQ(e.problem.channels, (std::array<std::int64_t, 2>{{4, 8}}));
    EXPECT_EQ(e.problem.padding, Padding::valid);
    EXPECT_EQ(e.problem.hidden, 16);
    const std::string text = effective_config_yaml(e);
    EXPECT_NE(text.find("channels: [4, 8]"), std::string::npos) << text;
    EXPECT_TRUE(parse_deck_string(text, "d") == e);
  }
  // A section with nothing under it is all defaults; boundaries of the ranges are accepted where closed.
  const Deck b =
      parse_deck_string(deck("  kind: rosenbrock\n  dim: 2\n  noise_std: 0\n  x0: -1.5\n",
                             "  kind: cd_adam\n  lr: 1\n  beta1: 0\n  beta2: 0.0\n  compressor: top_k\n  k_ratio: 1\n",
                             "  seed: 0\n  log_every: 1000\nworkers:\n"),
                        "deck.yaml");
  EXPECT_EQ(b.problem.dim, 2);
  EXPECT_EQ(b.problem.x0, -1.5);
  EXPECT_EQ(b.optimizer.beta1, 0.0);
  EXPECT_EQ(b.optimizer.k_ratio, 1.0);
  EXPECT_EQ(b.run.log_every, 1000);
  EXPECT_EQ(b.workers.per_rank, 1);
}

TEST(Deck, NumberAndIntegerSyntax) {
  // Integers: plain decimal only (an optional sign, no leading zero). 1e3, 1000.0, 0x10, 010, 1_000 and "1000"
  // (quoted) are refused for integer keys; numbers accept YAML decimals and integers: 1e-3, .5, 5., -2, +3E2.
  const auto dim_of = [](const std::string& v) {
    return *parse_deck_string(kQuadSgd, "deck.yaml", {"problem.dim=" + v}).problem.dim;
  };
  EXPECT_EQ(dim_of("1000"), 1000);
  EXPECT_EQ(dim_of("+7"), 7);
  for (const char* bad : {"1e3", "1000.0", "1.5", "0x10", "010", "1_000", "'1000'", "\"1000\"", "true", "ten", "~"}) {
    SCOPED_TRACE(bad);
    expect_error(kQuadSgd, {std::string("problem.dim=") + bad}, {"problem.dim: expected an integer, got"});
  }
  const auto x0_of = [](const std::string& v) {
    return parse_deck_string(kQuadSgd, "deck.yaml", {"problem.x0=" + v}).problem.x0;
  };
  EXPECT_EQ(x0_of("1e-3"), 1e-3);
  EXPECT_EQ(x0_of(".5"), 0.5);
  EXPECT_EQ(x0_of("5."), 5.0);
  EXPECT_EQ(x0_of("-2"), -2.0);
  EXPECT_EQ(x0_of("+3E2"), 300.0);
  for (const char* bad : {"true", "no", "'0.5'", "abc", "1e", "0x1p3", "[1]", "{a: 1}"}) {
    SCOPED_TRACE(bad);
    expect_error(kQuadSgd, {std::string("problem.x0=") + bad}, {"problem.x0: expected a number, got"});
  }
  for (const char* bad : {".nan", ".inf", "-.inf", ".NaN", "1e999"}) {
    SCOPED_TRACE(bad);
    expect_error(kQuadSgd, {std::string("problem.x0=") + bad}, {"problem.x0: must be a finite number"});
  }
  expect_error(kQuadSgd, {"problem.dim=99999999999999999999"}, {"problem.dim: integer out of range"});
  expect_error(kQuadSgd, {"run.seed=18446744073709551616"}, {"run.seed: integer out of range"});
}

// ------------------------------------------------------------------------------------------------ errors

TEST(Deck, FileErrors) {
  const std::string missing = kDecks + "no_such_deck.yaml";
  try {
    parse_deck(missing);
    FAIL() << "no DeckError";
  } catch (const DeckError& e) {
    EXPECT_NE(std::string(e.what()).find(missing + ": cannot open"), std::string::npos) << e.what();
  }
  try {
    parse_deck(kDecks);
    FAIL() << "no DeckError";
  } catch (const DeckError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
  // A DeckError is a UserError: main() prints it and exits 2 instead of aborting MPI.
  EXPECT_THROW(parse_deck(missing), UserError);
  EXPECT_THROW(parse_deck(missing), std::runtime_error);
}

TEST(Deck, YamlSyntaxErrorNamesLineAndColumn) {
  // yaml-cpp's marks are 0-based; the message gives them 1-based, as editors count.
  const std::string msg = error_of("problem:\n  kind: quadratic\n  dim: 3: 4\nrun:\n  iterations: 3\n");
  EXPECT_EQ(msg, "deck.yaml:3:9: YAML syntax error: illegal map value");
  const std::string flow = error_of("problem:\n  kind: quadratic\n  dim: [1, 2}\n");
  EXPECT_EQ(flow.rfind("deck.yaml:3:13: YAML syntax error: ", 0), 0u) << flow;
  const std::string tab = error_of("problem:\n  kind: quadratic\n\t dim: 3\n");
  EXPECT_EQ(tab.rfind("deck.yaml:3:", 0), 0u) << tab;
  EXPECT_NE(tab.find("YAML syntax error"), std::string::npos) << tab;
  // Bytes that are not UTF-8 are refused where they are (found by tests/fuzz/fuzz_deck: they did not survive the
  // effective deck); valid multi-byte characters pass.
  EXPECT_EQ(error_of("problem: {kind: quadratic, dim: 3}\nrun: {output: \"a\xff.h5\"}\n"),
            "deck.yaml:2:17: not valid UTF-8 (byte 0xFF); a deck is YAML, which is Unicode");
  EXPECT_NE(error_of("problem: {kind: quadratic, dim: 3}  # \xC0\xAF overlong\n").find("not valid UTF-8 (byte 0xC0)"),
            std::string::npos);
  EXPECT_EQ(error_of("# caf\xC3\xA9 \xE2\x82\xAC\nproblem: {kind: quadratic, dim: 3}\n").find("UTF-8"), std::string::npos);
  EXPECT_EQ(error_of(std::string("problem: {kind: quadratic, dim: 3}\nrun: {output: a\0b.h5}\n", 57)),
            "deck.yaml:2:16: control character 0x00 (YAML allows tab, line feed and carriage return only)");
  // yaml-cpp's LoadAll never returns on a text that starts with a flow entry (found by tests/fuzz/fuzz_deck).
  EXPECT_EQ(error_of(","), "deck.yaml:1:1: YAML syntax error: unexpected ',' outside a flow collection ([...] or {...})");
  EXPECT_EQ(error_of(", problem: {kind: quadratic}\n").rfind("deck.yaml:1:1: YAML syntax error: unexpected ','", 0), 0u);
}

TEST(Deck, StructuralErrors) {
  expect_error("", {"empty deck"});
  expect_error("# nothing but a comment\n\n", {"empty deck"});
  expect_error("---\n", {"empty deck"});
  expect_error("- problem\n- run\n", {"top level must be a mapping", "got a list"});
  expect_error("just words\n", {"top level must be a mapping", "got 'just words'"});
  expect_error(kQuadSgd + "---\nrun:\n  iterations: 3\n", {"2 YAML documents"});
  expect_error(kQuadSgd + "optimiser:\n  lr: 1\n",
               {"unknown section 'optimiser'", "line 9", "did you mean 'optimizer'?"});
  expect_error(kQuadSgd + "lr: 1\n", {"unknown section 'lr'", "did you mean 'optimizer.lr'?"});
  expect_error(kQuadSgd + "workers: 3\n", {"section 'workers'", "must be a mapping", "got '3'"});
  expect_error(kQuadSgd + "workers: [1]\n", {"section 'workers'", "got a list"});
  expect_error(kQuadSgd + "run:\n  seed: 1\n", {"duplicate section 'run'", "lines 7 and 9"});
  expect_error("problem:\n  kind: quadratic\n  dim: 10\n  dim: 11\n", {"duplicate key 'problem.dim'", "lines 3 and 4"});
}

TEST(Deck, UnknownKeysSuggestNearestName) {
  expect_error("problem:\n  kind: quadratic\n  dimm: 10\n",
               {"deck.yaml: unknown key 'problem.dimm'", "line 3", "did you mean 'dim'?"});
  expect_error(kQuadSgd + "  iteration: 5\n", {"unknown key 'run.iteration'", "did you mean 'iterations'?"});
  expect_error(kQuadSgd + "  lr: 0.1\n", {"unknown key 'run.lr'", "did you mean 'optimizer.lr'?"});
  // Nothing close: no suggestion.
  const std::string far = error_of(kQuadSgd + "  zzzzzzzz: 1\n");
  EXPECT_NE(far.find("unknown key 'run.zzzzzzzz'"), std::string::npos) << far;
  EXPECT_EQ(far.find("did you mean"), std::string::npos) << far;
  // Enumerated values get the list and a suggestion.
  expect_error(
      deck("  kind: quadratic\n  dim: 3\n", "  kind: majority_vot\n  lr: 1\n"),
      {"optimizer.kind: expected one of sgd, majority_vote,", "got 'majority_vot'", "did you mean 'majority_vote'?"});
  expect_error(deck("  kind: quadratic\n  dim: 3\n  noise_coords: every\n", "  kind: sgd\n  lr: 1\n"),
               {"problem.noise_coords: expected one of first, all, got 'every'"});
}

TEST(Deck, WrongTypesNameKeyAndLine) {
  expect_error("problem:\n  kind: quadratic\n  dim: ten\noptimizer:\n  kind: sgd\n  lr: 1\nrun:\n  iterations: 1\n",
               {"deck.yaml: problem.dim: expected an integer, got 'ten' (line 3)"});
  expect_error(deck("  kind: quadratic\n  dim: 1.5\n", "  kind: sgd\n  lr: 1\n"),
               {"problem.dim: expected an integer, got '1.5'"});
  expect_error(deck("  kind: quadratic\n  dim: 3\n", "  kind: sgd\n  lr: true\n"),
               {"optimizer.lr: expected a number, got 'true'"});
  expect_error(deck("  kind: quadratic\n  dim: 3\n", "  kind: sgd\n  lr: \"0.1\"\n"),
               {"optimizer.lr: expected a number, got the string '0.1'"});
  expect_error(deck("  kind: quadratic\n  dim: 3\n", "  kind: sgd\n  lr:\n"),
               {"optimizer.lr: expected a number, got a null"});
  expect_error(deck("  kind: [quadratic]\n", "  kind: sgd\n  lr: 1\n"),
               {"problem.kind: expected one of", "got a list"});
  expect_error(deck("  kind: quadratic\n  dim: 3\n", "  kind: sgd\n  lr: 1\n", "  output: {a: 1}\n"),
               {"run.output: expected a path, got a mapping"});
  expect_error(deck("  kind: quadratic\n  dim: 3\n", "  kind: sgd\n  lr: 1\n", "  output: ''\n"),
               {"run.output: expected a path, got an empty string"});
  expect_error(deck("  kind: quadratic\n  dim: 3\n", "  kind: sgd\n  lr: 1\n", "  batch: fulll\n"),
               {"run.batch: expected an integer >= 1 or 'full', got 'fulll'"});
  expect_error(deck("  kind: quadratic\n  dim: 3\n", "  kind: sgd\n  lr: 1\n", "  batch: 2.5\n"),
               {"run.batch: expected an integer >= 1 or 'full'"});
}

TEST(Deck, OutOfRangeValues) {
  const std::string q = "  kind: quadratic\n  dim: 3\n";
  const std::string ams = "  kind: amsgrad\n  lr: 1\n";
  expect_error(deck(q, ams + "  beta1: 1.5\n"), {"deck.yaml: optimizer.beta1: must be in [0, 1), got 1.5"});
  expect_error(deck(q, ams + "  beta1: 1\n"), {"optimizer.beta1: must be in [0, 1), got 1"});
  expect_error(deck(q, ams + "  beta2: -0.1\n"), {"optimizer.beta2: must be in [0, 1), got -0.1"});
  expect_error(deck(q, ams + "  nu: 0\n"), {"optimizer.nu: must be > 0, got 0"});
  expect_error(deck(q, "  kind: sgd\n  lr: 0\n"), {"optimizer.lr: must be > 0, got 0"});
  expect_error(deck(q, "  kind: sgd\n  lr: -1e-3\n"), {"optimizer.lr: must be > 0, got -1e-3"});
  expect_error(deck(q, "  kind: ef21\n  lr: 1\n  k_ratio: 0\n"), {"optimizer.k_ratio: must be in (0, 1], got 0"});
  expect_error(deck(q, "  kind: ef21\n  lr: 1\n  k_ratio: 1.01\n"), {"optimizer.k_ratio: must be in (0, 1], got 1.01"});
  expect_error(deck(q, "  kind: adagrad\n  lr: 1\n  eps: 0\n"), {"optimizer.eps: must be > 0"});
  expect_error(deck(q, "  kind: local_sgd\n  lr: 1\n  sync_period: 0\n"),
               {"optimizer.sync_period: must be >= 1, got 0"});
  expect_error(deck(q, "  kind: local_adaalter\n  lr: 1\n  b0: 0\n"), {"optimizer.b0: must be > 0"});
  expect_error(deck(q, "  kind: onebit_adam\n  lr: 1\n"),
               {"optimizer.warmup_steps", "required", "onebit_adam"});
  expect_error(deck(q, "  kind: onebit_adam\n  lr: 1\n  warmup_steps: 0\n"), {"optimizer.warmup_steps", ">= 1"});
  expect_error(deck(q, "  kind: onebit_adam\n  lr: 1\n  warmup_steps: 5\n  eps: 1\n"), {"optimizer.eps", "onebit_adam"});
  expect_error(deck(q, "  kind: local_adaalter\n  lr: 1\n  warmup_steps: -1\n"),
               {"optimizer.warmup_steps: must be >= 0, got -1"});
  expect_error(deck(q, "  kind: majority_vote\n  lr: 1\n  lr_schedule: adaptive\n  lipschitz: 0\n"),
               {"optimizer.lipschitz: must be > 0"});
  expect_error(deck("  kind: quadratic\n  dim: 0\n", ams), {"problem.dim: must be >= 1, got 0"});
  expect_error(deck("  kind: rosenbrock\n  dim: 1\n", ams),
               {"problem.dim: must be >= 2 for problem.kind rosenbrock, got 1"});
  expect_error(deck(q + "  noise_std: -1\n", ams), {"problem.noise_std: must be >= 0, got -1"});
  expect_error(deck("  kind: logistic\n  data: a\n  lambda: -0.5\n", ams), {"problem.lambda: must be >= 0"});
  expect_error(deck("  kind: mlp\n  hidden: 0\n", ams), {"problem.hidden: must be >= 1"});
  expect_error(deck("  kind: cnn\n  channels: 32\n", ams), {"problem.channels", "a list of two channel counts"});
  expect_error(deck("  kind: cnn\n  channels: [32, 64, 128]\n", ams), {"problem.channels", "got 3 entries"});
  expect_error(deck("  kind: cnn\n  channels: [0, 64]\n", ams), {"problem.channels[0]: must be in 1..4096, got 0"});
  expect_error(deck("  kind: cnn\n  padding: full\n", ams), {"problem.padding", "same", "valid"});
  expect_error(deck("  kind: mlp\n  channels: [4, 8]\n", ams), {"problem.channels: not used by problem.kind mlp"});
  expect_error(deck("  kind: mlp\n  padding: same\n", ams), {"problem.padding: not used by problem.kind mlp"});
  expect_error(deck("  kind: mlp\n  products: blas\n", ams), {"problem.products", "library", "fixed_order"});
  expect_error(deck("  kind: quadratic\n  dim: 3\n  products: library\n", ams),
               {"problem.products: not used by problem.kind quadratic"});
  expect_error(deck("  kind: mlp\n", ams, "  objective_every: -1\n"), {"run.objective_every: must be >= 0"});
  expect_error(deck("  kind: mlp\n", ams, "  objective_sample: 0\n"), {"run.objective_sample: must be >= 1"});
  expect_error(deck("  kind: quadratic\n  dim: 3\n", ams, "  objective_sample: 10\n"),
               {"run.objective_sample: not used by problem.kind quadratic"});
  expect_error(deck("  kind: quadratic\n  dim: 3\n", ams, "  exchange_chunk: -5\n"), {"run.exchange_chunk: must be >= 0"});
  expect_error(deck("  kind: quadratic\n  dim: 3\n", ams, "  exchange_chunk: big\n"),
               {"run.exchange_chunk", "an integer >= 0 or 'auto'"});
  const std::string fm = "  kind: logistic\n  data_format: fashion_mnist\n";
  expect_error(deck(fm + "  classes: [3, 3]\n", ams), {"problem.classes:", "distinct", "the class 3 twice"});
  expect_error(deck(fm + "  classes: [0, 10]\n", ams), {"problem.classes[1]: must be in 0..9, got 10"});
  expect_error(deck(fm + "  classes: [-1, 2]\n", ams), {"problem.classes[0]: must be in 0..9, got -1"});
  expect_error(deck(fm + "  classes: [1]\n", ams), {"problem.classes:", "got 1 entries"});
  expect_error(deck(fm + "  classes: [1, 2, 3]\n", ams), {"problem.classes:", "got 3 entries"});
  expect_error(deck(fm + "  classes: 1\n", ams), {"problem.classes: expected a list of two distinct integers"});
  expect_error(deck(fm + "  classes: [a, 2]\n", ams), {"problem.classes[0]: expected an integer, got 'a'"});
  expect_error(deck(q, ams, "  batch: 0\n"), {"run.batch: must be >= 1, got 0"});
  expect_error(deck(q, ams, "  batch: -3\n"), {"run.batch: must be >= 1, got -3"});
  expect_error(deck(q, ams, "  seed: -1\n"), {"run.seed: must be >= 0, got -1"});
  expect_error(deck(q, ams, "  log_every: 0\n"), {"run.log_every: must be >= 1, got 0"});
  expect_error("problem:\n  kind: quadratic\n  dim: 3\noptimizer:\n  kind: sgd\n  lr: 1\nrun:\n  iterations: 0\n",
               {"run.iterations: must be >= 1, got 0", "(line 8)"});
  expect_error(deck(q, ams, "workers:\n  per_rank: 0\n"), {"workers.per_rank: must be >= 1, got 0"});
}

TEST(Deck, RequiredKeys) {
  expect_error("optimizer:\n  kind: sgd\n  lr: 1\nrun:\n  iterations: 3\n",
               {"problem.kind: required", "no section 'problem'"});
  expect_error(deck("  dim: 3\n", "  kind: sgd\n  lr: 1\n"), {"problem.kind: required (one of quadratic, rosenbrock"});
  expect_error(deck("  kind: quadratic\n", "  kind: sgd\n  lr: 1\n"),
               {"problem.dim: required for problem.kind quadratic"});
  expect_error(deck("  kind: logistic\n", "  kind: sgd\n  lr: 1\n"),
               {"problem.data: required when problem.data_format is libsvm"});
  expect_error(deck("  kind: mlp\n", "  lr: 1\n"), {"optimizer.kind: required (one of sgd,"});
  expect_error(deck("  kind: mlp\n", "  kind: sgd\n"), {"optimizer.lr: required"});
  expect_error(deck("  kind: mlp\n", "  kind: majority_vote\n  lr: 1\n  lr_schedule: adaptive\n"),
               {"deck.yaml: optimizer.lipschitz: required when optimizer.lr_schedule is adaptive"});
  expect_error("problem:\n  kind: mlp\noptimizer:\n  kind: sgd\n  lr: 1\n",
               {"run.iterations: required", "no section 'run'"});
  expect_error("problem:\n  kind: mlp\noptimizer:\n  kind: sgd\n  lr: 1\nrun:\n", {"run.iterations: required"});
}

TEST(Deck, KeysTheProblemOrAlgorithmDoesNotUseAreRefused) {
  const std::string q = "  kind: quadratic\n  dim: 3\n";
  const std::string sgd = "  kind: sgd\n  lr: 1\n";
  expect_error(deck(q, sgd + "  sync_period: 4\n"),
               {"deck.yaml: optimizer.sync_period: not used by optimizer.kind sgd"});
  expect_error(deck(q, sgd + "  beta1: 0.5\n"), {"optimizer.beta1: not used by optimizer.kind sgd"});
  expect_error(deck(q, "  kind: amsgrad\n  lr: 1\n  eps: 1e-6\n"),
               {"optimizer.eps: not used by optimizer.kind amsgrad"});
  expect_error(deck(q, "  kind: amsgrad\n  lr: 1\n  compressor: top_k\n"),
               {"optimizer.compressor: not used by optimizer.kind amsgrad"});
  expect_error(deck(q, "  kind: cd_adam\n  lr: 1\n  k_ratio: 0.1\n"),
               {"optimizer.k_ratio: not used by optimizer.compressor scaled_sign"});
  expect_error(deck(q, "  kind: ef21\n  lr: 1\n  compressor: scaled_sign\n  k_ratio: 0.1\n"),
               {"optimizer.k_ratio: not used by optimizer.compressor scaled_sign"});
  expect_error(deck(q, "  kind: ef_signsgd\n  lr: 1\n  broadcast: mean\n"),
               {"optimizer.broadcast: not used by optimizer.kind ef_signsgd"});
  expect_error(deck(q, "  kind: onebit_adam\n  lr: 1\n  warmup_steps: 2\n  estimate_start: gradient\n"),
               {"optimizer.estimate_start: not used by optimizer.kind onebit_adam"});
  expect_error(deck(q, "  kind: ef21\n  lr: 1\n  broadcast: plain\n"),
               {"optimizer.broadcast: expected one of markov, mean, got 'plain'"});
  expect_error(deck(q, "  kind: cd_adam\n  lr: 1\n  estimate_start: exact\n"),
               {"optimizer.estimate_start: expected one of zero, gradient, got 'exact'"});
  expect_error(deck(q, "  kind: local_sgd\n  lr: 1\n  b0: 2\n"),
               {"optimizer.b0: not used by optimizer.kind local_sgd"});
  // QSGD's keys: levels with qsgd and ef_qsgd only (TernGrad is s = 1), bucket with the three.
  expect_error(deck(q, "  kind: terngrad\n  lr: 1\n  levels: 4\n"), {"optimizer.levels: not used by optimizer.kind terngrad"});
  expect_error(deck(q, "  kind: sgd\n  lr: 1\n  levels: 4\n"), {"optimizer.levels: not used by optimizer.kind sgd"});
  expect_error(deck(q, "  kind: ef_signsgd\n  lr: 1\n  bucket: 64\n"),
               {"optimizer.bucket: not used by optimizer.kind ef_signsgd"});
  expect_error(deck(q, "  kind: qsgd\n  lr: 1\n  levels: 0\n"), {"optimizer.levels: must be >= 1, got 0"});
  expect_error(deck(q, "  kind: ef_qsgd\n  lr: 1\n  bucket: 0\n"), {"optimizer.bucket: must be >= 1, got 0"});
  expect_error(deck(q, "  kind: terngrad\n  lr: 1\n  bucket: -3\n"), {"optimizer.bucket: must be >= 1, got -3"});
  expect_error(deck(q, "  kind: qsgd\n  lr: 1\n  levels: 2.5\n"), {"optimizer.levels"});
  EXPECT_EQ(parse_deck_string(deck(q, "  kind: qsgd\n  lr: 1\n  levels: 16\n  bucket: 64\n"), "d").optimizer.levels, 16);
  expect_error(deck(q, "  kind: majority_vote\n  lr: 1\n  lipschitz: 3\n"),
               {"optimizer.lipschitz: not used by optimizer.lr_schedule constant"});
  expect_error(deck(q, "  kind: stochastic_sign\n  lr: 1\n  vote: samples\n"),
               {"optimizer.vote: not used by optimizer.kind stochastic_sign"});
  expect_error(deck(q + "  hidden: 8\n", sgd), {"problem.hidden: not used by problem.kind quadratic", "(line 4)"});
  expect_error(deck("  kind: rosenbrock\n  noise_coords: first\n", sgd),
               {"problem.noise_coords: not used by problem.kind rosenbrock"});
  expect_error(deck("  kind: mlp\n  x0: 1\n", sgd), {"problem.x0: not used by problem.kind mlp"});
  expect_error(deck("  kind: mlp\n  dim: 10\n", sgd), {"problem.dim: not used by problem.kind mlp"});
  expect_error(deck("  kind: logistic\n  data: a\n  classes: [0, 1]\n", sgd),
               {"problem.classes: not used by problem.data_format libsvm"});
  expect_error(deck("  kind: logistic\n  data: a\n  train_images: x\n", sgd),
               {"problem.train_images: not used by problem.data_format libsvm"});
  expect_error(deck("  kind: logistic\n  data_format: fashion_mnist\n  data: a\n", sgd),
               {"problem.data: not used by problem.data_format fashion_mnist"});
  expect_error(deck("  kind: logistic\n  data_format: fashion_mnist\n  test_labels: a\n", sgd),
               {"problem.test_labels: not used by problem.kind logistic"});
  expect_error(deck(q + "  data_format: libsvm\n", sgd), {"problem.data_format: not used by problem.kind quadratic"});
}

// ------------------------------------------------------------------------------------------------ overrides

TEST(Deck, OverridesWinAndAreChecked) {
  const std::string fm = deck("  kind: logistic\n  data_format: fashion_mnist\n  classes: [3, 5]\n",
                              "  kind: majority_vote\n  lr: 0.1\n", "  batch: 4\n");
  const Deck d =
      parse_deck_string(fm, "deck.yaml",
                        {"run.batch=full", "problem.classes=[0,6]", "optimizer.lr=1e-3", "optimizer.lr=2e-3",
                         "optimizer.lr_schedule=inv_sqrt", "workers.per_rank = 3", "run.output=out dir/h.h5"});
  EXPECT_TRUE(d.run.batch_full);
  EXPECT_EQ(d.problem.classes, (std::array<int, 2>{{0, 6}}));
  EXPECT_EQ(d.optimizer.lr, 2e-3);  // the later --set wins
  EXPECT_EQ(d.optimizer.lr_schedule, LrSchedule::inv_sqrt);
  EXPECT_EQ(d.workers.per_rank, 3);  // a section the deck does not have
  EXPECT_EQ(d.run.output, "out dir/h.h5");
  // Without overrides the deck's own values.
  const Deck plain = parse_deck_string(fm, "deck.yaml");
  EXPECT_EQ(plain.run.batch, 4);
  EXPECT_EQ(plain.problem.classes, (std::array<int, 2>{{3, 5}}));
  // Overrides of a file deck.
  const Deck f = parse_deck(kDecks + "rosenbrock_amsgrad.yaml", {"problem.dim=4", "optimizer.beta1=0.5"});
  EXPECT_EQ(f.problem.dim, 4);
  EXPECT_EQ(f.optimizer.beta1, 0.5);

  // Checked like deck values, and the message says the value came from --set.
  expect_error(fm, {"optimizer.lr=-1"}, {"deck.yaml: optimizer.lr: must be > 0, got -1", "--set optimizer.lr=-1"});
  expect_error(kQuadSgd, {"optimizer.kind=amsgrad", "optimizer.beta1=1.5"},
               {"optimizer.beta1: must be in [0, 1), got 1.5"});
  expect_error(kQuadSgd, {"problem.dim="}, {"problem.dim: expected an integer, got a null"});
  // Changing the algorithm makes a deck key unused; adding a required setting through --set works.
  expect_error(kQuadSgd, {"optimizer.kind=majority_vote", "optimizer.lr_schedule=adaptive"},
               {"optimizer.lipschitz: required when optimizer.lr_schedule is adaptive"});
  EXPECT_EQ(
      parse_deck_string(kQuadSgd, "deck.yaml",
                        {"optimizer.kind=majority_vote", "optimizer.lr_schedule=adaptive", "optimizer.lipschitz=4"})
          .optimizer.lipschitz,
      4.0);
  expect_error(deck("  kind: quadratic\n  dim: 3\n", "  kind: local_sgd\n  lr: 1\n  sync_period: 2\n"),
               {"optimizer.kind=sgd"}, {"optimizer.sync_period: not used by optimizer.kind sgd", "(line 7)"});
  expect_error(kQuadSgd, {"problem.kind=mlp"}, {"problem.dim: not used by problem.kind mlp"});
}

TEST(Deck, BadSetArguments) {
  expect_error(kQuadSgd, {"problem.dim"}, {"bad --set 'problem.dim': expected section.key=value"});
  expect_error(kQuadSgd, {"dim=3"}, {"bad --set 'dim=3'", "no section", "did you mean 'problem.dim'?"});
  expect_error(kQuadSgd, {"problm.dim=3"},
               {"bad --set 'problm.dim=3'", "unknown section 'problm'", "did you mean 'problem'?"});
  expect_error(kQuadSgd, {"problem.dimm=3"},
               {"bad --set 'problem.dimm=3'", "unknown key 'problem.dimm'", "did you mean 'dim'?"});
  expect_error(kQuadSgd, {"problem.classes.0=3"}, {"unknown key 'problem.classes.0'"});
  expect_error(kQuadSgd, {"problem.dim=[1,"}, {"bad --set 'problem.dim=[1,'", "YAML syntax error in the value"});
  expect_error(kQuadSgd, {"=3"}, {"bad --set '=3'"});
}

// ------------------------------------------------------------------------------------------------ effective deck

TEST(Deck, EffectiveConfigRoundTrips) {
  std::vector<Deck> decks;
  for (const char* f : {"quadratic_majority_vote.yaml", "rosenbrock_amsgrad.yaml", "logistic_libsvm_ef21.yaml",
                        "logistic_fmnist_cd_adam.yaml", "mlp_local_adaalter.yaml"})
    decks.push_back(parse_deck(kDecks + f));
  // Values that need care: doubles without a short decimal form, paths that look like other YAML, the largest
  // seed, explicit logistic dim, top_k with cd_adam, ef21 with scaled_sign.
  decks.push_back(parse_deck_string(
      deck("  kind: logistic\n  dim: 123\n  data: 'true'\n  lambda: 0.30000000000000004\n",
           "  kind: cd_adam\n  lr: 3.3333333333333335e-07\n  compressor: top_k\n  k_ratio: 0.1\n  nu: 1e-300\n",
           "  output: \"a: b # c\"\n  seed: 18446744073709551615\n"),
      "deck.yaml"));
  decks.push_back(parse_deck_string(deck("  kind: quadratic\n  dim: 9\n  x0: -0.0\n  noise_std: 5e-324\n",
                                         "  kind: ef21\n  lr: 1.7976931348623157e308\n  compressor: scaled_sign\n"
                                         "  broadcast: mean\n  estimate_start: gradient\n"),
                                    "deck.yaml", {"run.output=123", "problem.noise_coords=first"}));
  for (const Deck& d : decks) {
    const std::string text = effective_config_yaml(d);
    SCOPED_TRACE(text);
    const Deck again = parse_deck_string(text, d.path);
    EXPECT_TRUE(again == d);
    EXPECT_EQ(effective_config_yaml(again), text);  // a fixed point
  }
  // The effective deck holds the resolved defaults and only the keys the run uses.
  const std::string rb = effective_config_yaml(decks[1]);
  for (const char* want : {"kind: rosenbrock", "dim: 10", "x0: 0.0", "noise_std: 0.0", "kind: amsgrad", "beta1: 0.9",
                           "beta2: 0.99", "nu: 1e-08", "iterations: 2000", "batch: 1", "seed: 0", "log_every: 20",
                           "output: \"terse_history.h5\"", "per_rank: 1"})
    EXPECT_NE(rb.find(want), std::string::npos) << want << " not in\n" << rb;
  for (const char* absent : {"noise_coords", "lambda", "sync_period", "eps", "compressor", "lr_schedule", "hidden"})
    EXPECT_EQ(rb.find(absent), std::string::npos) << absent << " in\n" << rb;
  const std::string ef = effective_config_yaml(decks[2]);
  EXPECT_NE(ef.find("batch: full"), std::string::npos) << ef;
  EXPECT_NE(ef.find("compressor: top_k"), std::string::npos) << ef;
  EXPECT_EQ(ef.find("dim:"), std::string::npos) << ef;  // unset: from the data
  // An edited Deck (the driver applies --output this way) is written as edited.
  Deck edited = decks[0];
  edited.run.output = "elsewhere.h5";
  EXPECT_EQ(parse_deck_string(effective_config_yaml(edited), edited.path).run.output, "elsewhere.h5");
  EXPECT_FALSE(parse_deck_string(effective_config_yaml(edited), edited.path) == decks[0]);
}

// ------------------------------------------------------------------------------------------------ the document

/// Every "section.key" named in the first column of the tables of docs/deck.md, under '## `section`' headings.
std::vector<std::string> keys_in_doc(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::vector<std::string> keys;
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.rfind("## `", 0) == 0) {
      section = line.substr(4, line.find('`', 4) - 4);
      continue;
    }
    if (line.rfind("## ", 0) == 0) {  // a section that is not a deck section (e.g. "What each algorithm runs")
      section.clear();
      continue;
    }
    if (line.rfind("| `", 0) != 0 || section.empty()) continue;  // not a table body row
    const std::string first = line.substr(1, line.find('|', 1) - 1);
    for (std::size_t a = first.find('`'); a != std::string::npos; a = first.find('`', first.find('`', a + 1) + 1)) {
      const std::size_t b = first.find('`', a + 1);
      keys.push_back(section + "." + first.substr(a + 1, b - a - 1));
    }
  }
  return keys;
}

TEST(Deck, AcceptedKeysAreThoseOfTheDocument) {
  const std::vector<std::string> doc = keys_in_doc(std::string(TERSE_TEST_DATA_DIR) + "/../../docs/deck.md");
  const std::vector<std::string> ours = accepted_keys();
  // The document's four-key row is read as four keys.
  for (const char* k : {"problem.train_images", "problem.train_labels", "problem.test_images", "problem.test_labels"})
    EXPECT_NE(std::find(doc.begin(), doc.end(), k), doc.end()) << k;
  EXPECT_EQ(doc.size(), 50u);
  EXPECT_EQ(std::set<std::string>(doc.begin(), doc.end()).size(), doc.size()) << "a key listed twice in the doc";
  EXPECT_EQ(doc, ours);  // same keys, same order
  // And every accepted key is really accepted: setting it is never "unknown".
  for (const auto& k : ours) {
    const std::string msg = error_of("{}\n", {k + "=[]"});  // an empty mapping is not "empty": fails on the value
    EXPECT_EQ(msg.find("unknown"), std::string::npos) << msg;
  }
}

}  // namespace

// Every deck shipped in inputs/ parses, and its effective text parses back to the same deck.
TEST(DeckFiles, EveryInputDeckParses) {
  std::vector<std::filesystem::path> decks;
  // inputs/ and its subdirectories (inputs/validation/: the seed experiments).
  for (const auto& e : std::filesystem::recursive_directory_iterator(TERSE_INPUTS_DIR))
    if (e.path().extension() == ".yaml") decks.push_back(e.path());
  ASSERT_GE(decks.size(), 8u) << "not every deck found in " << TERSE_INPUTS_DIR;
  for (const auto& p : decks) {
    SCOPED_TRACE(p.string());
    terse::Deck deck;
    ASSERT_NO_THROW(deck = terse::parse_deck(p.string()));
    EXPECT_EQ(terse::parse_deck_string(terse::effective_config_yaml(deck), deck.path), deck);
    EXPECT_NE(deck.run.output, "terse_history.h5") << "a shipped deck names its own output file";
  }
}

// ------------------------------------------------------------------------------------------------ run.checkpoint

namespace {

TEST(DeckCheckpoint, MappingAndDefaults) {
  const Deck none = parse_deck_string(kQuadSgd, "deck.yaml");
  EXPECT_EQ(none.run.checkpoint_every, 0);
  EXPECT_EQ(none.run.checkpoint_path, "terse_history.checkpoint.h5");
  const Deck d = parse_deck_string(kQuadSgd + "  output: out/r.h5\n  checkpoint: {every: 50}\n", "deck.yaml");
  EXPECT_EQ(d.run.checkpoint_every, 50);
  EXPECT_EQ(d.run.checkpoint_path, "out/r.checkpoint.h5");
  const Deck e = parse_deck_string(kQuadSgd + "  checkpoint:\n    path: c.h5\n    every: 7\n", "deck.yaml");
  EXPECT_EQ(e.run.checkpoint_every, 7);
  EXPECT_EQ(e.run.checkpoint_path, "c.h5");
  EXPECT_EQ(default_checkpoint_path("x"), "x.checkpoint.h5");
}

TEST(DeckCheckpoint, SetEntriesMergeIntoTheMapping) {
  const Deck d = parse_deck_string(kQuadSgd + "  checkpoint: {path: c.h5, every: 7}\n", "deck.yaml",
                                   {"run.checkpoint.every=9"});
  EXPECT_EQ(d.run.checkpoint_every, 9);
  EXPECT_EQ(d.run.checkpoint_path, "c.h5");
  const Deck e = parse_deck_string(kQuadSgd, "deck.yaml", {"run.checkpoint.every=3", "run.checkpoint.path=z.h5"});
  EXPECT_EQ(e.run.checkpoint_every, 3);
  EXPECT_EQ(e.run.checkpoint_path, "z.h5");
  const Deck f = parse_deck_string(kQuadSgd, "deck.yaml", {"run.checkpoint={every: 4}"});
  EXPECT_EQ(f.run.checkpoint_every, 4);
}

TEST(DeckCheckpoint, BadEntriesNameTheKey) {
  expect_error(kQuadSgd + "  checkpoint: c.h5\n", {"run.checkpoint", "expected a mapping", "line 9"});
  expect_error(kQuadSgd + "  checkpoint: {path: c.h5}\n", {"run.checkpoint", "every: required"});
  expect_error(kQuadSgd + "  checkpoint:\n    every: 0\n", {"run.checkpoint.every", "must be >= 1", "line 10"});
  expect_error(kQuadSgd + "  checkpoint:\n    every: 5\n    evrey: 5\n", {"run.checkpoint.evrey", "unknown key", "line 11"});
  expect_error(kQuadSgd + "  checkpoint: {every: ten}\n", {"run.checkpoint.every", "expected an integer"});
  expect_error(kQuadSgd + "  output: a.h5\n  checkpoint: {path: a.h5, every: 5}\n", {"run.checkpoint.path", "same file"});
  expect_error(kQuadSgd, {"run.checkpoint.often=3"}, {"unknown key 'run.checkpoint.often'"});
}

TEST(DeckCheckpoint, EffectiveDeckKeepsIt) {
  const Deck d = parse_deck_string(kQuadSgd + "  checkpoint: {path: c.h5, every: 7}\n", "deck.yaml");
  const Deck back = parse_deck_string(effective_config_yaml(d), "deck.yaml");
  EXPECT_EQ(back.run.checkpoint_every, 7);
  EXPECT_EQ(back.run.checkpoint_path, "c.h5");
}

}  // namespace

TEST(Deck, ExchangeChunkIsAutoOrCoordinates) {
  const auto chunk = [](const std::string& v) {
    return parse_deck_string("problem: {kind: quadratic, dim: 3}\noptimizer: {kind: majority_vote, lr: 0.1}\n"
                             "run: {iterations: 1" + (v.empty() ? std::string() : ", exchange_chunk: " + v) + "}\n",
                             "test:chunk")
        .run;
  };
  // auto (the default): chunks of 2^18 coordinates from 3 ranks on, one chunk on 1 or 2 (bench/README.md, Overlap).
  for (const std::string v : {"", "auto"}) {
    const RunConfig r = chunk(v);
    EXPECT_EQ(r.exchange_chunk, RunConfig::exchange_chunk_auto);
    EXPECT_EQ(r.exchange_chunk_for(1), 0);
    EXPECT_EQ(r.exchange_chunk_for(2), 0);
    EXPECT_EQ(r.exchange_chunk_for(3), 262144);
    EXPECT_EQ(r.exchange_chunk_for(8), 262144);
  }
  EXPECT_EQ(chunk("0").exchange_chunk_for(4), 0);
  EXPECT_EQ(chunk("4096").exchange_chunk_for(2), 4096);
  EXPECT_NE(effective_config_yaml(parse_deck_string("problem: {kind: quadratic, dim: 3}\n"
                                                    "optimizer: {kind: majority_vote, lr: 0.1}\nrun: {iterations: 1}\n",
                                                    "test:chunk"))
                .find("exchange_chunk: auto"),
            std::string::npos);
}
