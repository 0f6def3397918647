#pragma once
// terse_Deck.hpp: the input deck of `terse run DECK.yaml [--set section.key=value ...]`, parsed and checked.
//
// The contract is docs/deck.md: four sections (problem, optimizer, run, workers), every key with a type, a
// default (or required) and a range, and the problems / algorithms that use it. parse_deck() refuses, with a
// DeckError naming the file and `section.key` (and the line for YAML syntax errors), a deck with
//   - a YAML syntax error, an empty deck, several YAML documents, a top level that is not a mapping,
//   - an unknown or duplicated section or key (unknown names get a nearest-name suggestion),
//   - a value of the wrong type (integers are plain decimal: 1000 is accepted, 1e3, 1000.0 and "1000" are
//     not; numbers are YAML decimals or integers, never booleans, quoted strings, NaN or infinities),
//   - a value out of its range, a missing required key,
//   - a key that the chosen problem or algorithm does not use (e.g. optimizer.sync_period with sgd).
// The algorithms and problems are those of the seed papers (seed 000: signSGD and majority vote, Alg. 1-2,
// Prop. 3; seed 001: Alg. 1 Option 2; seed 002: Local AdaAlter, Alg. 3; seed 004: nonconvex logistic
// regression eq. (7.1)); this file only reads their settings.
//
// After parsing, every key the chosen problem and algorithm use holds its value (the default resolved when the
// deck does not give it); keys they do not use keep the struct's initial values. std::optional marks the
// only values that may stay unknown: problem.dim of logistic (then the largest feature index of the data) and
// of mlp (unused), problem.data (only with data_format libsvm), optimizer.lipschitz (only with adaptive).
#include "terse_Error.hpp"
#include "terse_Spec.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace terse {

/// A deck the user must fix. what() reads "FILE: section.key: problem" (or "FILE:LINE:COL: YAML syntax error:
/// ..."); main() prints it and exits with status 2 (it is a UserError).
struct DeckError : UserError {
  using UserError::UserError;
};

enum class ProblemKind { quadratic, rosenbrock, logistic, mlp, cnn };
/// The problems that classify images: a test set, the test accuracy, sampled loss estimates (mlp, cnn).
inline bool image_classifier(ProblemKind k) { return k == ProblemKind::mlp || k == ProblemKind::cnn; }
enum class NoiseCoords { first, all };
enum class DataFormat { libsvm, fashion_mnist };
enum class OptimizerKind {
  sgd,
  majority_vote,
  stochastic_sign,
  ef_signsgd,
  amsgrad,
  amsgrad_naive,
  amsgrad_ef,
  cd_adam,
  ef21,
  adagrad,
  local_sgd,
  local_adaalter,
  onebit_adam,
  signum,
  qsgd,
  ef_qsgd,
  terngrad
};
enum class LrSchedule { constant, inv_sqrt, adaptive };
enum class VoteMode { workers, samples };
enum class AcceptRule { always, descent };
enum class Compressor { scaled_sign, top_k, rand_k };
enum class Broadcast { markov, mean };
enum class EstimateStart { zero, gradient };
/// How the mlp multiplies its dense layers: through Kokkos Kernels (KokkosBlas::gemm: the host BLAS, or Kokkos
/// Kernels' own kernels on GPUs), or terse's fixed-order kernels (bitwise reproducible everywhere).
enum class DenseProducts { library, fixed_order };
/// The cnn's convolutions: "same" (2 pixels of zeros around, the output as large as the input) or "valid" (none).
enum class Padding { same, valid };

/// The deck spelling of each enumerator ("majority_vote", "top_k", ...).
const char* to_string(ProblemKind v);
const char* to_string(NoiseCoords v);
const char* to_string(DataFormat v);
const char* to_string(OptimizerKind v);
const char* to_string(LrSchedule v);
const char* to_string(VoteMode v);
const char* to_string(AcceptRule v);
const char* to_string(Compressor v);
const char* to_string(Broadcast v);
const char* to_string(EstimateStart v);
const char* to_string(DenseProducts v);
const char* to_string(Padding v);

/// Where the Debian package dataset-fashion-mnist installs its IDX files (the defaults of the *_images/labels).
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist/";

