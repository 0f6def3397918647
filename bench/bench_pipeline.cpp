// bench_pipeline.cpp: the end-to-end benchmark of one iteration's communication path, over MPI.
//
// For each algorithm and dimension d it builds the method `terse run` builds (terse::optim::Method, terse_Optim.hpp:
// the workers' compressors and memories, the sharded exchange, the server's aggregation and downlink, the update
// rule) with one worker per rank and times its step, compress -> exchange -> aggregate -> downlink -> apply, the
// gradient being given (a chunked round, --chunk, pipelines them: its compression and the update's pieces are
// then inside the "exchange s" phase). The slowest rank's time is the iteration's time (MPI_MAX);
// the report gives medians over the repetitions. The compressed paths (majority_vote, ef_signsgd, cd_adam,
// ef21, ...) and the uncompressed ones (sgd and amsgrad: an fp32 MPI_Allreduce of the gradient, then the
// update) run in the same process. The machines this runs on are shared and noisy (the memory bandwidth of a
// 2-core VM moves by 2x within seconds), so every algorithm is timed against the sgd path iteration by
// iteration, alternating the two (sgd first, then last), and its ratio to sgd is the median of the
// per-repetition ratios ("paired"); sgd's own row gathers all its iterations.
//
// Besides the time, for every configuration:
//   * the bytes this rank handed to MPI per iteration (the Round's own count), and their ratio to sgd's;
//   * the time spent inside MPI collectives, from PMPI wrappers of the collectives the pieces call, so
//     compute = time - MPI time; and a projection of the iteration onto a network of bandwidth B and
//     latency L:  T = compute + collectives * L * ceil(log2 P) + bytes / B;
//   * at the largest d, after the timings, each algorithm alone: the process's peak resident memory (VmHWM,
//     reset per algorithm through /proc/self/clear_refs) above its resident memory before the pieces were
//     built, against the state formula (what the constructors allocate: x, the gradient, the update rule's
//     state and Round::bytes) and against Kokkos's own count of the bytes it allocated (AllocationTracker).
//   * the wire model: the bytes that must leave each rank under bandwidth-optimal collectives (PMPI wrappers:
//     an alltoall sends every block but its own, an allgather delivers the rank's block to P-1 others, an
//     allreduce of n bytes moves 2 (P-1)/P n); with --link-gbps, the network bound compute + the busiest
//     rank's wire-model bytes at the link rate, and t/bound; with --interface (bench/cluster: one simulated
//     host's eth0), the bytes the interface's counters saw leave and arrive during the timed iterations.
// Every result file records what it ran on (CPU or GPU, Kokkos version and backend, threads, ranks,
// compiler, MPI library), so bench/compare.py can put files from different machines side by side.
//
// usage: mpiexec -n P terse_bench_pipeline [--dims 20,24,26] [--algorithms ...] [--repeats N] [--out F.json]
//        [--unpaired] [--chunk N] [--link-gbps R --interface eth0]   (over a simulated cluster: bench/cluster/README.md)
#include "terse_AllocationTracker.hpp"
#include "terse_Compose.hpp"
#include "terse_Deck.hpp"
#include "terse_Machine.hpp"
#include "terse_Optim.hpp"
#include "terse_Runtime.hpp"

#include <terse_Compat.hpp>
#include <terse_Version.hpp>

#include <CLI/CLI.hpp>
#include <Kokkos_Core.hpp>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

// ------------------------------------------------------------------------------------------------------------
// Time inside MPI collectives (PMPI): the collectives the exchange pieces call.
// ------------------------------------------------------------------------------------------------------------
namespace {
/// What the collectives of one timed iteration cost this rank: the time inside them, the calls, and the bytes
/// that must leave this rank under bandwidth-optimal algorithms ("wire model"): an alltoall(v) sends every
/// block but its own; an allgather(v) delivers this rank's block to P-1 others (a ring forwards the same
/// amount); an allreduce of n bytes is a reduce-scatter plus an allgather, 2 (P-1)/P n. Over a network, these
/// bytes at the link's rate are the algorithm's network bound.
struct MpiClock {
  bool on = false;
  double seconds = 0;
  long calls = 0;
  double wire_bytes = 0;
};
MpiClock& mpi_clock() {
  static MpiClock c;
  return c;
}
template <class F>
int timed(F&& f, double wire_bytes, bool a_collective = true) {
  MpiClock& c = mpi_clock();
  if (!c.on) return f();
  const double t0 = PMPI_Wtime();
  const int r = f();
  c.seconds += PMPI_Wtime() - t0;
  if (a_collective) ++c.calls;
  c.wire_bytes += wire_bytes;
  return r;
}
double type_bytes(MPI_Datatype t) {
  int size = 0;
  PMPI_Type_size(t, &size);
  return size;
}
int comm_size(MPI_Comm c) {
  int p = 1;
  PMPI_Comm_size(c, &p);
  return p;
}
int comm_rank(MPI_Comm c) {
  int r = 0;
  PMPI_Comm_rank(c, &r);
  return r;
}
}  // namespace

