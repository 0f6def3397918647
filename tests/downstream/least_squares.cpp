// A user's own training loop over the installed terse::optim (docs/library.md): least squares on data this
// program makes itself, f(x) = 1/(2N) sum_i (a_i^T x - b_i)^2, trained on MPI ranks with R = 2 logical workers
// each, by terse's majority vote (a Spec written by hand) and CD-Adam (a Spec from a deck string, terse::deck).
// It checks, on every rank:
//   1. each method against a plain loop of the method written here from the papers (seed 000 Alg. 1: the vote of
//      the workers' signs; seed 004 Alg. 1: Markov scaled signs up and down, AMSGrad), on the same gradients:
//      majority vote bitwise, CD-Adam to rounding (the scales are sums in another order);
//   2. a checkpoint and restart through the method's exposed state (state(), scalars(); the user saves and
//      restores them with the model) continues bitwise as the uninterrupted run;
//   3. the loss went down, and the bytes the method handed MPI are those of its wire.
// Exit status 0 when every check holds. Run it on 1 or more ranks (mpiexec -n 2).
#include <terse_Compose.hpp>
#include <terse_Deck.hpp>
#include <terse_Optim.hpp>

#include <Kokkos_Core.hpp>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

using Exec = Kokkos::DefaultExecutionSpace;
using Method = terse::optim::Method<Exec>;
using Vec = terse::optim::VecOf<Exec>;
using Mat = terse::optim::MatOf<Exec>;

constexpr std::size_t d = 300;     // not a multiple of 64: the last sign word is partial
constexpr int R = 2;               // logical workers per rank
constexpr std::size_t rows_per_worker = 64, batch = 32;
constexpr int iterations = 40;

int failures = 0;
int rank = 0, P = 1;

void check(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "least_squares: rank %d: FAILED: %s\n", rank, what.c_str());
  }
}

/// A deterministic value in [-1, 1) from two integers (the data: the same on every rank).
double hash_uniform(std::uint64_t a, std::uint64_t b) {
  std::uint64_t z = a * 0x9E3779B97F4A7C15ull + b * 0xBF58476D1CE4E5B9ull + 0x94D049BB133111EBull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/// The data: row i of A and b_i = a_i^T x* + noise.
struct Data {
  std::vector<double> a, b;
  std::size_t rows = 0;
  explicit Data(int W) : rows(rows_per_worker * W) {
    a.resize(rows * d);
    b.resize(rows);
    for (std::size_t i = 0; i < rows; ++i) {
      double dot = 0;
      for (std::size_t j = 0; j < d; ++j) {
        a[i * d + j] = hash_uniform(i, j);
        dot += a[i * d + j] * hash_uniform(7, j);  // x*_j
      }
      b[i] = dot + 0.1 * hash_uniform(i, 99999);
    }
  }
  /// Worker w's stochastic gradient at x (float), iteration k: `batch` rows of its block, chosen by (k, w).
  void gradient(const std::vector<float>& x, int w, int k, float* g) const {
    std::vector<double> acc(d, 0.0);
    for (std::size_t s = 0; s < batch; ++s) {
      const double u = hash_uniform(k, w * 1000 + s) * 0.5 + 0.5;  // in [0, 1)
      const std::size_t i = w * rows_per_worker + static_cast<std::size_t>(u * rows_per_worker);
      double r = -b[i];
      for (std::size_t j = 0; j < d; ++j) r += a[i * d + j] * x[j];
      for (std::size_t j = 0; j < d; ++j) acc[j] += r * a[i * d + j];
    }
    for (std::size_t j = 0; j < d; ++j) g[j] = static_cast<float>(acc[j] / batch);
  }
  double loss(const std::vector<float>& x) const {
    double f = 0;
    for (std::size_t i = 0; i < rows; ++i) {
      double r = -b[i];
      for (std::size_t j = 0; j < d; ++j) r += a[i * d + j] * x[j];
      f += 0.5 * r * r;
    }
    return f / rows;
  }
};

std::vector<float> to_host(const Vec& v) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
  return std::vector<float>(h.data(), h.data() + h.extent(0));
}
void from_host(const Vec& v, const std::vector<float>& x) {
  Kokkos::View<const float*, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> h(x.data(), x.size());
  Kokkos::deep_copy(v, h);
}