/// Section `problem`: the objective.
struct ProblemConfig {
  ProblemKind kind = ProblemKind::quadratic;  ///< required
  /// quadratic: required; rosenbrock: 10 (>= 2); logistic: unset = the largest feature index; mlp: unused.
  std::optional<std::int64_t> dim;
  double x0 = 1.0;                             ///< quadratic 1.0, rosenbrock 0.0
  double noise_std = 0.0;                      ///< quadratic, rosenbrock; >= 0
  NoiseCoords noise_coords = NoiseCoords::all; ///< quadratic
  double lambda = 0.1;                         ///< logistic; >= 0 (seed 004 eq. (7.1))
  std::optional<std::string> data;             ///< logistic + libsvm: required; otherwise unset
  DataFormat data_format = DataFormat::libsvm; ///< logistic
  std::array<int, 2> classes{{0, 6}};          ///< logistic + fashion_mnist: (-1 class, +1 class), distinct, 0..9
  std::int64_t hidden = 64;                    ///< mlp (64), cnn (512: the dense layer's units); >= 1
  DenseProducts products = DenseProducts::library;  ///< mlp, cnn
  std::array<std::int64_t, 2> channels{{32, 64}};   ///< cnn: the two convolutions' output channels, >= 1
  Padding padding = Padding::same;                  ///< cnn
  std::string train_images = std::string(kFashionMnistDir) + "train-images-idx3-ubyte.gz";  ///< mlp, cnn, logistic+fmnist
  std::string train_labels = std::string(kFashionMnistDir) + "train-labels-idx1-ubyte.gz";  ///< mlp, cnn, logistic+fmnist
  std::string test_images = std::string(kFashionMnistDir) + "t10k-images-idx3-ubyte.gz";    ///< mlp, cnn
  std::string test_labels = std::string(kFashionMnistDir) + "t10k-labels-idx1-ubyte.gz";    ///< mlp, cnn
};

/// Section `optimizer`: the algorithm and its hyper-parameters.
struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::sgd;  ///< required
  double lr = 0.0;                          ///< required, > 0
  LrSchedule lr_schedule = LrSchedule::constant;  ///< majority_vote
  std::optional<double> lipschitz;          ///< majority_vote with adaptive: required, > 0; otherwise unset
  VoteMode vote = VoteMode::workers;        ///< majority_vote
  AcceptRule accept = AcceptRule::always;   ///< majority_vote
  Compressor compressor = Compressor::scaled_sign;  ///< cd_adam (scaled_sign), ef21 (top_k)
  double k_ratio = 0.016;                   ///< compressor top_k or rand_k; in (0, 1]
  /// cd_adam, ef21: what the server sends back, the Markov sequence g~ of g^ (two-way, seed 004 Alg. 1) or the
  /// plain mean g^ of the workers' estimates as fp32 values (one-way, Richtarik et al. 2021 Alg. 1).
  Broadcast broadcast = Broadcast::markov;
  /// cd_adam, ef21: the workers' estimates g^_w and the server's g^ (and g~) start at 0, or at the workers'
  /// gradients at x0 and their mean, sent once as fp32 values at iteration 0 (Richtarik et al. 2021 Alg. 1).
  EstimateStart estimate_start = EstimateStart::zero;
  double beta1 = 0.9;                       ///< amsgrad, amsgrad_naive, amsgrad_ef, cd_adam, onebit_adam; in [0, 1)
  double beta2 = 0.999;                     ///< same; in [0, 1)
  double nu = 1e-8;                         ///< same; > 0
  double eps = 1e-8;                        ///< adagrad, local_adaalter; > 0
  std::int64_t sync_period = 1;             ///< local_sgd, local_adaalter; >= 1
  double b0 = 1.0;                          ///< local_adaalter; > 0
  std::int64_t warmup_steps = 0;            ///< local_adaalter (>= 0: lr warm-up); onebit_adam (required, >= 1: Adam steps before the freeze)
  double momentum = 0.9;                    ///< signum: the workers' momentum beta; in [0, 1)
  double weight_decay = 0.0;                ///< signum: added to the gradient as weight_decay * x; >= 0
  std::int64_t levels = 7;                  ///< qsgd, ef_qsgd: QSGD's levels s; >= 1
  std::int64_t bucket = 512;                ///< qsgd, ef_qsgd, terngrad: coordinates per norm (scale); >= 1
};