extern "C" {
int MPI_Allreduce(const void* s, void* r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm c) {
  const double P = comm_size(c);
  return timed([&] { return PMPI_Allreduce(s, r, n, t, op, c); }, 2 * (P - 1) / P * n * type_bytes(t));
}
int MPI_Alltoall(const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt, MPI_Comm c) {
  return timed([&] { return PMPI_Alltoall(s, sn, st, r, rn, rt, c); },
               static_cast<double>(comm_size(c) - 1) * sn * type_bytes(st));
}
int MPI_Alltoallv(const void* s, const int* sc, const int* sd, MPI_Datatype st, void* r, const int* rc, const int* rd,
                  MPI_Datatype rt, MPI_Comm c) {
  double others = 0;
  for (int j = 0, P = comm_size(c), me = comm_rank(c); j < P; ++j)
    if (j != me) others += sc[j];
  return timed([&] { return PMPI_Alltoallv(s, sc, sd, st, r, rc, rd, rt, c); }, others * type_bytes(st));
}
int MPI_Allgather(const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt, MPI_Comm c) {
  const double n = s == MPI_IN_PLACE ? rn * type_bytes(rt) : sn * type_bytes(st);
  return timed([&] { return PMPI_Allgather(s, sn, st, r, rn, rt, c); }, (comm_size(c) - 1) * n);
}
int MPI_Allgatherv(const void* s, int sn, MPI_Datatype st, void* r, const int* rc, const int* rd, MPI_Datatype rt,
                   MPI_Comm c) {
  const double n = s == MPI_IN_PLACE ? rc[comm_rank(c)] * type_bytes(rt) : sn * type_bytes(st);
  return timed([&] { return PMPI_Allgatherv(s, sn, st, r, rc, rd, rt, c); }, (comm_size(c) - 1) * n);
}
// The chunked exchange's nonblocking collectives (counted and modelled like the blocking ones) and the calls that
// complete them (time inside MPI, not collectives of their own).
int MPI_Ialltoallv(const void* s, const int* sc, const int* sd, MPI_Datatype st, void* r, const int* rc, const int* rd,
                   MPI_Datatype rt, MPI_Comm c, MPI_Request* q) {
  double others = 0;
  for (int j = 0, P = comm_size(c), me = comm_rank(c); j < P; ++j)
    if (j != me) others += sc[j];
  return timed([&] { return PMPI_Ialltoallv(s, sc, sd, st, r, rc, rd, rt, c, q); }, others * type_bytes(st));
}
int MPI_Iallgatherv(const void* s, int sn, MPI_Datatype st, void* r, const int* rc, const int* rd, MPI_Datatype rt,
                    MPI_Comm c, MPI_Request* q) {
  const double n = s == MPI_IN_PLACE ? rc[comm_rank(c)] * type_bytes(rt) : sn * type_bytes(st);
  return timed([&] { return PMPI_Iallgatherv(s, sn, st, r, rc, rd, rt, c, q); }, (comm_size(c) - 1) * n);
}
int MPI_Wait(MPI_Request* q, MPI_Status* st) {
  return timed([&] { return PMPI_Wait(q, st); }, 0, false);  // time only: counted when posted
}
int MPI_Waitall(int n, MPI_Request* q, MPI_Status* st) {
  return timed([&] { return PMPI_Waitall(n, q, st); }, 0, false);  // time only: counted when posted
}
int MPI_Testall(int n, MPI_Request* q, int* flag, MPI_Status* st) {
  return timed([&] { return PMPI_Testall(n, q, flag, st); }, 0, false);  // time only: counted when posted
}
}

namespace {

using namespace terse;
using Exec = Kokkos::DefaultExecutionSpace;
using Vec = optim::VecOf<Exec>;
using Mat = optim::MatOf<Exec>;

// ------------------------------------------------------------------------------------------------------------
// What the run ran on
// ------------------------------------------------------------------------------------------------------------

std::string json_escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') o += '\\', o += ch;
    else if (ch == '\n') o += "\\n";
    else if (static_cast<unsigned char>(ch) < 0x20) o += ' ';
    else o += ch;
  }
  return o;
}


