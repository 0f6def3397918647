// bench_pipeline.cpp: the end-to-end benchmark of one iteration's communication path, over MPI.
//
// For each algorithm and dimension d it builds the pieces `terse run` builds (terse_Round.hpp: the workers'
// compressors and memories, the sharded exchange, the server's aggregation and downlink; the update rule of
// terse_Update.hpp) with one worker per rank and times, per iteration, compress -> exchange -> aggregate ->
// downlink -> apply, the gradient being given. The slowest rank's time is the iteration's time (MPI_MAX);
// the report gives medians over the repetitions. The compressed paths (majority_vote, ef_signsgd, cd_adam,
// ef21, ...) and the uncompressed ones (sgd and amsgrad: an fp32 MPI_Allreduce of the gradient, then the
// update) run in the same process, one after the other, so their ratios compare like with like.
//
// Besides the time, for every configuration:
//   * the bytes this rank handed to MPI per iteration (the Round's own count), and their ratio to sgd's;
//   * the time spent inside MPI collectives, from PMPI wrappers of the collectives the pieces call, so
//     compute = time - MPI time; and a projection of the iteration onto a network of bandwidth B and
//     latency L:  T = compute + collectives * L * ceil(log2 P) + bytes / B;
//   * at the largest d, the process's peak resident memory (VmHWM, reset per algorithm through
//     /proc/self/clear_refs) above its resident memory before the pieces were built, against the state
//     formula (what the constructors allocate: x, the gradient, the update rule's state and Round::bytes)
//     and against Kokkos's own count of the bytes it allocated (AllocationTracker).
// Every result file records what it ran on (CPU or GPU, Kokkos version and backend, threads, ranks,
// compiler, MPI library), so bench/compare.py can put files from different machines side by side.
//
// usage: mpiexec -n P terse_bench_pipeline [--dims 20,24,26] [--algorithms ...] [--repeats N] [--out F.json]
#include "terse_AllocationTracker.hpp"
#include "terse_Algorithm.hpp"
#include "terse_Round.hpp"
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
#include <sstream>
#include <string>
#include <thread>
#include <vector>

// ------------------------------------------------------------------------------------------------------------
// Time inside MPI collectives (PMPI): the collectives the exchange pieces call.
// ------------------------------------------------------------------------------------------------------------
namespace {
struct MpiClock {
  bool on = false;
  double seconds = 0;
  long calls = 0;
};
MpiClock& mpi_clock() {
  static MpiClock c;
  return c;
}
template <class F>
int timed(F&& f) {
  MpiClock& c = mpi_clock();
  if (!c.on) return f();
  const double t0 = PMPI_Wtime();
  const int r = f();
  c.seconds += PMPI_Wtime() - t0;
  ++c.calls;
  return r;
}
}  // namespace

extern "C" {
int MPI_Allreduce(const void* s, void* r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm c) {
  return timed([&] { return PMPI_Allreduce(s, r, n, t, op, c); });
}
int MPI_Alltoall(const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt, MPI_Comm c) {
  return timed([&] { return PMPI_Alltoall(s, sn, st, r, rn, rt, c); });
}
int MPI_Alltoallv(const void* s, const int* sc, const int* sd, MPI_Datatype st, void* r, const int* rc, const int* rd,
                  MPI_Datatype rt, MPI_Comm c) {
  return timed([&] { return PMPI_Alltoallv(s, sc, sd, st, r, rc, rd, rt, c); });
}
int MPI_Allgather(const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt, MPI_Comm c) {
  return timed([&] { return PMPI_Allgather(s, sn, st, r, rn, rt, c); });
}
int MPI_Allgatherv(const void* s, int sn, MPI_Datatype st, void* r, const int* rc, const int* rd, MPI_Datatype rt,
                   MPI_Comm c) {
  return timed([&] { return PMPI_Allgatherv(s, sn, st, r, rc, rd, rt, c); });
}
}