/// What a user's checkpoint holds: the model, the method's arrays (this rank's pieces, by name) and scalars.
struct Checkpoint {
  std::vector<float> x;
  std::map<std::string, std::vector<std::vector<float>>> arrays;
  std::map<std::string, double> scalars;
  std::int64_t iteration = 0;
};

/// Trains `method` from iteration `first` to `last` on `data`; every worker's gradient at the shared model.
void train(Method& method, const Data& data, Vec& x, int first, int last, std::vector<std::vector<float>>* grads_log) {
  Exec space;
  Mat grads("grads", R, d);
  auto grads_h = Kokkos::create_mirror_view(grads);
  for (int k = first; k < last; ++k) {
    const std::vector<float> xh = to_host(x);
    for (int l = 0; l < R; ++l) data.gradient(xh, rank * R + l, k, &grads_h(l, 0));
    Kokkos::deep_copy(grads, grads_h);
    if (grads_log)
      for (int l = 0; l < R; ++l) grads_log->emplace_back(&grads_h(l, 0), &grads_h(l, 0) + d);
    terse::optim::StepInputs in;
    in.k = k;
    method.step(space, grads, x, in);
  }
  space.fence();
}

Checkpoint save(Method& method, const Vec& x, std::int64_t iteration) {
  Checkpoint c;
  c.x = to_host(x);
  c.iteration = iteration;
  std::vector<terse::optim::StateArray<Exec>> arrays;
  method.state(Exec(), arrays);
  for (const auto& a : arrays)
    for (const auto& v : a.views) c.arrays[a.name].push_back(to_host(v));
  terse::optim::Scalars s;
  method.scalars(s);
  for (const auto& [name, value] : s) c.scalars[name] = *value;
  return c;
}

void restore(Method& method, Vec& x, const Checkpoint& c) {
  from_host(x, c.x);
  std::vector<terse::optim::StateArray<Exec>> arrays;
  method.state(Exec(), arrays);
  for (const auto& a : arrays) {
    const auto it = c.arrays.find(a.name);
    check(it != c.arrays.end() && it->second.size() == a.views.size(), "restore: the checkpoint has " + a.name);
    if (it == c.arrays.end()) continue;
    for (std::size_t v = 0; v < a.views.size(); ++v) from_host(a.views[v], it->second[v]);
  }
  terse::optim::Scalars s;
  method.scalars(s);
  for (const auto& [name, value] : s) *value = c.scalars.at(name);
}

// ---- the plain loops, from the papers -------------------------------------------------------------------------

/// seed 000 Alg. 1 (signSGD with majority vote): x <- x - lr sign(sum_w sign(g_w)), sign(0) = 0 for a tie;
/// sign(g) = +1 for g >= 0 (terse's convention).
std::vector<float> reference_majority_vote(const std::vector<std::vector<float>>& grads, int W, float lr) {
  std::vector<float> x(d, 0.0f);
  for (std::size_t t = 0; t * W < grads.size(); ++t)
    for (std::size_t j = 0; j < d; ++j) {
      int plus = 0;
      for (int w = 0; w < W; ++w) plus += grads[t * W + w][j] >= 0 ? 1 : 0;
      const int vote = 2 * plus > W ? 1 : 2 * plus < W ? -1 : 0;
      x[j] = x[j] - lr * static_cast<float>(vote);
    }
  return x;
}

/// The scaled sign (seed 004 Sec. 4): C(v) = (||v||_1 / n) sign(v), in float as terse holds vectors (the norm summed
/// in double, then rounded).
std::vector<float> scaled_sign(const std::vector<float>& v) {
  double l1 = 0;
  for (float e : v) l1 += std::fabs(static_cast<double>(e));
  const auto scale = static_cast<float>(l1 / static_cast<double>(v.size()));
  std::vector<float> c(v.size());
  for (std::size_t j = 0; j < v.size(); ++j) c[j] = v[j] >= 0 ? scale : -scale;
  return c;
}

