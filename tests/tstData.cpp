// Tests of the data readers (drivers/io/terse_Data.hpp): LibSVM parsing and its error messages, binary labels,
// IDX files (gzip and raw, written here with zlib), Fashion-MNIST (the Debian files, when installed) and the
// row partition of the driver issue. Small files are written to a temporary directory per test.
#include <terse_Data.hpp>

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace {

namespace fs = std::filesystem;

static_assert(std::is_base_of_v<terse::UserError, terse::DataError>, "terse prints DataError as a user error");

/// A fresh directory under the system's temporary directory, removed with its content on destruction.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("terse-tstData-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

void write_gzip(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// An IDX file: big-endian magic and dimensions, then the bytes.
std::string idx_bytes(std::uint32_t magic, const std::vector<std::uint32_t>& dims, const std::vector<std::uint8_t>& data) {
  std::string out;
  const auto put32 = [&](std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
  };
  put32(magic);
  for (std::uint32_t d : dims) put32(d);
  out.append(data.begin(), data.end());
  return out;
}

/// Runs f, which must throw DataError, and checks that the message holds every part; returns the message.
std::string expect_data_error(const std::function<void()>& f, std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const terse::DataError& e) {
    const std::string msg = e.what();
    for (const std::string& part : parts) EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected terse::DataError, got another exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected terse::DataError, nothing was thrown";
  return {};
}

// ---------------------------------------------------------------------------------------------------------
// LibSVM

TEST(DataLibsvm, ParsesTinyFileExactly) {
  TempDir dir;
  const std::string path = dir.file("tiny.svm");
  // A comment line, trailing comments, a blank line, a tab, CRLF, '+1', a label without features, and a
  // last line without '\n'.
  write_bytes(path,
              "# header comment\n"
              "+1 1:0.5 3:-2 10:1e-3   # trailing comment\n"
              "-1 2:4\n"
              "\n"
              "0\n"
              "1.0\t5:7.25\r\n"
              "2.5 10:+3");
  terse::LibsvmStats stats;
  const terse::SparseDataset d = terse::read_libsvm(path, {}, stats);
  EXPECT_EQ(d.rows(), 5u);
  EXPECT_EQ(d.dim, 10u);
  EXPECT_EQ(d.source, path);
  EXPECT_EQ(d.row_ptr, (std::vector<std::uint64_t>{0, 3, 4, 4, 5, 6}));
  EXPECT_EQ(d.col, (std::vector<std::uint32_t>{0, 2, 9, 1, 4, 9}));
  EXPECT_EQ(d.val, (std::vector<float>{0.5f, -2.0f, 1e-3f, 4.0f, 7.25f, 3.0f}));  // exact: parsed then rounded once
  EXPECT_EQ(d.labels, (std::vector<double>{1, -1, 0, 1, 2.5}));
  EXPECT_EQ(stats.lines, 7u);
  EXPECT_EQ(stats.skipped_lines, 2u);
}

TEST(DataLibsvm, GzipFileReadsLikePlainFile) {
  TempDir dir;
  const std::string text = "1 2:3 7:0.25\n0 1:-1\n";
  write_bytes(dir.file("a.svm"), text);
  write_gzip(dir.file("a.svm.gz"), text);
  const auto plain = terse::read_libsvm(dir.file("a.svm"));
  const auto gz = terse::read_libsvm(dir.file("a.svm.gz"));
  EXPECT_EQ(gz.row_ptr, plain.row_ptr);
  EXPECT_EQ(gz.col, plain.col);
  EXPECT_EQ(gz.val, plain.val);
  EXPECT_EQ(gz.labels, plain.labels);
  EXPECT_EQ(gz.dim, 7u);
}

TEST(DataLibsvm, DimOption) {
  TempDir dir;
  const std::string path = dir.file("dim.svm");
  write_bytes(path, "1 1:1\n0 4:1\n1 10:2\n");
  terse::LibsvmOptions wide;
  wide.dim = 20;
  EXPECT_EQ(terse::read_libsvm(path, wide).dim, 20u);
  terse::LibsvmOptions narrow;
  narrow.dim = 5;
  expect_data_error([&] { terse::read_libsvm(path, narrow); }, {"dim.svm:3:", "feature index 10 exceeds the dimension dim = 5"});
  terse::LibsvmOptions limited;
  limited.max_dim = 9;
  expect_data_error([&] { terse::read_libsvm(path, limited); }, {"dim.svm:3:", "feature index 10 exceeds the limit 9"});
  terse::LibsvmOptions bad;
  bad.dim = 100;
  bad.max_dim = 50;
  expect_data_error([&] { terse::read_libsvm(path, bad); }, {"dim.svm", "dim 100 exceeds the limit 50"});
}

TEST(DataLibsvm, ReadsTheCheckedInTinyFile) {
  const std::string path = std::string(TERSE_TEST_DATA_DIR) + "/tiny_binary.svm";
  terse::SparseDataset d = terse::read_libsvm(path);
  EXPECT_EQ(d.rows(), 8u);
  EXPECT_EQ(d.dim, 4u);
  EXPECT_EQ(d.nnz(), 21u);
  const terse::BinaryLabels b = terse::make_binary(d);
  EXPECT_EQ(b.negative, 0.0);
  EXPECT_EQ(b.positive, 1.0);
  EXPECT_EQ(d.labels, (std::vector<double>{1, -1, 1, -1, 1, -1, 1, -1}));
}

struct BadLine {
  const char* line;    // the offending line, written as line 3 after a valid line and a blank line
  const char* phrase;  // a phrase its message must hold
};

TEST(DataLibsvm, MalformedLinesNameFileLineAndProblem) {
  const BadLine cases[] = {
      {"1.5abc 2:1", "expected a number as label, found '1.5abc'"},
      {"1 1:0.5abc", "expected a number as value of feature 1, found '0.5abc'"},
      {"nan 1:1", "label 'nan' is not finite"},
      {"1 1:nan", "value 'nan' of feature 1 is not finite"},
      {"1 1:inf", "value 'inf' of feature 1 is not finite"},
      {"1 2:-Infinity", "value '-Infinity' of feature 2 is not finite"},
      {"1 1:1e39", "exceeds the float range"},
      {"1 1:1e999", "value '1e999' of feature 1 is out of range"},
      {"1 0:1", "feature index 0: indices are 1-based"},
      {"1 9:1 5:1", "feature index 5 after 9: indices must increase"},
      {"1 3:1 3:2", "duplicated feature index 3"},
      {"1 2147483648:1", "feature index 2147483648 exceeds the limit 2147483647"},
      {"1 99999999999999999999999:1", "is too large"},
      {"1 abc", "expected INDEX:VALUE, found 'abc'"},
      {"1 1:", "missing value after '1':"},
      {"1 :3", "missing feature index"},
      {"1 -3:1", "expected a positive integer feature index, found '-3'"},
      {"1 +3:1", "expected a positive integer feature index, found '+3'"},
      {"1 0x10:1", "expected a positive integer feature index, found '0x10'"},
      {"1 1:0x1p3", "expected a number as value of feature 1"},
      {"1 1:1 qid:3", "found 'qid'"},
      {"1:1 2:3", "expected a label first, found the feature '1:1'"},
      {"+-1 1:1", "expected a number as label, found '+-1'"},
      {"1 1:1 2:2\x01", "expected a number as value of feature 2, found '2\\x01'"},
  };
  TempDir dir;
  int k = 0;
  for (const BadLine& c : cases) {
    SCOPED_TRACE(c.line);
    const std::string name = "bad" + std::to_string(k++) + ".svm";
    const std::string path = dir.file(name);
    write_bytes(path, std::string("1 1:1 2:2\n\n") + c.line + "\n1 1:1\n");
    expect_data_error([&] { terse::read_libsvm(path); }, {name + ":3: ", c.phrase});
  }
}

TEST(DataLibsvm, FileLevelProblems) {
  TempDir dir;
  write_bytes(dir.file("empty.svm"), "");
  expect_data_error([&] { terse::read_libsvm(dir.file("empty.svm")); }, {"empty.svm: empty file"});
  write_gzip(dir.file("empty.svm.gz"), "");
  expect_data_error([&] { terse::read_libsvm(dir.file("empty.svm.gz")); }, {"empty.svm.gz: empty file"});
  write_bytes(dir.file("comments.svm"), "# only\n\n   \n# comments\n");
  expect_data_error([&] { terse::read_libsvm(dir.file("comments.svm")); }, {"comments.svm: no data rows (4 lines"});
  write_bytes(dir.file("nofeatures.svm"), "1\n0\n");
  expect_data_error([&] { terse::read_libsvm(dir.file("nofeatures.svm")); }, {"nofeatures.svm", "dimension would be 0"});
  write_bytes(dir.file("data.bz2"), std::string("BZh91AY&SY\x01\x02", 12));
  expect_data_error([&] { terse::read_libsvm(dir.file("data.bz2")); }, {"data.bz2:1:", "bzip2-compressed"});
  write_bytes(dir.file("binary.svm"), std::string("1 1:1\n\x00\x00\x08\x03", 10));
  expect_data_error([&] { terse::read_libsvm(dir.file("binary.svm")); }, {"binary.svm:2:", "NUL byte"});

  // A gzip file cut in the middle of its stream.
  std::string text;
  for (int i = 0; i < 2000; ++i) text += std::to_string(i % 2) + " 1:" + std::to_string(i) + " 7:0.5\n";
  write_gzip(dir.file("cut.svm.gz"), text);
  const std::string gz = read_bytes(dir.file("cut.svm.gz"));
  write_bytes(dir.file("cut.svm.gz"), gz.substr(0, gz.size() / 2));
  expect_data_error([&] { terse::read_libsvm(dir.file("cut.svm.gz")); }, {"cut.svm.gz", "truncated gzip stream"});
}

TEST(DataPaths, MissingDirectoryAndUnreadableAreDistinct) {
  TempDir dir;
  const std::string missing = expect_data_error([&] { terse::read_libsvm(dir.file("nope.svm")); }, {"nope.svm: no such file"});
  expect_data_error([&] { terse::read_libsvm(dir.file("nodir/x.svm")); }, {"x.svm: no such file", "nodir does not exist"});
  const std::string isdir = expect_data_error([&] { terse::read_libsvm(dir.file("")); }, {"is a directory"});
  expect_data_error([&] { terse::read_idx_images(dir.file("")); }, {"is a directory"});
  expect_data_error([&] { terse::read_idx_labels(dir.file("nope.gz")); }, {"nope.gz: no such file"});
  expect_data_error([] { terse::read_libsvm(""); }, {"empty data file path"});
  EXPECT_NE(missing.substr(missing.find(": ")), isdir.substr(isdir.find(": ")));

  if (::geteuid() == 0) GTEST_SKIP() << "running as root: a chmod 000 file stays readable";
  const std::string path = dir.file("locked.svm");
  write_bytes(path, "1 1:1\n");
  fs::permissions(path, fs::perms::none);
  expect_data_error([&] { terse::read_libsvm(path); }, {"locked.svm: cannot open for reading: Permission denied"});
}

// ---------------------------------------------------------------------------------------------------------
// Labels

TEST(DataLabels, TwoValuesMapToMinusOneAndPlusOne) {
  const auto check = [](std::vector<double> labels, double neg, double pos) {
    const terse::BinaryLabels b = terse::binary_labels(labels, "src");
    EXPECT_EQ(b.negative, neg);
    EXPECT_EQ(b.positive, pos);
    ASSERT_EQ(b.y.size(), labels.size());
    for (std::size_t i = 0; i < labels.size(); ++i) EXPECT_EQ(b.y[i], labels[i] == pos ? 1.0 : -1.0) << i;
  };
  check({0, 1, 1, 0, 1}, 0, 1);
  check({-1, 1, -1}, -1, 1);
  check({2, 1, 2, 2}, 1, 2);
  check({1, 0.5}, 0.5, 1);
}

TEST(DataLabels, OtherCountsOfValuesAreErrors) {
  expect_data_error([] { terse::binary_labels({3, 3, 3}, "one.svm"); },
                    {"one.svm: labels take 1 distinct value (3), a binary problem needs exactly 2"});
  expect_data_error([] { terse::binary_labels({0, 2, 1, 2}, "three.svm"); }, {"three.svm: labels take 3 distinct values (0, 1, 2)"});
  expect_data_error([] { terse::binary_labels({7, 6, 5, 4, 3, 2, 1.5}, "seven"); },
                    {"seven: labels take 7 distinct values (1.5, 2, 3, 4, 5, ...)"});
  expect_data_error([] { terse::binary_labels({}, "none"); }, {"none: no labels"});
  expect_data_error([] { terse::binary_labels({0, std::nan(""), 1}, "n"); }, {"n: label of row 1 is not finite"});
}

// ---------------------------------------------------------------------------------------------------------
// IDX

std::vector<std::uint8_t> ramp(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>((i * 37 + 11) % 256);
  return v;
}

TEST(DataIdx, GzipAndRawRoundTrip) {
  TempDir dir;
  const std::vector<std::uint8_t> pixels = ramp(2 * 3 * 4);
  const std::vector<std::uint8_t> labels = {7, 3};
  const std::string img = idx_bytes(terse::idx_images_magic, {2, 3, 4}, pixels);
  const std::string lab = idx_bytes(terse::idx_labels_magic, {2}, labels);
  write_bytes(dir.file("img.idx"), img);
  write_gzip(dir.file("img.idx.gz"), img);
  write_bytes(dir.file("lab.idx"), lab);
  write_gzip(dir.file("lab.idx.gz"), lab);
  for (const char* suffix : {"", ".gz"}) {
    SCOPED_TRACE(suffix);
    const terse::IdxImages im = terse::read_idx_images(dir.file(std::string("img.idx") + suffix));
    EXPECT_EQ(im.count, 2u);
    EXPECT_EQ(im.rows, 3u);
    EXPECT_EQ(im.cols, 4u);
    EXPECT_EQ(im.pixels, pixels);
    EXPECT_EQ(terse::read_idx_labels(dir.file(std::string("lab.idx") + suffix)).labels, labels);
  }
  const terse::IdxPair pair = terse::read_idx_pair(dir.file("img.idx.gz"), dir.file("lab.idx"), 10);
  const terse::DenseDataset dense = terse::idx_to_dense(pair, 10);
  EXPECT_EQ(dense.rows(), 2u);
  EXPECT_EQ(dense.dim, 12u);
  EXPECT_EQ(dense.num_classes, 10);
  EXPECT_EQ(dense.labels, (std::vector<std::int32_t>{7, 3}));
  ASSERT_EQ(dense.features.size(), pixels.size());
  for (std::size_t k = 0; k < pixels.size(); ++k) {
    EXPECT_EQ(dense.features[k], static_cast<float>(pixels[k]) / 255.0f) << k;  // the same single rounding
    EXPECT_GE(dense.features[k], 0.0f);
    EXPECT_LE(dense.features[k], 1.0f);
  }
}

TEST(DataIdx, BadFilesAreNamed) {
  TempDir dir;
  const std::vector<std::uint8_t> pixels = ramp(24);
  const std::string img = idx_bytes(terse::idx_images_magic, {2, 3, 4}, pixels);
  const std::string lab = idx_bytes(terse::idx_labels_magic, {2}, {1, 2});

  write_bytes(dir.file("short.idx"), img.substr(0, img.size() - 4));
  expect_data_error([&] { terse::read_idx_images(dir.file("short.idx")); },
                    {"short.idx: truncated: the IDX header promises 24 data bytes (2 x 3 x 4), the file holds 20"});
  write_gzip(dir.file("short.idx.gz"), img.substr(0, img.size() - 1));
  expect_data_error([&] { terse::read_idx_images(dir.file("short.idx.gz")); }, {"short.idx.gz: truncated: ", "holds 23"});

  // A gzip stream cut short (its trailer lost), and one with a wrong CRC.
  write_gzip(dir.file("cut.idx.gz"), img);
  const std::string gz = read_bytes(dir.file("cut.idx.gz"));
  write_bytes(dir.file("cut.idx.gz"), gz.substr(0, gz.size() - 6));
  expect_data_error([&] { terse::read_idx_images(dir.file("cut.idx.gz")); }, {"cut.idx.gz", "truncated"});
  // Cut in the middle of the compressed data: both the gzip problem and the missing bytes are named.
  std::vector<std::uint8_t> noise(64 * 64 * 3);
  std::uint32_t state = 12345;
  for (auto& b : noise) b = static_cast<std::uint8_t>((state = state * 1664525u + 1013904223u) >> 24);
  write_gzip(dir.file("half.idx.gz"), idx_bytes(terse::idx_images_magic, {3, 64, 64}, noise));
  const std::string half = read_bytes(dir.file("half.idx.gz"));
  write_bytes(dir.file("half.idx.gz"), half.substr(0, half.size() / 2));
  expect_data_error([&] { terse::read_idx_images(dir.file("half.idx.gz")); },
                    {"half.idx.gz: truncated gzip stream (unexpected end of file): the IDX header promises 12288 data "
                     "bytes (3 x 64 x 64), the file holds "});
  std::string bad_crc = gz;
  bad_crc[bad_crc.size() - 8] ^= 0x5a;
  write_bytes(dir.file("crc.idx.gz"), bad_crc);
  expect_data_error([&] { terse::read_idx_images(dir.file("crc.idx.gz")); }, {"crc.idx.gz: corrupt gzip stream"});

  write_bytes(dir.file("trail.idx"), img + "xyz");
  expect_data_error([&] { terse::read_idx_images(dir.file("trail.idx")); },
                    {"trail.idx: 3 bytes of trailing data after the 24 data bytes"});

  write_bytes(dir.file("labels-as-images.idx"), lab);
  expect_data_error([&] { terse::read_idx_images(dir.file("labels-as-images.idx")); },
                    {"labels-as-images.idx: IDX magic 0x00000801 (unsigned byte, 1 dimension), expected 0x00000803 "
                     "(unsigned byte, 3 dimensions) for images"});
  write_bytes(dir.file("floats.idx"), idx_bytes(0x00000D01, {1}, {0, 0, 0, 0}));
  expect_data_error([&] { terse::read_idx_labels(dir.file("floats.idx")); }, {"floats.idx: IDX magic 0x00000D01 (float"});
  write_bytes(dir.file("text.idx"), "1 1:1\n");
  expect_data_error([&] { terse::read_idx_labels(dir.file("text.idx")); }, {"text.idx: not an IDX file: magic 0x3120313A"});
  write_bytes(dir.file("empty.idx"), "");
  expect_data_error([&] { terse::read_idx_labels(dir.file("empty.idx")); }, {"empty.idx: empty file"});
  write_bytes(dir.file("head.idx"), img.substr(0, 9));
  expect_data_error([&] { terse::read_idx_images(dir.file("head.idx")); }, {"head.idx: truncated IDX header"});
  write_bytes(dir.file("zero.idx"), idx_bytes(terse::idx_images_magic, {0, 28, 28}, {}));
  expect_data_error([&] { terse::read_idx_images(dir.file("zero.idx")); }, {"zero.idx: IDX dimensions 0 x 28 x 28: no images"});
  write_bytes(dir.file("huge.idx"), idx_bytes(terse::idx_images_magic, {4000000000u, 4000000000u, 28}, ramp(100)));
  expect_data_error([&] { terse::read_idx_images(dir.file("huge.idx")); }, {"huge.idx: absurd IDX dimensions"});
  // A header promising 2^35 bytes over a file of 100: an error, not a 32 GiB allocation.
  write_bytes(dir.file("liar.idx"), idx_bytes(terse::idx_images_magic, {1u << 25, 32, 32}, ramp(100)));
  expect_data_error([&] { terse::read_idx_images(dir.file("liar.idx")); }, {"liar.idx: truncated", "the file holds 100"});

  // A pair that does not match.
  write_bytes(dir.file("img.idx"), img);
  write_bytes(dir.file("lab3.idx"), idx_bytes(terse::idx_labels_magic, {3}, {1, 2, 3}));
  expect_data_error([&] { terse::read_idx_pair(dir.file("img.idx"), dir.file("lab3.idx"), 10); },
                    {"img.idx holds 2 images but ", "lab3.idx holds 3 labels"});
  write_bytes(dir.file("lab10.idx"), idx_bytes(terse::idx_labels_magic, {2}, {9, 10}));
  expect_data_error([&] { terse::read_idx_pair(dir.file("img.idx"), dir.file("lab10.idx"), 10); },
                    {"lab10.idx: label 10 of item 1 is outside 0..9"});
}

TEST(DataIdx, FashionBinaryKeepsTwoClassesInFileOrder) {
  TempDir dir;
  // 5 images of 2 x 3 pixels with some zeros, labels 3 7 1 7 3.
  const std::vector<std::uint8_t> pixels = {0, 10, 0, 255, 1, 0,   5, 0, 0, 0, 0, 6,  9, 9, 9, 9, 9, 9,
                                            0, 0, 0, 0, 0, 0,      128, 64, 0, 32, 0, 2};
  const std::vector<std::uint8_t> labels = {3, 7, 1, 7, 3};
  write_gzip(dir.file("img.gz"), idx_bytes(terse::idx_images_magic, {5, 2, 3}, pixels));
  write_gzip(dir.file("lab.gz"), idx_bytes(terse::idx_labels_magic, {5}, labels));
  const terse::SparseDataset d = terse::fashion_mnist_binary(dir.file("img.gz"), dir.file("lab.gz"), 3, 7);
  // Reference: images 0, 1, 3, 4 with their non-zero pixels / 255, class 3 -> -1, class 7 -> +1.
  EXPECT_EQ(d.dim, 6u);
  EXPECT_EQ(d.labels, (std::vector<double>{-1, 1, 1, -1}));
  std::vector<std::uint64_t> row_ptr{0};
  std::vector<std::uint32_t> col;
  std::vector<float> val;
  for (int i : {0, 1, 3, 4}) {
    for (int j = 0; j < 6; ++j) {
      const std::uint8_t p = pixels[6 * i + j];
      if (p) {
        col.push_back(j);
        val.push_back(p / 255.0f);
      }
    }
    row_ptr.push_back(col.size());
  }
  EXPECT_EQ(d.row_ptr, row_ptr);
  EXPECT_EQ(d.col, col);
  EXPECT_EQ(d.val, val);

  expect_data_error([&] { terse::fashion_mnist_binary(dir.file("img.gz"), dir.file("lab.gz"), 3, 3); },
                    {"two different labels in 0..9, got 3 and 3"});
  expect_data_error([&] { terse::fashion_mnist_binary(dir.file("img.gz"), dir.file("lab.gz"), 3, 10); }, {"got 3 and 10"});
  expect_data_error([&] { terse::fashion_mnist_binary(dir.file("img.gz"), dir.file("lab.gz"), 3, 5); },
                    {"lab.gz: no image of class 5"});
}

// The Debian package dataset-fashion-mnist; checked against the files' known content (first labels and
// pixel sums computed independently with python3's gzip module).
TEST(DataFashionMnist, DebianFiles) {
  for (const char* p : {terse::fashion_mnist_train_images, terse::fashion_mnist_train_labels,
                        terse::fashion_mnist_test_images, terse::fashion_mnist_test_labels})
    if (!fs::exists(p)) GTEST_SKIP() << p << " is absent (Debian package dataset-fashion-mnist)";

  const terse::IdxPair train = terse::read_idx_pair(terse::fashion_mnist_train_images, terse::fashion_mnist_train_labels, 10);
  EXPECT_EQ(train.images.count, 60000u);
  EXPECT_EQ(train.images.rows, 28u);
  EXPECT_EQ(train.images.cols, 28u);
  EXPECT_EQ(train.labels.labels.front(), 9);  // an ankle boot
  std::array<int, 10> per_class{};
  for (std::uint8_t c : train.labels.labels) ++per_class[c];
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], 6000) << "class " << c;
  EXPECT_EQ(std::accumulate(train.images.pixels.begin(), train.images.pixels.begin() + 784, 0), 76247);
  EXPECT_EQ(std::accumulate(train.images.pixels.end() - 784, train.images.pixels.end(), 0), 16684);

  const terse::DenseDataset test = terse::fashion_mnist_multiclass(terse::fashion_mnist_test_images, terse::fashion_mnist_test_labels);
  EXPECT_EQ(test.rows(), 10000u);
  EXPECT_EQ(test.dim, 784u);
  EXPECT_EQ(test.labels.front(), 9);
  std::array<int, 10> test_class{};
  for (std::int32_t c : test.labels) ++test_class[c];
  for (int c = 0; c < 10; ++c) EXPECT_EQ(test_class[c], 1000) << "class " << c;
  double first_sum = 0;  // 33456 / 255: a sum of 784 floats of ~1e-7 relative error each
  for (int j = 0; j < 784; ++j) first_sum += test.features[j];
  EXPECT_NEAR(first_sum, 33456.0 / 255.0, 1e-3);

  const terse::SparseDataset tb = terse::fashion_mnist_binary(terse::fashion_mnist_test_images, terse::fashion_mnist_test_labels, 0, 9);
  EXPECT_EQ(tb.rows(), 2000u);
  EXPECT_EQ(tb.nnz(), 845614u);
  EXPECT_EQ(tb.dim, 784u);
  EXPECT_EQ(tb.labels[0], 1.0);   // image 0 is class 9
  EXPECT_EQ(tb.labels[1], -1.0);  // image 19 is the first of class 0
  EXPECT_EQ(std::count(tb.labels.begin(), tb.labels.end(), 1.0), 1000);
}