std::string mpi_library() {
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(v, &len);
  std::string s(v, static_cast<std::size_t>(len));
  const auto nl = s.find_first_of("\n,");
  return s.substr(0, nl);
}

std::map<std::string, std::string> context(int P) {
  std::map<std::string, std::string> c;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::string backends;
  for (const auto& b : compat::enabled_backends()) backends += (backends.empty() ? "" : ",") + b;
  std::ostringstream kokkos_cfg;
  Kokkos::print_configuration(kokkos_cfg, false);
  const std::string cfg = kokkos_cfg.str();
  // CUDA, HIP and SYCL print their devices: keep the first line that names one.
  const std::string exec = Kokkos::DefaultExecutionSpace::name();
  const bool device = exec == "Cuda" || exec == "HIP" || exec == "SYCL" || exec == "Experimental::HIP";
  const auto gpu = device ? cfg.find("Device") : std::string::npos;
  std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  c["date"] = date;
  c["host"] = host;
  c["cpu"] = terse::bench::cpu_model();
  c["hardware_threads"] = std::to_string(std::thread::hardware_concurrency());
  c["gpu"] = gpu == std::string::npos ? "none" : cfg.substr(gpu, cfg.find('\n', gpu) - gpu);
  c["kokkos_version"] = compat::kokkos_version();
  c["kokkos_backends"] = backends;
  c["execution_space"] = Kokkos::DefaultExecutionSpace::name();
  c["threads_per_rank"] = std::to_string(compat::concurrency(Kokkos::DefaultExecutionSpace()));
  c["ranks"] = std::to_string(P);
  c["compiler"] = TERSE_BENCH_COMPILER;
  c["mpi"] = mpi_library();
  c["terse_version"] = TERSE_VERSION_STRING;
  return c;
}

// ------------------------------------------------------------------------------------------------------------
// Resident memory (Linux)
// ------------------------------------------------------------------------------------------------------------

/// A field of /proc/self/status in bytes (VmRSS, VmHWM); -1 when unavailable.
double status_bytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string k;
  while (in >> k) {
    if (k == key + ":") {
      double kb = 0;
      in >> kb;
      return kb * 1024;
    }
    std::getline(in, k);
  }
  return -1;
}
/// Resets VmHWM to the current VmRSS (Linux >= 4.0); false when not allowed.
bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  return static_cast<bool>(out);
}

// ------------------------------------------------------------------------------------------------------------
// One algorithm's path
// ------------------------------------------------------------------------------------------------------------

struct Result {
  std::string algorithm;
  std::uint64_t d = 0;
  double seconds = 0, seconds_min = 0, compute_seconds = 0, mpi_seconds = 0;
  double phase_seconds[3] = {0, 0, 0};  // compress, exchange, apply (each the slowest rank's)
  double collectives = 0;  // MPI collective calls per iteration
  double bytes = 0;        // handed to MPI per rank and iteration
  double ratio_to_sgd = 0; // median over the paired repetitions of t / t_sgd (sgd: 1)
  int pairs = 0;           // paired repetitions behind ratio_to_sgd
  std::size_t chunks = 1;  // chunks of its exchange (--chunk)
  // memory (only at the largest d): resident peak above the baseline, the formula, Kokkos's peak
  double rss_peak = -1, formula = 0, kokkos_peak = 0;
  // the network (medians per iteration): the wire model's bytes per rank (mean and busiest rank), and with
  // --interface the bytes the interface counters saw leave and arrive (mean over ranks: per host with one rank
  // per host; the busiest)
  double wire_model = 0, wire_model_max = 0, link_sent = -1, link_sent_max = -1, link_received = -1;
};