/// Section `run`.
struct RunConfig {
  std::int64_t iterations = 0;  ///< required, >= 1
  bool batch_full = false;      ///< `batch: full`: each worker's whole block, deterministic
  std::int64_t batch = 1;       ///< samples per worker per iteration, >= 1; 0 when batch_full
  std::uint64_t seed = 0;       ///< >= 0
  std::int64_t log_every = 1;   ///< >= 1; default max(1, iterations / 100)
  /// run.objective_every: rows at multiples of it (and the first and the last) carry the full objective; the
  /// others an estimate on objective_sample rows per worker (problems with rows and an estimate: the mlp). 0: only
  /// the first and the last row.
  std::int64_t objective_every = 0;
  std::int64_t objective_sample = 128;  ///< run.objective_sample: rows per worker of an estimate; >= 1
  std::string output = "terse_history.h5";  ///< `--output` overrides (the driver sets this field)
  /// run.checkpoint.path: where checkpoints go (periodic ones, and the one SIGTERM/SIGUSR1 asks for);
  /// default: run.output with ".h5" replaced by ".checkpoint.h5".
  std::string checkpoint_path = "terse_history.checkpoint.h5";
  std::int64_t checkpoint_every = 0;  ///< run.checkpoint.every: a checkpoint every N updates; 0: none
  /// run.success_probability_samples: at every history row, each worker draws this many stochastic gradients
  /// at the model and the run records the min and mean over coordinates of the estimated success
  /// probabilities Prob(sign g~_i = sign g_i) (seed 001 Sec. 2); 0: not recorded.
  std::int64_t success_probability_samples = 0;
  /// run.watchdog: seconds without a finished iteration after which a rank ends the job (a peer or a network
  /// link is gone; docs/checkpoint.md); 0: never. Not part of a checkpoint's identity.
  double watchdog = 300;
  /// run.exchange_chunk: coordinates of each server slice per chunk of a chunked exchange (the sign wires with
  /// a plain downlink; optim::Method::chunkable()); 0: one chunk; exchange_chunk_auto (`auto`, the default): chunks of
  /// exchange_chunk_size from 3 ranks on, one chunk on 1 or 2 (exchange_chunk_for()). Results do not depend on
  /// it: not part of a checkpoint's identity.
  static constexpr std::int64_t exchange_chunk_auto = optim::Layout::exchange_chunk_auto;
  static constexpr std::int64_t exchange_chunk_size = optim::Layout::exchange_chunk_size;
  std::int64_t exchange_chunk = exchange_chunk_auto;
  /// The chunk of run.exchange_chunk on P ranks, in coordinates (0: one chunk): optim::Layout::chunk_for's.
  std::int64_t exchange_chunk_for(int P) const {
    optim::Layout l;
    l.exchange_chunk = exchange_chunk;
    return l.chunk_for(P);
  }
};

/// Section `workers`.
struct WorkersConfig {
  std::int64_t per_rank = 1;  ///< >= 1; W = ranks x per_rank, worker w on rank floor(w / per_rank)
};

struct Deck {
  std::string path;  ///< the deck's file name as given (or the name passed to parse_deck_string)
  ProblemConfig problem;
  OptimizerConfig optimizer;
  RunConfig run;
  WorkersConfig workers;
};

/// run.checkpoint.path's default for a history file name: "out.h5" -> "out.checkpoint.h5".
std::string default_checkpoint_path(const std::string& output);

bool operator==(const ProblemConfig& a, const ProblemConfig& b);
bool operator==(const OptimizerConfig& a, const OptimizerConfig& b);
bool operator==(const RunConfig& a, const RunConfig& b);
bool operator==(const WorkersConfig& a, const WorkersConfig& b);
/// Equal paths and equal sections (every field, used or not).
bool operator==(const Deck& a, const Deck& b);
inline bool operator!=(const ProblemConfig& a, const ProblemConfig& b) { return !(a == b); }
inline bool operator!=(const OptimizerConfig& a, const OptimizerConfig& b) { return !(a == b); }
inline bool operator!=(const RunConfig& a, const RunConfig& b) { return !(a == b); }
inline bool operator!=(const WorkersConfig& a, const WorkersConfig& b) { return !(a == b); }
inline bool operator!=(const Deck& a, const Deck& b) { return !(a == b); }

/// Reads, overrides and checks the deck at `path`. Each override is "section.key=value"; the value is parsed
/// as YAML (`full`, `[0,6]`, `1e-3`) and replaces the deck's value (or adds the key) before any check, so an
/// override is checked like a deck value. Later overrides of the same key win. Throws DeckError.
Deck parse_deck(const std::string& path, const std::vector<std::string>& overrides = {});

/// The same for deck text held in memory; `name` stands for the file name in messages and in Deck::path.
Deck parse_deck_string(const std::string& yaml, const std::string& name,
                       const std::vector<std::string>& overrides = {});

/// The effective deck as YAML: every key the chosen problem and algorithm use, with its value after defaults
/// and overrides (keys they do not use, and unset optionals, are left out). parse_deck_string() of this text
/// gives back an equal Deck (when given the same name); doubles are written with enough digits to round-trip.
std::string effective_config_yaml(const Deck& deck);

/// Every "section.key" the parser accepts, in the order of docs/deck.md.
std::vector<std::string> accepted_keys();

}  // namespace terse