/// seed 004 Alg. 1 (CD-Adam): worker w sends c_w = C(g_w - g^_w), g^_w += c_w; the server g^ += mean_w c_w, sends
/// c~ = C(g^ - g~), g~ += c~; every worker takes AMSGrad on g~ (m, v, v_hat from 0; x -= lr m / sqrt(v_hat + nu)).
std::vector<float> reference_cd_adam(const std::vector<std::vector<float>>& grads, int W, const terse::optim::Spec& s) {
  std::vector<float> x(d, 0), m(d, 0), v(d, 0), v_hat(d, 0), g_server(d, 0), g_tilde(d, 0);
  std::vector<std::vector<float>> g_worker(W, std::vector<float>(d, 0));
  const auto b1 = static_cast<float>(s.beta1), b2 = static_cast<float>(s.beta2), nu = static_cast<float>(s.nu);
  const auto lr = static_cast<float>(s.lr), inv_w = static_cast<float>(1.0 / W);
  for (std::size_t t = 0; t * W < grads.size(); ++t) {
    std::vector<float> sum(d, 0);
    for (int w = 0; w < W; ++w) {
      std::vector<float> diff(d);
      for (std::size_t j = 0; j < d; ++j) diff[j] = grads[t * W + w][j] - g_worker[w][j];
      const auto c = scaled_sign(diff);
      for (std::size_t j = 0; j < d; ++j) g_worker[w][j] += c[j], sum[j] += c[j];
    }
    std::vector<float> down(d);
    for (std::size_t j = 0; j < d; ++j) g_server[j] += inv_w * sum[j], down[j] = g_server[j] - g_tilde[j];
    const auto c = scaled_sign(down);
    for (std::size_t j = 0; j < d; ++j) {
      g_tilde[j] += c[j];
      m[j] = b1 * m[j] + (1 - b1) * g_tilde[j];
      v[j] = b2 * v[j] + (1 - b2) * g_tilde[j] * g_tilde[j];
      v_hat[j] = std::max(v_hat[j], v[j]);
      x[j] -= lr * m[j] / std::sqrt(v_hat[j] + nu);
    }
  }
  return x;
}

/// Every rank's gradients of every iteration in worker order (the reference needs all W workers').
std::vector<std::vector<float>> all_gradients(const std::vector<std::vector<float>>& mine, int W) {
  const std::size_t per_it = R;
  const std::size_t its = mine.size() / per_it;
  std::vector<float> send(mine.size() * d), recv(send.size() * P);
  for (std::size_t q = 0; q < mine.size(); ++q) std::copy(mine[q].begin(), mine[q].end(), send.begin() + q * d);
  MPI_Allgather(send.data(), static_cast<int>(send.size()), MPI_FLOAT, recv.data(), static_cast<int>(send.size()),
                MPI_FLOAT, MPI_COMM_WORLD);
  std::vector<std::vector<float>> all(its * W);
  for (int r = 0; r < P; ++r)
    for (std::size_t t = 0; t < its; ++t)
      for (int l = 0; l < R; ++l) {
        const float* g = recv.data() + (r * mine.size() + t * per_it + l) * d;
        all[t * W + r * R + l].assign(g, g + d);
      }
  return all;
}