// ---------------------------------------------------------------------------------------------------------
// Partitioning

TEST(DataRowBlock, MatchesTheIssueFormula) {
  const std::vector<std::pair<std::uint64_t, int>> cases = {
      {1, 1}, {7, 1}, {7, 7}, {10, 3}, {10, 4}, {60000, 7}, {12000, 16}, {1000003, 64},
      {(std::uint64_t(1) << 62) + 12345, 1000}, {std::numeric_limits<std::uint64_t>::max(), 2147483647},
      {std::numeric_limits<std::uint64_t>::max() - 1, 65535}};
  for (const auto& c : cases) {
    // Plain variables, not a structured binding: C++17 does not let a lambda capture one (nvcc refuses it).
    const std::uint64_t n = c.first;
    const int workers = c.second;
    SCOPED_TRACE("N = " + std::to_string(n) + ", W = " + std::to_string(workers));
    // Every worker when W is small (then contiguity and the total are checked too), else a sample.
    const bool all = workers <= 200;
    std::vector<int> ws;
    if (all) {
      for (int w = 0; w < workers; ++w) ws.push_back(w);
    } else {
      for (int w : {0, 1, 2, workers / 3, workers / 2, workers - 2, workers - 1}) ws.push_back(w);
    }
    // Direct evaluation with a 128-bit product: floor(k N / W).
    const auto direct = [&](std::uint64_t k) {
      return static_cast<std::uint64_t>(static_cast<unsigned __int128>(k) * n / static_cast<unsigned>(workers));
    };
    std::uint64_t expected_begin = 0, total = 0;
    for (int w : ws) {
      const terse::RowRange r = terse::row_block(n, workers, w);
      ASSERT_EQ(r.begin, direct(w)) << "w = " << w;
      ASSERT_EQ(r.end, direct(w + 1)) << "w = " << w;
      EXPECT_LE(r.size() - n / workers, 1u) << "sizes are floor(N/W) or ceil(N/W)";
      if (all) {
        EXPECT_EQ(r.begin, expected_begin) << "blocks must be contiguous";
        expected_begin = r.end;
        total += r.size();
      }
    }
    EXPECT_EQ(terse::row_block(n, workers, 0).begin, 0u);
    EXPECT_EQ(terse::row_block(n, workers, workers - 1).end, n);
    if (all) {
      EXPECT_EQ(total, n);
    }
  }
}

