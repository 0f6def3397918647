#pragma once
// terse_Data.hpp: the data-file readers of `terse run` (host code, no Kokkos).
//
//   * LibSVM text files ("label idx:val idx:val ..." with 1-based, strictly increasing indices) read into a
//     CSR matrix: the data of the `logistic` problem (seed 004 eq. (7.1));
//   * IDX files (gzip-compressed or raw), Fashion-MNIST in particular: two selected classes as a +-1
//     logistic problem (CSR), or all ten classes as dense [0,1] features for the `mlp` problem;
//   * binary_labels(): exactly two distinct label values become -1 (the smaller) and +1 (the larger);
//   * row_block(): worker w of W owns rows floor(w N / W) .. floor((w+1) N / W) - 1.
//
// Every problem with a file is reported as a DataError whose message names the file ("PATH: ..."), the
// line for text files ("PATH:LINE: ..."), and what was expected against what was found.

#include "terse_Error.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace terse {

/// A malformed, missing or unusable data file. A UserError, so `terse` prints it and exits non-zero.
struct DataError : UserError {
  using UserError::UserError;
};

/// Sparse rows in CSR form. Row i holds the entries k in [row_ptr[i], row_ptr[i+1]): column col[k]
/// (0-based) with value val[k]; columns increase strictly within a row. labels[i] is row i's label.
struct SparseDataset {
  std::vector<std::uint64_t> row_ptr{0};  ///< rows() + 1 offsets, row_ptr[0] == 0
  std::vector<std::uint32_t> col;         ///< 0-based column of each stored entry
  std::vector<float> val;                 ///< value of each stored entry
  std::vector<double> labels;             ///< one per row
  std::uint64_t dim = 0;                  ///< number of columns (every col[k] < dim)
  std::string source;                     ///< where the rows came from, for messages

  std::uint64_t rows() const { return labels.size(); }
  std::uint64_t nnz() const { return col.size(); }
};

/// Dense rows (row-major, rows() x dim floats) with integer class labels 0 .. num_classes - 1.
struct DenseDataset {
  std::vector<float> features;        ///< rows() * dim values, row i at [i * dim, (i + 1) * dim)
  std::vector<std::int32_t> labels;   ///< one per row
  std::uint64_t dim = 0;
  int num_classes = 0;
  std::string source;

  std::uint64_t rows() const { return labels.size(); }
};

// ---------------------------------------------------------------------------------------------------------
// LibSVM

/// The largest feature index (1-based) a LibSVM file may use: columns then fit a signed 32-bit integer.
inline constexpr std::uint64_t max_feature_index = 2147483647ull;  // 2^31 - 1

struct LibsvmOptions {
  /// 0: the dimension is the largest feature index found. Otherwise the dimension, and an index above
  /// it is an error (the deck's `dim`).
  std::uint64_t dim = 0;
  /// Indices above this are an error even when `dim` is 0 (a guard against absurd dimensions).
  std::uint64_t max_dim = max_feature_index;
};

/// Reads a LibSVM file (gzip-compressed or plain). Format, one row per line:
///   label idx:val idx:val ...   # optional comment
/// with a finite label, 1-based strictly increasing indices (no duplicates), finite values that fit a
/// float; tokens are separated by spaces or tabs, a trailing '\r' is ignored. Blank lines and lines holding
/// only a comment are skipped (they are counted in LibsvmStats::skipped_lines but are no rows); a line with
/// a label and no features is a row of zeros. Labels are returned as written: see binary_labels().
/// Throws DataError ("PATH:LINE: ...") on a malformed line, and ("PATH: ...") for a missing, directory,
/// unreadable, empty or row-less file.
SparseDataset read_libsvm(const std::string& path, const LibsvmOptions& options = {});

/// What read_libsvm saw besides the rows.
struct LibsvmStats {
  std::uint64_t lines = 0;          ///< physical lines read
  std::uint64_t skipped_lines = 0;  ///< blank or comment-only lines
};
/// read_libsvm() that also reports the lines read and skipped.
SparseDataset read_libsvm(const std::string& path, const LibsvmOptions& options, LibsvmStats& stats);

// ---------------------------------------------------------------------------------------------------------
// Labels

/// The two label values of a binary problem and the labels mapped to -1 (negative) / +1 (positive).
struct BinaryLabels {
  std::vector<double> y;  ///< -1 or +1, one per input label
  double negative = 0;    ///< the original value mapped to -1 (the smaller)
  double positive = 0;    ///< the original value mapped to +1 (the larger)
};