/// One method: the straight run against the plain loop, the restart against the straight run.
void exercise(const std::string& name, const terse::optim::Spec& spec, const Data& data, int W) {
  const terse::optim::Layout layout{d, R, /*seed*/ 5};
  Vec x("x", d);
  std::vector<std::vector<float>> grads;
  double bytes = 0;
  {
    Method method(MPI_COMM_WORLD, spec, layout);
    train(method, data, x, 0, iterations, &grads);
    bytes = static_cast<double>(method.bytes_sent());
  }
  const std::vector<float> straight = to_host(x);

  // 1. against the plain loop of the paper, on the same gradients.
  const auto all = all_gradients(grads, W);
  double worst = 0;
  if (spec.aggregate == terse::optim::Aggregate::vote) {
    const auto ref = reference_majority_vote(all, W, static_cast<float>(spec.lr));
    check(std::memcmp(ref.data(), straight.data(), d * sizeof(float)) == 0, name + ": not bitwise the plain loop");
  } else {
    // To rounding: the scales are sums in another order, and AMSGrad divides by sqrt(v_hat + nu).
    const auto ref = reference_cd_adam(all, W, spec);
    double largest = 0;
    for (std::size_t j = 0; j < d; ++j) largest = std::max(largest, std::fabs(static_cast<double>(ref[j])));
    for (std::size_t j = 0; j < d; ++j) worst = std::max(worst, std::fabs(double(ref[j]) - straight[j]) / largest);
    check(worst < 1e-4, name + ": not the plain loop to rounding (worst difference " + std::to_string(worst) +
                            " of the largest coordinate)");
  }

  // 2. stop at iteration 12, save the state, a new Method restored from it continues to the end.
  Vec y("y", d);
  Checkpoint saved;
  {
    Method method(MPI_COMM_WORLD, spec, layout);
    train(method, data, y, 0, 12, nullptr);
    saved = save(method, y, 12);
  }
  {
    Kokkos::deep_copy(y, 0.0f);
    Method method(MPI_COMM_WORLD, spec, layout);
    restore(method, y, saved);
    train(method, data, y, 12, iterations, nullptr);
  }
  const std::vector<float> restarted = to_host(y);
  check(std::memcmp(restarted.data(), straight.data(), d * sizeof(float)) == 0,
        name + ": the restarted run is not bitwise the straight run");

  // 3. it learned, and it sent what its wire sends.
  const double f0 = data.loss(std::vector<float>(d, 0.0f)), f1 = data.loss(straight);
  check(f1 < 0.9 * f0, name + ": the loss did not go down (" + std::to_string(f0) + " -> " + std::to_string(f1) + ")");
  const double fp32 = iterations * 2.0 * 4.0 * d * (P - 1);  // an fp32 all-to-all and gather, as a bound
  check(P == 1 ? bytes == 0 : (bytes > 0 && bytes < fp32 / 8), name + ": bytes handed MPI " + std::to_string(bytes));
  if (rank == 0)
    std::printf("least_squares: %s on %d ranks x %d workers: loss %.4g -> %.4g, %.0f bytes handed MPI by rank 0 "
                "(fp32 would be about %.0f), reference difference %.2g, restart bitwise: %s\n",
                name.c_str(), P, R, f0, f1, bytes, fp32, worst,
                std::memcmp(restarted.data(), straight.data(), d * sizeof(float)) == 0 ? "yes" : "NO");
}

}  // namespace

int main(int argc, char* argv[]) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  Kokkos::initialize(argc, argv);
  {
    const int W = P * R;
    const Data data(W);

    // Majority vote (seed 000 Alg. 1), written as a spec: 1 bit up, the vote down, x <- x - lr sign(vote).
    terse::optim::Spec vote;
    vote.wire = terse::optim::Wire::sign;
    vote.aggregate = terse::optim::Aggregate::vote;
    vote.rule = terse::optim::Rule::sign;
    vote.lr = 1e-2;
    exercise("majority_vote", vote, data, W);

    // CD-Adam (seed 004 Alg. 1) from a deck's optimizer section, as `terse run` reads it.
    const terse::Deck deck = terse::parse_deck_string(
        "problem: {kind: quadratic, dim: 300}\noptimizer: {kind: cd_adam, lr: 0.02}\nrun: {iterations: 1}\n",
        "least_squares.cpp");
    exercise("cd_adam", terse::compose(deck.optimizer), data, W);
  }
  Kokkos::finalize();
  int all = 0;
  MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  MPI_Finalize();
  return all == 0 ? 0 : 1;
}