/// The byte counters of a network interface (/sys/class/net/NAME/statistics), read around every timed
/// iteration; inside a network namespace they are that namespace's ("host's") interface.
struct LinkCounters {
  std::string name;  // "" : not read
  static double read(const std::string& path) {
    std::ifstream f(path);
    double v = -1;
    f >> v;
    return v;
  }
  double sent() const { return read("/sys/class/net/" + name + "/statistics/tx_bytes"); }
  double received() const { return read("/sys/class/net/" + name + "/statistics/rx_bytes"); }
};
LinkCounters& link_counters() {
  static LinkCounters c;
  return c;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

/// g(i) = N(0, 1) draws of stream w (a gradient different on each rank). A free function: nvcc does not take
/// a device lambda defined in a constructor.
template <class View>
void fill_normal(const Exec& space, const View& g, std::uint32_t w) {
  const CounterRng rng{42, static_cast<std::uint32_t>(RandomStream::gradient_noise)};
  Kokkos::parallel_for("terse::bench::gradient", Kokkos::RangePolicy<Exec>(space, 0, g.extent(0)),
                       KOKKOS_LAMBDA(std::size_t i) { g(i) = static_cast<float>(rng.normal(0, w, i)); });
  space.fence();
}

/// The pieces `terse run` allocates for one algorithm at dimension d with one worker per rank (the model, the
/// worker's gradient, the update rule's state, the round), and one timed iteration of its path.
class Path {
 public:
  /// One iteration, as the slowest rank saw it.
  struct Sample {
    double seconds = 0, compute = 0, phases[3] = {0, 0, 0};
    long calls = 0;  // this rank's MPI collective calls
    double wire_model = 0, wire_model_max = 0;                      // mean over ranks, busiest rank
    double link_sent = -1, link_sent_max = -1, link_received = -1;  // --interface: mean, busiest, mean
  };

  /// The benchmark's spec of `algorithm`: KIND or KIND:KEY=VALUE[:KEY=VALUE...] (optimizer keys of the deck, e.g.
  /// qsgd:levels=4), through the deck parser and the composition table, with the algorithm's defaults otherwise
  /// and a step of 1e-4 (a DeckError names an unknown algorithm or key); throws std::invalid_argument for what it
  /// cannot time.
  static optim::Spec spec(const std::string& algorithm) {
    const std::string kind = algorithm.substr(0, algorithm.find(':'));
    std::string keys;
    for (std::size_t at = algorithm.find(':'); at != std::string::npos;) {
      const std::size_t next = algorithm.find(':', at + 1);
      const std::string kv = algorithm.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1);
      const std::size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == kv.size())
        throw std::invalid_argument(algorithm + ": expected KIND:KEY=VALUE (an optimizer key), got '" + kv + "'");
      keys += ", " + kv.substr(0, eq) + ": " + kv.substr(eq + 1);
      at = next;
    }
    const Deck deck = parse_deck_string("problem: {kind: quadratic, dim: 64}\noptimizer: {kind: " + kind + keys +
                                            (kind == "onebit_adam" ? ", warmup_steps: 1" : "") +
                                            ", lr: 1.0e-4}\nrun: {iterations: 1}\n",
                                        "terse_bench_pipeline --algorithms " + algorithm);
    const optim::Spec s = compose(deck.optimizer);
    if (s.local()) throw std::invalid_argument(algorithm + ": a local method has no per-iteration communication path");
    return s;
  }
  static optim::Layout layout(std::uint64_t d, std::int64_t chunk) {
    optim::Layout l;
    l.d = d;
    l.workers_per_rank = 1;
    l.seed = 7;
    l.exchange_chunk = chunk;
    return l;
  }
  /// The method as the run builds it (1-bit Adam: its compressed stage; no objective: accept is always).
  Path(MPI_Comm comm, const std::string& algorithm, std::uint64_t d, std::int64_t chunk)
      : comm_(comm), method_(comm, spec(algorithm), layout(d, chunk)) {
    MPI_Comm_rank(comm, &rank_);
    MPI_Comm_size(comm, &P_);
    x_ = Vec("terse::x", d);
    grads_ = Mat("terse::worker.gradients", 1, d);
    double method_bytes = 0;
    for (const auto& t : optim::Method<Exec>::memory(spec(algorithm), layout(d, chunk), P_, rank_))
      method_bytes += static_cast<double>(t.bytes);
    formula_ = static_cast<double>(d * sizeof(float) * 2) + method_bytes;
    fill_normal(space_, Kokkos::subview(grads_, 0, Kokkos::ALL), static_cast<std::uint32_t>(rank_));
    // 1-bit Adam: time its compressed stage (iterations from warmup_steps on).
    it_ = method_.spec().has_warmup() ? static_cast<std::uint64_t>(method_.spec().warmup_steps) : 0;
  }

  /// The state formula: what the constructor allocates (docs/architecture.md, Memory).
  double formula() const { return formula_; }
  /// Chunks of its exchange (1: not chunked).
  std::size_t chunks() const { return method_.chunks(); }
  std::uint64_t bytes_sent() const { return method_.bytes_sent(); }

  /// Collective: one iteration (compress -> exchange -> aggregate -> downlink -> apply), timed on every rank.
  Sample run() {
    MPI_Barrier(comm_);
    const LinkCounters& link = link_counters();
    const double sent0 = link.name.empty() ? 0 : link.sent(), received0 = link.name.empty() ? 0 : link.received();
    MpiClock& clk = mpi_clock();
    clk = MpiClock{true, 0, 0, 0};
    const double t0 = MPI_Wtime();
    double phase[3];
    iteration(phase);
    double t[2] = {MPI_Wtime() - t0, 0};
    clk.on = false;
    // This rank's last bytes may still be queued at its interface when its iteration ends; once every rank is
    // past the barrier, every rank has received them.
    if (!link.name.empty()) MPI_Barrier(comm_);
    const double sent = link.name.empty() ? 0 : link.sent() - sent0;
    const double received = link.name.empty() ? 0 : link.received() - received0;
    t[1] = t[0] - clk.seconds;
    Sample s;
    s.calls = clk.calls;
    double slowest[2];
    MPI_Allreduce(t, slowest, 2, MPI_DOUBLE, MPI_MAX, comm_);
    MPI_Allreduce(phase, s.phases, 3, MPI_DOUBLE, MPI_MAX, comm_);
    s.seconds = slowest[0];
    s.compute = slowest[1];
    double mine[3] = {clk.wire_bytes, sent, received}, sums[3], maxima[3];
    MPI_Allreduce(mine, sums, 3, MPI_DOUBLE, MPI_SUM, comm_);
    MPI_Allreduce(mine, maxima, 3, MPI_DOUBLE, MPI_MAX, comm_);
    s.wire_model = sums[0] / P_;
    s.wire_model_max = maxima[0];
    if (!link.name.empty()) {
      s.link_sent = sums[1] / P_;
      s.link_sent_max = maxima[1];
      s.link_received = sums[2] / P_;
    }
    return s;
  }

 private:
  /// The method's step, as `terse run` takes it, with its phases timed (fences between them).
  void iteration(double* phase) {
    optim::StepInputs in;
    in.k = static_cast<std::int64_t>(it_);
    in.time_phases = true;
    const optim::StepReport r = method_.step(space_, grads_, x_, in);
    for (int q = 0; q < 3; ++q) phase[q] = r.seconds[q];
    ++it_;
  }

  MPI_Comm comm_;
  int rank_ = 0, P_ = 1;
  std::uint64_t it_ = 0;
  Exec space_;
  optim::Method<Exec> method_;
  Vec x_;
  Mat grads_;
  double formula_ = 0;
};