namespace {

using namespace terse;
using namespace terse::pieces;

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

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
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
  c["cpu"] = cpu_model();
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
// One configuration
// ------------------------------------------------------------------------------------------------------------

struct Result {
  std::string algorithm;
  std::uint64_t d = 0;
  double seconds = 0, seconds_min = 0, compute_seconds = 0, mpi_seconds = 0;
  double phase_seconds[3] = {0, 0, 0};  // compress, exchange, apply (each the slowest rank's)
  double collectives = 0;  // MPI collective calls per iteration
  double bytes = 0;        // handed to MPI per rank and iteration
  // memory (only at the largest d): resident peak above the baseline, the formula, Kokkos's peak
  double rss_peak = -1, formula = 0, kokkos_peak = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

OptimizerKind kind_of(const std::string& name) {
  for (int i = 0; i <= static_cast<int>(OptimizerKind::onebit_adam); ++i)
    if (name == to_string(static_cast<OptimizerKind>(i))) return static_cast<OptimizerKind>(i);
  throw std::invalid_argument("unknown algorithm '" + name + "'");
}

Result measure(MPI_Comm comm, const std::string& algorithm, std::uint64_t d, int warmup, int repeats, bool memory) {
  int rank = 0, P = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &P);
  OptimizerConfig o;
  o.kind = kind_of(algorithm);
  o.compressor = o.kind == OptimizerKind::ef21 ? Compressor::top_k : Compressor::scaled_sign;
  const Composition c = compose(o);
  if (c.local()) throw std::invalid_argument(algorithm + ": a local method has no per-iteration communication path");
  const std::uint64_t k = c.wire == Wire::top_k ? top_k_count(o.k_ratio, d) : 0;
  Exec space;
  Result res;
  res.algorithm = algorithm;
  res.d = d;