/// Maps labels taking exactly two distinct values to -1 (the smaller) and +1 (the larger). Otherwise
/// throws DataError "SOURCE: labels take N distinct values (v1, v2, ...), a binary problem needs exactly 2"
/// listing up to 5 of them.
BinaryLabels binary_labels(const std::vector<double>& labels, const std::string& source);

/// binary_labels() applied in place to a dataset's labels (source: the dataset's).
BinaryLabels make_binary(SparseDataset& data);

// ---------------------------------------------------------------------------------------------------------
// IDX (http://yann.lecun.com/exdb/mnist/ format: big-endian header, unsigned-byte data)

inline constexpr std::uint32_t idx_images_magic = 0x00000803;  ///< ubyte, 3 dimensions
inline constexpr std::uint32_t idx_labels_magic = 0x00000801;  ///< ubyte, 1 dimension

struct IdxImages {
  std::uint64_t count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  ///< count * rows * cols bytes, image after image, row-major
  std::string source;
  std::uint64_t pixels_per_image() const { return rows * cols; }
};

struct IdxLabels {
  std::vector<std::uint8_t> labels;
  std::string source;
};

/// Reads an IDX image file (magic 0x00000803: unsigned bytes, count x rows x cols), gzip-compressed or raw.
/// Throws DataError for a wrong magic, an empty dimension, a truncated file (fewer data bytes than the
/// header promises), trailing bytes after the data, or a gzip error (corrupt or truncated stream).
IdxImages read_idx_images(const std::string& path);

/// Reads an IDX label file (magic 0x00000801: unsigned bytes, count), with the same checks.
IdxLabels read_idx_labels(const std::string& path);

/// Reads an image file and its label file and checks that they agree (as many labels as images, every
/// label below num_classes).
struct IdxPair {
  IdxImages images;
  IdxLabels labels;
};
IdxPair read_idx_pair(const std::string& images_path, const std::string& labels_path, int num_classes);

// ---------------------------------------------------------------------------------------------------------
// Fashion-MNIST

/// Where Debian's dataset-fashion-mnist package installs the files.
inline constexpr const char* fashion_mnist_train_images = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
inline constexpr const char* fashion_mnist_train_labels = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz";
inline constexpr const char* fashion_mnist_test_images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
inline constexpr const char* fashion_mnist_test_labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
inline constexpr int fashion_mnist_classes = 10;
/// The class names, in label order.
inline constexpr std::array<const char*, 10> fashion_mnist_class_names = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

/// The images of classes class_a and class_b (in file order) as a logistic-regression problem: CSR rows of
/// pixel / 255 (zero pixels not stored), dim = rows * cols of an image, label -1 for class_a and +1 for
/// class_b. Throws DataError for bad files, equal or out-of-range classes, or a class with no image.
SparseDataset fashion_mnist_binary(const std::string& images_path, const std::string& labels_path,
                                   int class_a, int class_b);

/// Every image as dense features pixel / 255 in [0, 1] with its label 0..9 (num_classes = 10): the data of
/// the `mlp` problem.
DenseDataset fashion_mnist_multiclass(const std::string& images_path, const std::string& labels_path);

/// Dense [0, 1] features of already-read IDX images and labels (checked as read_idx_pair does).
DenseDataset idx_to_dense(const IdxPair& pair, int num_classes);

// ---------------------------------------------------------------------------------------------------------
// Partitioning

/// The half-open row range [begin, end) of one worker.
struct RowRange {
  std::uint64_t begin = 0, end = 0;
  std::uint64_t size() const { return end - begin; }
};

/// Worker `worker` of `workers` owns rows floor(worker N / workers) .. floor((worker + 1) N / workers) - 1
/// (exact integer arithmetic, no overflow for any N). Throws DataError "SOURCE: more workers (W) than data
/// rows (N)" when workers > n, and std::invalid_argument for workers < 1 or worker outside 0..workers-1.
RowRange row_block(std::uint64_t n, int workers, int worker, const std::string& source = "data");

/// Rows [range.begin, range.end) of a dataset, with the same dim (row_ptr rebased to 0).
SparseDataset slice_rows(const SparseDataset& data, RowRange range);
DenseDataset slice_rows(const DenseDataset& data, RowRange range);

}  // namespace terse