TEST(DataRowBlock, MoreWorkersThanRows) {
  expect_data_error([] { terse::row_block(4, 5, 0, "data.svm"); }, {"data.svm: more workers (5) than data rows (4)"});
  expect_data_error([] { terse::row_block(0, 1, 0); }, {"more workers (1) than data rows (0)"});
  EXPECT_THROW(terse::row_block(10, 0, 0), std::invalid_argument);
  EXPECT_THROW(terse::row_block(10, 3, 3), std::invalid_argument);
  EXPECT_THROW(terse::row_block(10, 3, -1), std::invalid_argument);
}

TEST(DataRowBlock, SlicesConcatenateToTheDataset) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 23; ++i) {
    text += std::to_string(i % 3 == 0 ? 1 : -1);
    for (int j = 1; j <= 9; ++j)
      if ((i * 7 + j) % 4 == 0) text += " " + std::to_string(j) + ":" + std::to_string(i + j);
    text += "\n";
  }
  write_bytes(dir.file("s.svm"), text);
  const terse::SparseDataset d = terse::read_libsvm(dir.file("s.svm"));
  const int workers = 5;
  std::vector<std::uint32_t> col;
  std::vector<float> val;
  std::vector<double> labels;
  for (int w = 0; w < workers; ++w) {
    const terse::SparseDataset s = terse::slice_rows(d, terse::row_block(d.rows(), workers, w));
    EXPECT_EQ(s.dim, d.dim);
    EXPECT_EQ(s.row_ptr.front(), 0u);
    EXPECT_EQ(s.row_ptr.back(), s.nnz());
    EXPECT_EQ(s.row_ptr.size(), s.rows() + 1);
    col.insert(col.end(), s.col.begin(), s.col.end());
    val.insert(val.end(), s.val.begin(), s.val.end());
    labels.insert(labels.end(), s.labels.begin(), s.labels.end());
  }
  EXPECT_EQ(col, d.col);
  EXPECT_EQ(val, d.val);
  EXPECT_EQ(labels, d.labels);

  terse::DenseDataset dense;
  dense.dim = 2;
  dense.num_classes = 3;
  dense.features = {0, 1, 2, 3, 4, 5, 6, 7};
  dense.labels = {0, 1, 2, 0};
  const terse::DenseDataset mid = terse::slice_rows(dense, {1, 3});
  EXPECT_EQ(mid.features, (std::vector<float>{2, 3, 4, 5}));
  EXPECT_EQ(mid.labels, (std::vector<std::int32_t>{1, 2}));
  EXPECT_THROW(terse::slice_rows(dense, {2, 5}), std::out_of_range);
}

}  // namespace