/// Fills the times of `res` from its samples: medians over the repetitions.
void summarise(Result& res, const std::vector<Path::Sample>& samples, std::uint64_t bytes) {
  std::vector<double> times, computes, mpis, phases[3], wire, wire_max, sent, sent_max, received;
  long calls = 0;
  for (const auto& s : samples) {
    times.push_back(s.seconds);
    computes.push_back(s.compute);
    mpis.push_back(s.seconds - s.compute);
    for (int q = 0; q < 3; ++q) phases[q].push_back(s.phases[q]);
    calls += s.calls;
    wire.push_back(s.wire_model);
    wire_max.push_back(s.wire_model_max);
    sent.push_back(s.link_sent);
    sent_max.push_back(s.link_sent_max);
    received.push_back(s.link_received);
  }
  res.wire_model = median(wire);
  res.wire_model_max = median(wire_max);
  res.link_sent = median(sent);
  res.link_sent_max = median(sent_max);
  res.link_received = median(received);
  res.seconds = median(times);
  res.seconds_min = *std::min_element(times.begin(), times.end());
  for (int q = 0; q < 3; ++q) res.phase_seconds[q] = median(phases[q]);
  res.compute_seconds = median(computes);
  res.mpi_seconds = median(mpis);
  res.collectives = static_cast<double>(calls) / static_cast<double>(samples.size());
  res.bytes = static_cast<double>(bytes) / static_cast<double>(samples.size());
}

