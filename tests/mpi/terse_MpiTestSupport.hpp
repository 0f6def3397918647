#pragma once
// terse_MpiTestSupport.hpp: what the tests of `terse run` share (tests/mpi/tstMpiRun.cpp, tstMpiReference.cpp):
// the rank helpers, the data files the tests make (a planted LibSVM problem, a Fashion-MNIST subset), the
// problem sections of their decks, quiet run options, and the workers' gradients at a reference's model.
#include <terse_Data.hpp>
#include <terse_Deck.hpp>
#include <terse_Problem.hpp>
#include <terse_Run.hpp>

#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace terse::test_support {

inline int rank_of(MPI_Comm c = MPI_COMM_WORLD) {
  int r = 0;
  MPI_Comm_rank(c, &r);
  return r;
}
inline int size_of(MPI_Comm c = MPI_COMM_WORLD) {
  int s = 1;
  MPI_Comm_size(c, &s);
  return s;
}

inline void write_be32(std::ofstream& f, std::uint32_t v) {
  const unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                              static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
  f.write(reinterpret_cast<const char*>(b), 4);
}

/// The first `count` images and labels of an IDX pair, written raw (uncompressed) under dir/prefix-*.
inline void write_idx_subset(const std::string& images, const std::string& labels, std::size_t count,
                      const std::string& out_images, const std::string& out_labels) {
  const IdxImages im = read_idx_images(images);
  const IdxLabels lb = read_idx_labels(labels);
  std::ofstream fi(out_images, std::ios::binary), fl(out_labels, std::ios::binary);
  write_be32(fi, idx_images_magic);
  write_be32(fi, static_cast<std::uint32_t>(count));
  write_be32(fi, static_cast<std::uint32_t>(im.rows));
  write_be32(fi, static_cast<std::uint32_t>(im.cols));
  fi.write(reinterpret_cast<const char*>(im.pixels.data()), static_cast<std::streamsize>(count * im.pixels_per_image()));
  write_be32(fl, idx_labels_magic);
  write_be32(fl, static_cast<std::uint32_t>(count));
  fl.write(reinterpret_cast<const char*>(lb.labels.data()), static_cast<std::streamsize>(count));
}

/// Data files shared by all ranks (rank 0 writes them on the first call, which must be collective).
struct Files {
  std::string dir, svm, svm_wide, train_images, train_labels, test_images, test_labels;
};

/// A LibSVM file of `rows` rows and `features` features (each nonzero with probability `density`, N(0, 1)),
/// labelled by the sign of a planted N(0, 1) model plus N(0, 0.25) noise.
inline void write_planted_svm(const std::string& path, int rows, int features, double density, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform;
  std::vector<double> w(features);
  for (auto& v : w) v = normal(gen);
  std::ofstream svm(path);
  for (int i = 0; i < rows; ++i) {
    std::vector<double> x(features);
    double dot = 0;
    for (int j = 0; j < features; ++j) {
      x[j] = uniform(gen) < density ? normal(gen) : 0.0;
      dot += x[j] * w[j];
    }
    svm << (dot + 0.5 * normal(gen) > 0 ? "+1" : "-1");
    for (int j = 0; j < features; ++j)
      if (x[j] != 0) svm << ' ' << j + 1 << ':' << x[j];
    svm << '\n';
  }
}

inline const Files& files() {
  static Files f = [] {
    Files out;
    std::string dir;
    if (rank_of() == 0) {
      dir = (std::filesystem::temp_directory_path() / ("terse-run-test-" + std::to_string(::getpid()))).string();
      std::filesystem::create_directories(dir);
    }
    int len = static_cast<int>(dir.size());
    MPI_Bcast(&len, 1, MPI_INT, 0, MPI_COMM_WORLD);
    dir.resize(len);
    MPI_Bcast(dir.data(), len, MPI_CHAR, 0, MPI_COMM_WORLD);
    out.dir = dir;
    out.svm = dir + "/planted.svm";
    out.svm_wide = dir + "/planted-wide.svm";
    out.train_images = dir + "/train-images-idx3-ubyte";
    out.train_labels = dir + "/train-labels-idx1-ubyte";
    out.test_images = dir + "/t10k-images-idx3-ubyte";
    out.test_labels = dir + "/t10k-labels-idx1-ubyte";
    if (rank_of() == 0) {
      // 400 rows, 30 features, half of them zero; labels from a planted model plus noise. The references
      // (tstMpiReference.cpp) use a wider one, 300 features in 5 words, so that 4 ranks each serve a slice.
      write_planted_svm(out.svm, 400, 30, 0.5, 12345);
      write_planted_svm(out.svm_wide, 240, 300, 0.2, 777);
      write_idx_subset(kFashionMnistDir + std::string("train-images-idx3-ubyte.gz"),
                       kFashionMnistDir + std::string("train-labels-idx1-ubyte.gz"), 512, out.train_images,
                       out.train_labels);
      write_idx_subset(kFashionMnistDir + std::string("t10k-images-idx3-ubyte.gz"),
                       kFashionMnistDir + std::string("t10k-labels-idx1-ubyte.gz"), 256, out.test_images,
                       out.test_labels);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    return out;
  }();
  return f;
}


/// The problem section of a test deck: quadratic (d = 300), rosenbrock (d = 10), the planted logistic problem
/// (d = 30, 400 rows) or the mlp (16 hidden units) on the Fashion-MNIST subset.
inline std::string problem_yaml(const std::string& problem) {
  const Files& f = files();
  if (problem == "quadratic") return "problem: {kind: quadratic, dim: 300, noise_std: 0.1}\n";
  if (problem == "rosenbrock") return "problem: {kind: rosenbrock, dim: 10, noise_std: 0.1}\n";
  if (problem == "logistic") return "problem: {kind: logistic, data: '" + f.svm + "'}\n";
  const std::string images = "train_images: '" + f.train_images + "', train_labels: '" + f.train_labels +
                             "', test_images: '" + f.test_images + "', test_labels: '" + f.test_labels + "'";
  // the cnn small (d = 3578): seed 000's layers with 2 and 4 channels and 16 dense units
  if (problem == "cnn") return "problem: {kind: cnn, channels: [2, 4], hidden: 16, " + images + "}\n";
  return "problem: {kind: mlp, hidden: 16, " + images + "}\n";
}

/// Run options of the tests: no history file, no progress lines.
inline RunOptions quiet() {
  RunOptions o;
  o.write_history = false;
  o.progress = nullptr;
  return o;
}

/// The W workers' stochastic gradients at the model x of a scalar reference (rounded to fp32, as terse holds
/// it), iteration k, from the problem's own gradient (the references share the objective with terse, not the
/// algorithm).
template <class P>
std::vector<std::vector<double>> reference_gradients(P& problem, const Deck& deck, const std::vector<double>& x, int k,
                                                     int W) {
  const std::size_t d = x.size();
  typename P::vector_type xd("x", d), gd("g", d);
  auto xh = Kokkos::create_mirror_view(xd);
  auto gh = Kokkos::create_mirror_view(gd);
  for (std::size_t i = 0; i < d; ++i) xh(i) = static_cast<float>(x[i]);
  Kokkos::deep_copy(xd, xh);
  std::vector<std::vector<double>> g(W, std::vector<double>(d));
  for (int w = 0; w < W; ++w) {
    problem.stochastic_gradient(xd, w, static_cast<std::uint64_t>(k), batch_of(deck.run), deck.run.seed, gd);
    Kokkos::deep_copy(gh, gd);
    for (std::size_t i = 0; i < d; ++i) g[w][i] = gh(i);
  }
  return g;
}

}  // namespace terse::test_support