  MPI_Barrier(comm);
  const bool rss = memory && reset_peak_rss();
  const double rss_before = status_bytes("VmRSS");
  std::optional<AllocationTracker> tracker;
  if (memory) tracker.emplace();
  {
    // The pieces and the state: the model, the worker's gradient, the rule's state, the round.
    Vec x("terse::x", d);
    Mat grads("terse::worker.gradients", 1, d);
    Vec m, v, v_hat;
    if (c.rule == Rule::amsgrad) {
      m = Vec("terse::amsgrad.m", d);
      v = Vec("terse::amsgrad.v", d);
      v_hat = Vec("terse::amsgrad.v_hat", d);
    }
    Round round(comm, c, d, 1, k, 7, rank);
    res.formula = static_cast<double>(d * sizeof(float) * (c.rule == Rule::amsgrad ? 5 : 2) +
                                      Round::bytes(c, d, 1, k, P, rank));
    // A gradient of N(0, 1) values, different on each rank.
    const CounterRng rng{42, static_cast<std::uint32_t>(RandomStream::gradient_noise)};
    auto g = row(grads, 0);
    const auto w = static_cast<std::uint32_t>(rank);
    Kokkos::parallel_for("terse::bench::gradient", Kokkos::RangePolicy<Exec>(space, 0, d),
                         KOKKOS_LAMBDA(std::size_t i) { g(i) = static_cast<float>(rng.normal(0, w, i)); });
    const float lr = 1e-4f;
    double phase[3] = {0, 0, 0};  // compress, exchange (with aggregation and downlink), apply: this rank
    const auto iteration = [&](std::uint64_t it) {
      Kokkos::Timer timer;
      round.encode(space, 0, g, it);
      space.fence();
      phase[0] = timer.seconds();
      round.exchange(space, grads);
      space.fence();
      phase[1] = timer.seconds() - phase[0];
      switch (c.rule) {
        case Rule::sgd: sgd_step(space, x, round.direction(), lr); break;
        case Rule::amsgrad: amsgrad_step(space, x, m, v, v_hat, round.direction(), {lr, o.beta1, o.beta2, o.nu}); break;
        case Rule::adagrad: break;
        case Rule::sign: sign_apply_voted(space, round.vote_words(), round.tie_words(), x, lr); break;
        default: break;
      }
      space.fence();
      phase[2] = timer.seconds() - phase[0] - phase[1];
    };
    for (int i = 0; i < warmup; ++i) iteration(static_cast<std::uint64_t>(i));
    std::vector<double> times, computes, mpis, phases[3];
    const std::uint64_t bytes_before = round.bytes_sent();
    long calls = 0;
    for (int i = 0; i < repeats; ++i) {
      MPI_Barrier(comm);
      MpiClock& clk = mpi_clock();
      clk = MpiClock{true, 0, 0};
      const double t0 = MPI_Wtime();
      iteration(static_cast<std::uint64_t>(warmup + i));
      double t[2] = {MPI_Wtime() - t0, 0};
      clk.on = false;
      t[1] = t[0] - clk.seconds;
      calls += clk.calls;
      double slowest[2];
      MPI_Allreduce(t, slowest, 2, MPI_DOUBLE, MPI_MAX, comm);
      double phase_max[3];
      MPI_Allreduce(phase, phase_max, 3, MPI_DOUBLE, MPI_MAX, comm);
      for (int q = 0; q < 3; ++q) phases[q].push_back(phase_max[q]);
      times.push_back(slowest[0]);
      computes.push_back(slowest[1]);
      mpis.push_back(slowest[0] - slowest[1]);
    }
    res.seconds = median(times);
    res.seconds_min = *std::min_element(times.begin(), times.end());
    for (int q = 0; q < 3; ++q) res.phase_seconds[q] = median(phases[q]);
    res.compute_seconds = median(computes);
    res.mpi_seconds = median(mpis);
    res.collectives = static_cast<double>(calls) / repeats;
    res.bytes = static_cast<double>(round.bytes_sent() - bytes_before) / repeats;
    if (memory) {
      res.kokkos_peak = static_cast<double>(tracker->peak());
      res.rss_peak = rss ? status_bytes("VmHWM") - rss_before : -1;
    }
  }
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  terse::Runtime rt(argc, argv);
  std::vector<int> dims_log2{20, 24, 26};
  std::vector<std::string> algorithms{"sgd", "amsgrad", "majority_vote", "ef_signsgd", "cd_adam", "ef21"};
  int repeats = 10, warmup = 2;
  double bandwidth_gbps = 100, latency_us = 2;
  std::string out;
  CLI::App app{"terse_bench_pipeline: one iteration's communication path per algorithm, against the fp32 "
               "allreduce path (sgd, amsgrad), over the ranks of the job"};
  app.add_option("--dims", dims_log2, "log2 of the dimensions d")->delimiter(',');
  app.add_option("--algorithms", algorithms, "optimizer.kind values (not the local methods)")->delimiter(',');
  app.add_option("--repeats", repeats, "timed iterations per configuration (the median is reported)")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed iterations first")->check(CLI::NonNegativeNumber);
  app.add_option("--bandwidth-gbps", bandwidth_gbps, "network bandwidth of the projection, Gbit/s")->check(CLI::PositiveNumber);
  app.add_option("--latency-us", latency_us, "network latency of the projection, microseconds")->check(CLI::NonNegativeNumber);
  app.add_option("--out", out, "JSON result file (rank 0 writes it)");
  std::vector<char*> args;
  for (const auto& a : rt.args()) args.push_back(const_cast<char*>(a.c_str()));
  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::ParseError& e) {
    return rt.rank() == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
  }
  const int P = rt.size();
  const bool root = rt.rank() == 0;
  const auto ctx = context(P);
  if (root) {
    std::printf("terse_bench_pipeline: %d ranks x %s threads (%s), %s; Kokkos %s; %s\n", P,
                ctx.at("threads_per_rank").c_str(), ctx.at("execution_space").c_str(), ctx.at("cpu").c_str(),
                ctx.at("kokkos_version").c_str(), ctx.at("mpi").c_str());
    std::printf("%-14s %6s %11s %11s %11s %11s %11s %11s %6s %12s %8s %8s\n", "algorithm", "log2 d", "s/iter",
                "compute s", "MPI s", "compress s", "exchange s", "apply s", "colls", "bytes/rank", "t/t_sgd",
                "B/B_sgd");
  }
  const int largest = *std::max_element(dims_log2.begin(), dims_log2.end());
  std::vector<Result> results;
  for (int e : dims_log2) {
    const std::uint64_t d = std::uint64_t(1) << e;
    const Result* sgd = nullptr;
    const std::size_t first = results.size();
    for (const auto& a : algorithms) {
      results.push_back(measure(MPI_COMM_WORLD, a, d, warmup, repeats, e == largest));
      for (std::size_t i = first; i < results.size(); ++i)
        if (results[i].algorithm == "sgd") sgd = &results[i];
      const Result& r = results.back();
      if (root)
        std::printf("%-14s %6d %11.4e %11.4e %11.4e %11.4e %11.4e %11.4e %6.1f %12.0f %8s %8s\n", r.algorithm.c_str(),
                    e, r.seconds, r.compute_seconds, r.mpi_seconds, r.phase_seconds[0], r.phase_seconds[1],
                    r.phase_seconds[2], r.collectives, r.bytes,
                    sgd ? std::to_string(r.seconds / sgd->seconds).substr(0, 6).c_str() : "-",
                    sgd && sgd->bytes > 0 ? std::to_string(r.bytes / sgd->bytes).substr(0, 8).c_str() : "-");
      std::fflush(stdout);
    }
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
      << "},\n  \"repeats\": " << repeats << ",\n  \"results\": [";
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
                    "\"formula_bytes\": %.0f}",
                    i ? "," : "", r.algorithm.c_str(), static_cast<unsigned long long>(r.d), P, r.seconds, r.seconds_min,
                    r.compute_seconds, r.mpi_seconds, r.phase_seconds[0], r.phase_seconds[1], r.phase_seconds[2],
                    r.collectives, r.bytes, projected, r.rss_peak, r.kokkos_peak,
                    r.formula);
      f << buf;
    }
    f << "\n  ]\n}\n";
    std::printf("wrote %s\n", out.c_str());
  }
  return 0;
}