/// Times `algorithm` against the sgd path `sgd` at the same d: iterations alternate between the two (sgd
/// first on even repetitions, last on odd ones), so both see the same machine, and the ratio is the median of
/// the per-repetition ratios. Appends the sgd samples to `sgd_samples`.
Result measure_paired(MPI_Comm comm, const std::string& algorithm, Path& sgd, std::uint64_t d, std::int64_t chunk,
                      int warmup, int repeats, std::vector<Path::Sample>& sgd_samples, std::uint64_t& sgd_bytes) {
  Result res;
  res.algorithm = algorithm;
  res.d = d;
  Path path(comm, algorithm, d, chunk);
  res.chunks = path.chunks();
  for (int i = 0; i < warmup; ++i) {
    sgd.run();
    path.run();
  }
  std::vector<Path::Sample> samples;
  std::vector<double> ratios;
  const std::uint64_t bytes_before = path.bytes_sent();
  for (int i = 0; i < repeats; ++i) {
    const std::uint64_t sgd_before = sgd.bytes_sent();
    Path::Sample base, s;
    if (i % 2 == 0) {
      base = sgd.run();
      s = path.run();
    } else {
      s = path.run();
      base = sgd.run();
    }
    sgd_bytes += sgd.bytes_sent() - sgd_before;
    samples.push_back(s);
    sgd_samples.push_back(base);
    ratios.push_back(s.seconds / base.seconds);
  }
  summarise(res, samples, path.bytes_sent() - bytes_before);
  res.ratio_to_sgd = median(ratios);
  res.pairs = repeats;
  return res;
}

/// Times sgd alone (when it is the only algorithm asked for).
Result measure_alone(Path& path, const std::string& algorithm, std::uint64_t d, int warmup, int repeats) {
  Result res;
  res.algorithm = algorithm;
  res.d = d;
  res.chunks = path.chunks();
  for (int i = 0; i < warmup; ++i) path.run();
  std::vector<Path::Sample> samples;
  const std::uint64_t bytes_before = path.bytes_sent();
  for (int i = 0; i < repeats; ++i) samples.push_back(path.run());
  summarise(res, samples, path.bytes_sent() - bytes_before);
  res.ratio_to_sgd = 1;
  return res;
}

/// Memory of `algorithm` alone at d: the resident peak above the process's before its pieces were built, and
/// Kokkos's allocation peak, over `iterations` iterations, against the state formula.
void measure_memory(MPI_Comm comm, Result& res, std::int64_t chunk, int iterations) {
  MPI_Barrier(comm);
  const bool rss = reset_peak_rss();
  const double rss_before = status_bytes("VmRSS");
  AllocationTracker tracker;
  {
    Path path(comm, res.algorithm, res.d, chunk);
    for (int i = 0; i < iterations; ++i) path.run();
    res.formula = path.formula();
  }
  res.kokkos_peak = static_cast<double>(tracker.peak());
  res.rss_peak = rss ? status_bytes("VmHWM") - rss_before : -1;
}

}  // namespace

int main(int argc, char** argv) {
  terse::Runtime rt(argc, argv);
  std::vector<int> dims_log2{20, 24, 26};
  std::vector<std::string> algorithms{"sgd", "amsgrad", "majority_vote", "ef_signsgd", "cd_adam", "ef21"};
  int repeats = 10, warmup = 2;
  double bandwidth_gbps = 100, latency_us = 2, link_gbps = 0;
  bool unpaired = false;
  long long chunk_option = RunConfig::exchange_chunk_auto;
  std::string out;
  CLI::App app{"terse_bench_pipeline: one iteration's communication path per algorithm, against the fp32 "
               "allreduce path (sgd, amsgrad), over the ranks of the job"};
  app.add_option("--dims", dims_log2, "log2 of the dimensions d")->delimiter(',');
  app.add_option("--algorithms", algorithms, "optimizer.kind values (the methods with a per-iteration exchange: all but the local ones), each with "
                 "optimizer keys as KIND:KEY=VALUE[:KEY=VALUE] (qsgd:levels=4)")->delimiter(',');
  app.add_option("--repeats", repeats, "timed iterations per configuration (the median is reported)")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed iterations first")->check(CLI::NonNegativeNumber);
  app.add_option("--bandwidth-gbps", bandwidth_gbps, "network bandwidth of the projection, Gbit/s")->check(CLI::PositiveNumber);
  app.add_option("--latency-us", latency_us, "network latency of the projection, microseconds")->check(CLI::NonNegativeNumber);
  app.add_option("--out", out, "JSON result file (rank 0 writes it)");
  app.add_option("--interface", link_counters().name,
                 "network interface whose byte counters are read around every timed iteration (a simulated "
                 "host's eth0: bench/cluster)");
  app.add_option("--link-gbps", link_gbps,
                 "rate of the links the ranks are on, Gbit/s: reports each algorithm's network bound, its compute "
                 "plus the wire model's bytes of the busiest rank at this rate")->check(CLI::PositiveNumber);
  app.add_option("--chunk", chunk_option,
                 "coordinates of each server slice per chunk of the chunked exchange (run.exchange_chunk; 0: one "
                 "chunk, the blocking collectives; -1, the default: the deck's auto)")
      ->check(CLI::Range(-1LL, 1LL << 40));
  app.add_flag("--unpaired", unpaired,
               "time each algorithm and sgd alone instead of alternating every iteration with sgd (where the "
               "network, not a noisy memory system, sets the time: sgd's iterations are the slow ones)");
  std::vector<char*> args;
  for (const auto& a : rt.args()) args.push_back(const_cast<char*>(a.c_str()));
  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::ParseError& e) {
    return rt.rank() == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
  }
  const int P = rt.size();
  const bool root = rt.rank() == 0;
  const std::int64_t chunk = chunk_option;  // the Layout's: -1 is auto
  optim::Layout chunk_layout;
  chunk_layout.exchange_chunk = chunk;
  const auto chunk_coords = static_cast<std::size_t>(chunk_layout.chunk_for(P));
  for (const auto& a : algorithms) {  // refuse what cannot be timed before timing anything (every rank alike)
    try {
      Path::spec(a);
    } catch (const std::exception& e) {
      if (root) std::fprintf(stderr, "terse_bench_pipeline: --algorithms: %s\n", e.what());
      return 2;
    }
  }
  const auto ctx = context(P);
  if (root) {
    std::printf("terse_bench_pipeline: %d ranks x %s threads (%s), %s; Kokkos %s; %s\n", P,
                ctx.at("threads_per_rank").c_str(), ctx.at("execution_space").c_str(), ctx.at("cpu").c_str(),
                ctx.at("kokkos_version").c_str(), ctx.at("mpi").c_str());
    std::printf("%-14s %6s %11s %11s %11s %11s %11s %11s %6s %12s %8s %8s", "algorithm", "log2 d", "s/iter",
                "compute s", "MPI s", "compress s", "exchange s", "apply s", "colls", "bytes/rank", "t/t_sgd",
                "B/4d");
    if (link_gbps > 0)
      std::printf(" %12s %12s %11s %7s %11s %7s", "wire B/rank", "link B/host", "bound s", "t/bound", "max s", "t/max");
    std::printf(" %6s\n", "chunks");
  }
  const auto bound = [&](const Result& r) {
    return link_gbps > 0 ? r.compute_seconds + r.wire_model_max * 8 / (link_gbps * 1e9) : -1.0;
  };
  // What a perfect overlap of the compute and the wire would take: the larger of the two.
  const auto overlap_bound = [&](const Result& r) {
    return link_gbps > 0 ? std::max(r.compute_seconds, r.wire_model_max * 8 / (link_gbps * 1e9)) : -1.0;
  };
  const int largest = *std::max_element(dims_log2.begin(), dims_log2.end());
  std::vector<Result> results;
  const auto print = [&](const Result& r, int e) {
    if (!root) return;
    std::printf("%-14s %6d %11.4e %11.4e %11.4e %11.4e %11.4e %11.4e %6.1f %12.0f %8.4f %8.6f", r.algorithm.c_str(), e,
                r.seconds, r.compute_seconds, r.mpi_seconds, r.phase_seconds[0], r.phase_seconds[1], r.phase_seconds[2],
                r.collectives, r.bytes, r.ratio_to_sgd, r.bytes / (4.0 * static_cast<double>(r.d)));
    if (link_gbps > 0)
      std::printf(" %12.0f %12.0f %11.4e %7.3f %11.4e %7.3f", r.wire_model_max, r.link_sent_max, bound(r),
                  r.seconds / bound(r), overlap_bound(r), r.seconds / overlap_bound(r));
    std::printf(" %6zu\n", r.chunks);
    std::fflush(stdout);
  };
  for (int e : dims_log2) {
    const std::uint64_t d = std::uint64_t(1) << e;
    const std::size_t first = results.size();
    {
      // Every algorithm is timed against the sgd path, iteration by iteration (measure_paired), or alone.
      Path sgd_path(MPI_COMM_WORLD, "sgd", d, chunk);
      std::vector<Path::Sample> sgd_samples;
      std::uint64_t sgd_bytes = 0;
      results.emplace_back();
      if (unpaired) {
        results[first] = measure_alone(sgd_path, "sgd", d, warmup, repeats);
        print(results[first], e);
      }
      for (const auto& a : algorithms) {
        if (a == "sgd") continue;
        if (unpaired) {
          Path path(MPI_COMM_WORLD, a, d, chunk);
          results.push_back(measure_alone(path, a, d, warmup, repeats));
          results.back().ratio_to_sgd = results.back().seconds / results[first].seconds;
        } else {
          results.push_back(measure_paired(MPI_COMM_WORLD, a, sgd_path, d, chunk, warmup, repeats, sgd_samples, sgd_bytes));
        }
        print(results.back(), e);
      }
      Result& sgd = results[first];
      if (!unpaired) {
        if (sgd_samples.empty()) {
          sgd = measure_alone(sgd_path, "sgd", d, warmup, repeats);
        } else {
          sgd.algorithm = "sgd";
          sgd.d = d;
          summarise(sgd, sgd_samples, sgd_bytes);
          sgd.ratio_to_sgd = 1;
        }
        sgd.pairs = static_cast<int>(sgd_samples.size());
        print(sgd, e);
      }
    }
    if (e == largest)
      for (std::size_t i = first; i < results.size(); ++i) measure_memory(MPI_COMM_WORLD, results[i], chunk, warmup + 1);
  }
  if (root) {
    std::printf("\nmemory at d = 2^%d (per rank): resident peak above the baseline, Kokkos's peak, the state formula\n",
                largest);
    for (const auto& r : results)
      if (r.rss_peak >= 0 || r.kokkos_peak > 0)
        std::printf("%-14s rss %10.1f MiB  kokkos %10.1f MiB  formula %10.1f MiB  rss/formula %.3f\n",
                    r.algorithm.c_str(), r.rss_peak / 1048576, r.kokkos_peak / 1048576, r.formula / 1048576,
                    r.rss_peak / r.formula);
  }
  if (root && !out.empty()) {
    std::ofstream f(out);
    f << "{\n  \"benchmark\": \"terse_bench_pipeline\",\n  \"context\": {";
    bool firstc = true;
    for (const auto& [key, val] : ctx) {
      f << (firstc ? "\n" : ",\n") << "    \"" << key << "\": \"" << json_escape(val) << "\"";
      firstc = false;
    }
    f << "\n  },\n  \"network\": {\"bandwidth_gbps\": " << bandwidth_gbps << ", \"latency_us\": " << latency_us
      << ", \"link_gbps\": " << link_gbps << ", \"interface\": \"" << json_escape(link_counters().name)
      << "\", \"paired\": " << (unpaired ? "false" : "true") << "},\n  \"repeats\": " << repeats << ",\n  \"results\": [";
    for (std::size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      const double steps = std::ceil(std::log2(std::max(P, 2)));
      const double projected = r.compute_seconds + r.collectives * latency_us * 1e-6 * steps + r.bytes * 8 / (bandwidth_gbps * 1e9);
      char buf[2048];
      std::snprintf(buf, sizeof buf,
                    "%s\n    {\"algorithm\": \"%s\", \"d\": %llu, \"ranks\": %d, \"seconds\": %.6e, \"seconds_min\": %.6e, "
                    "\"compute_seconds\": %.6e, \"mpi_seconds\": %.6e, \"compress_seconds\": %.6e, \"exchange_seconds\": %.6e, "
                    "\"apply_seconds\": %.6e, \"collectives\": %.2f, \"bytes_per_rank\": %.1f, "
                    "\"projected_seconds\": %.6e, \"rss_peak_bytes\": %.0f, \"kokkos_peak_bytes\": %.0f, "
                    "\"formula_bytes\": %.0f, \"ratio_to_sgd\": %.6e, \"pairs\": %d, \"wire_model_bytes\": %.1f, "
                    "\"wire_model_bytes_max\": %.1f, \"link_sent_bytes\": %.1f, \"link_sent_bytes_max\": %.1f, "
                    "\"link_received_bytes\": %.1f, \"bound_seconds\": %.6e, \"overlap_bound_seconds\": %.6e, "
                    "\"chunks\": %zu, \"exchange_chunk\": %zu}",
                    i ? "," : "", r.algorithm.c_str(), static_cast<unsigned long long>(r.d), P, r.seconds, r.seconds_min,
                    r.compute_seconds, r.mpi_seconds, r.phase_seconds[0], r.phase_seconds[1], r.phase_seconds[2],
                    r.collectives, r.bytes, projected, r.rss_peak, r.kokkos_peak,
                    r.formula, r.ratio_to_sgd, r.pairs, r.wire_model, r.wire_model_max, r.link_sent, r.link_sent_max,
                    r.link_received, bound(r), overlap_bound(r), r.chunks, chunk_coords);
      f << buf;
    }
    f << "\n  ]\n}\n";
    std::printf("wrote %s\n", out.c_str());
  }
  return 0;
}
