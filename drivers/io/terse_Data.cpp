// terse_Data.cpp: LibSVM and IDX readers, binary labels, Fashion-MNIST loaders and the row partition.
#include "terse_Data.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>

namespace terse {

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& where, const std::string& what) { throw DataError(where + ": " + what); }

/// "PATH:LINE: what" for text files.
[[noreturn]] void fail_at(const std::string& path, std::uint64_t line, const std::string& what) {
  fail(path + ":" + std::to_string(line), what);
}

/// The shortest %g form of v that reads back as v.
std::string fmt_double(double v) {
  char buf[64];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

/// A token quoted for a message, cut to a readable length.
std::string quote(std::string_view token) {
  constexpr std::size_t max_shown = 40;
  std::string out = "'";
  for (char c : token.substr(0, max_shown)) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  if (token.size() > max_shown) out += "...";
  return out + "'";
}

/// Distinct messages for an empty path, a missing path, a directory, and an unreadable file.
void check_input_path(const std::string& path) {
  if (path.empty()) throw DataError("empty data file path");
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) fail(path, "cannot access: " + ec.message());
  if (!fs::exists(st)) {
    const fs::path parent = fs::path(path).parent_path();
    if (!parent.empty() && !fs::is_directory(parent, ec)) fail(path, "no such file (the directory " + parent.string() + " does not exist)");
    fail(path, "no such file");
  }
  if (fs::is_directory(st)) fail(path, "is a directory, expected a data file");
}

/// A gzip-compressed or plain file read through zlib (gzread passes plain files through unchanged).
class GzInput {
 public:
  explicit GzInput(const std::string& path) : path_(path) {
    check_input_path(path);
    errno = 0;
    file_ = gzopen(path.c_str(), "rb");
    if (!file_) {
      const int err = errno;
      fail(path, std::string("cannot open for reading: ") + (err ? std::strerror(err) : "out of memory"));
    }
    gzbuffer(file_, 1u << 18);
  }
  ~GzInput() {
    if (file_) gzclose(file_);
  }
  GzInput(const GzInput&) = delete;
  GzInput& operator=(const GzInput&) = delete;

  /// Reads up to len bytes; fewer only at the end of the data. Throws on a read or gzip error.
  std::size_t read(void* buf, std::size_t len) {
    auto* out = static_cast<unsigned char*>(buf);
    std::size_t got = 0;
    while (got < len) {
      const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(len - got, 1u << 30));
      errno = 0;
      const int n = gzread(file_, out + got, chunk);
      if (n < 0) throw_error();
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    return got;
  }

  /// Throws if zlib recorded an error, in particular a gzip stream that ends early (Z_BUF_ERROR).
  void check_stream() {
    const std::string problem = stream_problem();
    if (!problem.empty()) fail(path_, problem);
  }

  /// What zlib reports as wrong with the stream so far ("" if nothing).
  std::string stream_problem() {
    int errnum = Z_OK;
    const char* msg = gzerror(file_, &errnum);
    if (errnum == Z_OK) return {};
    if (errnum == Z_ERRNO) return std::string("read error: ") + std::strerror(errno);
    // zlib prefixes its message with the path: keep only the reason.
    std::string reason = msg ? msg : "unknown zlib error";
    if (reason.compare(0, path_.size() + 2, path_ + ": ") == 0) reason.erase(0, path_.size() + 2);
    if (errnum == Z_BUF_ERROR) return "truncated gzip stream (" + reason + ")";
    return "corrupt gzip stream (" + reason + ")";
  }

  bool compressed() { return gzdirect(file_) == 0; }

 private:
  [[noreturn]] void throw_error() {
    const std::string problem = stream_problem();
    fail(path_, problem.empty() ? std::string("read error") : problem);
  }

  std::string path_;
  gzFile file_ = nullptr;
};

/// Names a compression format zlib does not read from a file's first bytes, or returns nullptr.
const char* foreign_compression(std::string_view head) {
  if (head.substr(0, 3) == "BZh") return "bzip2";
  if (head.substr(0, 6) == std::string_view("\xFD" "7zXZ\0", 6)) return "xz";
  if (head.substr(0, 4) == std::string_view("\x28\xB5\x2F\xFD", 4)) return "zstd";
  if (head.substr(0, 4) == std::string_view("PK\x03\x04", 4)) return "zip";
  return nullptr;
}

/// Splits a GzInput into lines ('\n'-terminated; the last line may lack it).
class LineReader {
 public:
  explicit LineReader(GzInput& in) : in_(in) {}

  /// The next line without its '\n'; valid until the next call. False at the end of the file.
  bool next(std::string_view& line) {
    for (;;) {
      const std::size_t nl = buf_.find('\n', pos_);
      if (nl != std::string::npos) {
        line = std::string_view(buf_).substr(pos_, nl - pos_);
        pos_ = nl + 1;
        return true;
      }
      if (eof_) {
        if (pos_ >= buf_.size()) return false;
        line = std::string_view(buf_).substr(pos_);
        pos_ = buf_.size();
        return true;
      }
      buf_.erase(0, pos_);
      pos_ = 0;
      const std::size_t old = buf_.size();
      buf_.resize(old + chunk);
      const std::size_t got = in_.read(&buf_[old], chunk);
      buf_.resize(old + got);
      total_ += got;
      if (got < chunk) {
        eof_ = true;
        in_.check_stream();
      }
    }
  }
  std::uint64_t bytes() const { return total_; }

 private:
  static constexpr std::size_t chunk = 1u << 20;
  GzInput& in_;
  std::string buf_;
  std::size_t pos_ = 0;
  std::uint64_t total_ = 0;
  bool eof_ = false;
};

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/// The next blank-separated token of s from pos (empty at the end).
std::string_view next_token(std::string_view s, std::size_t& pos) {
  while (pos < s.size() && is_blank(s[pos])) ++pos;
  const std::size_t begin = pos;
  while (pos < s.size() && !is_blank(s[pos])) ++pos;
  return s.substr(begin, pos - begin);
}

enum class Parse { ok, invalid, out_of_range };

/// Parses the whole token as a decimal floating-point number (an optional leading '+' allowed).
Parse parse_double(std::string_view tok, double& out) {
  if (tok.size() > 1 && tok[0] == '+' && tok[1] != '-' && tok[1] != '+') tok.remove_prefix(1);
  if (tok.empty()) return Parse::invalid;
#if defined(__cpp_lib_to_chars) && __cpp_lib_to_chars >= 201611L
  const auto [ptr, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), out, std::chars_format::general);
  if (ec == std::errc::result_out_of_range) return Parse::out_of_range;
  if (ec != std::errc() || ptr != tok.data() + tok.size()) return Parse::invalid;
  return Parse::ok;
#else
  // strtod accepts forms from_chars does not (leading blanks, hex): tokens hold no blanks; refuse hex.
  if (tok.size() > 64 || tok.find_first_of("xX") != std::string_view::npos) return Parse::invalid;
  char buf[72];
  std::memcpy(buf, tok.data(), tok.size());
  buf[tok.size()] = '\0';
  char* end = nullptr;
  errno = 0;
  out = std::strtod(buf, &end);
  if (end != buf + tok.size()) return Parse::invalid;
  if (errno == ERANGE && std::fabs(out) == HUGE_VAL) return Parse::out_of_range;
  return Parse::ok;
#endif
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// LibSVM

SparseDataset read_libsvm(const std::string& path, const LibsvmOptions& options) {
  LibsvmStats stats;
  return read_libsvm(path, options, stats);
}

SparseDataset read_libsvm(const std::string& path, const LibsvmOptions& options, LibsvmStats& stats) {
  stats = {};
  if (options.max_dim < 1 || options.max_dim > max_feature_index)
    fail(path, "the largest allowed feature index must be in 1.." + std::to_string(max_feature_index) +
                   ", got " + std::to_string(options.max_dim));
  if (options.dim > options.max_dim)
    fail(path, "dim " + std::to_string(options.dim) + " exceeds the limit " + std::to_string(options.max_dim));
  const std::uint64_t limit = options.dim ? options.dim : options.max_dim;

  GzInput in(path);
  LineReader reader(in);
  SparseDataset data;
  data.source = path;
  std::uint64_t max_index = 0;
  std::uint64_t lineno = 0;
  std::string_view line;

  while (reader.next(line)) {
    ++lineno;
    if (lineno == 1) {
      if (const char* format = foreign_compression(line))
        fail_at(path, lineno, std::string("a ") + format + "-compressed file: decompress it first (gzip and plain text are read)");
    }
    if (line.find('\0') != std::string_view::npos) fail_at(path, lineno, "binary data (a NUL byte): not a LibSVM text file");
    const std::size_t hash = line.find('#');
    if (hash != std::string_view::npos) line = line.substr(0, hash);

    std::size_t pos = 0;
    const std::string_view label_tok = next_token(line, pos);
    if (label_tok.empty()) {
      ++stats.skipped_lines;
      continue;
    }
    double label = 0;
    const Parse label_parse = parse_double(label_tok, label);
    if (label_parse == Parse::out_of_range) fail_at(path, lineno, "label " + quote(label_tok) + " is out of range");
    if (label_parse != Parse::ok) {
      if (label_tok.find(':') != std::string_view::npos)
        fail_at(path, lineno, "expected a label first, found the feature " + quote(label_tok));
      fail_at(path, lineno, "expected a number as label, found " + quote(label_tok));
    }
    if (!std::isfinite(label)) fail_at(path, lineno, "label " + quote(label_tok) + " is not finite");

    std::uint64_t prev = 0;
    for (std::string_view tok = next_token(line, pos); !tok.empty(); tok = next_token(line, pos)) {
      const std::size_t colon = tok.find(':');
      if (colon == std::string_view::npos) fail_at(path, lineno, "expected INDEX:VALUE, found " + quote(tok));
      const std::string_view idx_tok = tok.substr(0, colon);
      const std::string_view val_tok = tok.substr(colon + 1);
      if (idx_tok.empty()) fail_at(path, lineno, "missing feature index before ':' in " + quote(tok));
      std::uint64_t index = 0;
      const auto [ptr, ec] = std::from_chars(idx_tok.data(), idx_tok.data() + idx_tok.size(), index);
      if (ec == std::errc::result_out_of_range)
        fail_at(path, lineno, "feature index " + quote(idx_tok) + " is too large (the limit is " + std::to_string(limit) + ")");
      if (ec != std::errc() || ptr != idx_tok.data() + idx_tok.size())
        fail_at(path, lineno, "expected a positive integer feature index, found " + quote(idx_tok) + " in " + quote(tok));
      if (index == 0) fail_at(path, lineno, "feature index 0: indices are 1-based");
      if (index > limit) {
        if (options.dim)
          fail_at(path, lineno, "feature index " + std::to_string(index) + " exceeds the dimension dim = " + std::to_string(options.dim));
        fail_at(path, lineno, "feature index " + std::to_string(index) + " exceeds the limit " + std::to_string(limit));
      }
      if (index == prev) fail_at(path, lineno, "duplicated feature index " + std::to_string(index));
      if (index < prev)
        fail_at(path, lineno, "feature index " + std::to_string(index) + " after " + std::to_string(prev) + ": indices must increase");
      prev = index;

      if (val_tok.empty()) fail_at(path, lineno, "missing value after " + quote(idx_tok) + ":");
      double value = 0;
      const Parse p = parse_double(val_tok, value);
      if (p == Parse::out_of_range) fail_at(path, lineno, "value " + quote(val_tok) + " of feature " + std::to_string(index) + " is out of range");
      if (p != Parse::ok) fail_at(path, lineno, "expected a number as value of feature " + std::to_string(index) + ", found " + quote(val_tok));
      if (!std::isfinite(value)) fail_at(path, lineno, "value " + quote(val_tok) + " of feature " + std::to_string(index) + " is not finite");
      const float v = static_cast<float>(value);
      if (!std::isfinite(v))
        fail_at(path, lineno, "value " + quote(val_tok) + " of feature " + std::to_string(index) + " exceeds the float range");
      data.col.push_back(static_cast<std::uint32_t>(index - 1));
      data.val.push_back(v);
    }
    max_index = std::max(max_index, prev);
    data.labels.push_back(label);
    data.row_ptr.push_back(data.col.size());
  }
  stats.lines = lineno;
  if (reader.bytes() == 0) fail(path, in.compressed() ? "empty file (no data after decompression)" : "empty file");
  if (data.labels.empty())
    fail(path, "no data rows (" + std::to_string(lineno) + (lineno == 1 ? " line" : " lines") + ", all blank or comments)");
  if (options.dim == 0 && max_index == 0) fail(path, "no row has a feature: the dimension would be 0 (set dim)");
  data.dim = options.dim ? options.dim : max_index;
  return data;
}

// ---------------------------------------------------------------------------------------------------------
// Labels

BinaryLabels binary_labels(const std::vector<double>& labels, const std::string& source) {
  if (labels.empty()) fail(source, "no labels");
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (!std::isfinite(labels[i])) fail(source, "label of row " + std::to_string(i) + " is not finite");
  std::vector<double> distinct(labels);
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  if (distinct.size() != 2) {
    std::string list;
    for (std::size_t i = 0; i < std::min<std::size_t>(distinct.size(), 5); ++i) list += (i ? ", " : "") + fmt_double(distinct[i]);
    if (distinct.size() > 5) list += ", ...";
    fail(source, "labels take " + std::to_string(distinct.size()) + " distinct value" + (distinct.size() == 1 ? "" : "s") +
                     " (" + list + "), a binary problem needs exactly 2");
  }
  BinaryLabels out;
  out.negative = distinct[0];
  out.positive = distinct[1];
  out.y.resize(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) out.y[i] = labels[i] == out.positive ? 1.0 : -1.0;
  return out;
}

BinaryLabels make_binary(SparseDataset& data) {
  BinaryLabels b = binary_labels(data.labels, data.source);
  data.labels = b.y;
  return b;
}

// ---------------------------------------------------------------------------------------------------------
// IDX

namespace {

std::uint32_t big_endian32(const unsigned char* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

std::string describe_idx_magic(std::uint32_t magic) {
  const int ndims = static_cast<int>(magic & 0xff);
  const char* type = "unknown type";
  switch ((magic >> 8) & 0xff) {
    case 0x08: type = "unsigned byte"; break;
    case 0x09: type = "signed byte"; break;
    case 0x0B: type = "short"; break;
    case 0x0C: type = "int"; break;
    case 0x0D: type = "float"; break;
    case 0x0E: type = "double"; break;
  }
  return hex32(magic) + " (" + type + ", " + std::to_string(ndims) + (ndims == 1 ? " dimension)" : " dimensions)");
}

struct IdxRaw {
  std::vector<std::uint64_t> dims;
  std::vector<std::uint8_t> data;
};

/// Reads an unsigned-byte IDX file whose magic must be `magic`; `what` names its content for messages.
IdxRaw read_idx(const std::string& path, std::uint32_t magic, const char* what) {
  GzInput in(path);
  unsigned char head[4];
  const std::size_t got_magic = in.read(head, 4);
  if (got_magic < 4) {
    in.check_stream();
    if (got_magic == 0) fail(path, in.compressed() ? "empty file (no data after decompression)" : "empty file");
    fail(path, "truncated: " + std::to_string(got_magic) + " bytes, an IDX header needs at least 4");
  }
  const std::uint32_t found = big_endian32(head);
  if (found != magic) {
    if (const char* format = foreign_compression(std::string_view(reinterpret_cast<const char*>(head), 4)))
      fail(path, std::string("a ") + format + "-compressed file: decompress it first (gzip and raw IDX are read)");
    if ((found >> 16) != 0)
      fail(path, "not an IDX file: magic " + hex32(found) + ", expected " + describe_idx_magic(magic) + " for " + what);
    fail(path, "IDX magic " + describe_idx_magic(found) + ", expected " + describe_idx_magic(magic) + " for " + what);
  }
  const std::size_t ndims = magic & 0xff;
  IdxRaw raw;
  std::vector<unsigned char> dim_bytes(4 * ndims);
  if (in.read(dim_bytes.data(), dim_bytes.size()) < dim_bytes.size()) {
    in.check_stream();
    fail(path, "truncated IDX header: " + std::to_string(ndims) + " dimensions of 4 bytes expected after the magic");
  }
  // Limit on the data a header may promise (2^40 bytes): beyond that the header is corrupt.
  constexpr std::uint64_t max_bytes = std::uint64_t(1) << 40;
  std::uint64_t total = 1;
  std::string shape;
  for (std::size_t d = 0; d < ndims; ++d) {
    const std::uint64_t n = big_endian32(&dim_bytes[4 * d]);
    raw.dims.push_back(n);
    shape += (d ? " x " : "") + std::to_string(n);
    if (n != 0 && total > max_bytes / n) fail(path, "absurd IDX dimensions " + shape + "...: more than 2^40 bytes");
    total *= n;
  }
  if (total == 0) fail(path, "IDX dimensions " + shape + ": no " + what);

  // Grow the buffer as data arrives, so a lying header cannot make us allocate more than the file holds.
  raw.data.reserve(std::min<std::uint64_t>(total, std::uint64_t(1) << 28));
  std::uint64_t have = 0;
  while (have < total) {
    const std::uint64_t want = std::min<std::uint64_t>(total - have, std::uint64_t(1) << 26);
    raw.data.resize(have + want);
    const std::size_t got = in.read(raw.data.data() + have, want);
    have += got;
    if (got < want) break;
  }
  raw.data.resize(have);
  if (have < total) {
    const std::string gz_problem = in.stream_problem();  // a gzip stream cut short says so too
    fail(path, (gz_problem.empty() ? std::string("truncated") : gz_problem) + ": the IDX header promises " +
                   std::to_string(total) + " data bytes (" + shape + "), the file holds " + std::to_string(have));
  }
  unsigned char extra[4096];
  std::uint64_t trailing = 0;
  for (std::size_t n; (n = in.read(extra, sizeof extra)) > 0;) trailing += n;
  in.check_stream();
  if (trailing)
    fail(path, std::to_string(trailing) + " bytes of trailing data after the " + std::to_string(total) +
                   " data bytes the IDX header promises (" + shape + ")");
  return raw;
}

}  // namespace

IdxImages read_idx_images(const std::string& path) {
  IdxRaw raw = read_idx(path, idx_images_magic, "images");
  IdxImages out;
  out.count = raw.dims[0];
  out.rows = raw.dims[1];
  out.cols = raw.dims[2];
  out.pixels = std::move(raw.data);
  out.source = path;
  return out;
}

IdxLabels read_idx_labels(const std::string& path) {
  IdxRaw raw = read_idx(path, idx_labels_magic, "labels");
  IdxLabels out;
  out.labels = std::move(raw.data);
  out.source = path;
  return out;
}

namespace {

void check_idx_pair(const IdxImages& images, const IdxLabels& labels, int num_classes) {
  if (images.count != labels.labels.size())
    throw DataError(images.source + " holds " + std::to_string(images.count) + " images but " + labels.source +
                    " holds " + std::to_string(labels.labels.size()) + " labels");
  for (std::size_t i = 0; i < labels.labels.size(); ++i)
    if (labels.labels[i] >= num_classes)
      fail(labels.source, "label " + std::to_string(labels.labels[i]) + " of item " + std::to_string(i) +
                              " is outside 0.." + std::to_string(num_classes - 1));
}

}  // namespace

IdxPair read_idx_pair(const std::string& images_path, const std::string& labels_path, int num_classes) {
  if (num_classes < 1 || num_classes > 256) throw std::invalid_argument("read_idx_pair: num_classes must be in 1..256");
  IdxPair pair{read_idx_images(images_path), read_idx_labels(labels_path)};
  check_idx_pair(pair.images, pair.labels, num_classes);
  return pair;
}

DenseDataset idx_to_dense(const IdxPair& pair, int num_classes) {
  check_idx_pair(pair.images, pair.labels, num_classes);
  DenseDataset out;
  out.dim = pair.images.pixels_per_image();
  out.num_classes = num_classes;
  out.source = pair.images.source;
  out.features.resize(pair.images.pixels.size());
  for (std::size_t k = 0; k < pair.images.pixels.size(); ++k) out.features[k] = pair.images.pixels[k] / 255.0f;
  out.labels.assign(pair.labels.labels.begin(), pair.labels.labels.end());
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Fashion-MNIST

SparseDataset fashion_mnist_binary(const std::string& images_path, const std::string& labels_path, int class_a,
                                   int class_b) {
  const auto in_range = [](int c) { return c >= 0 && c < fashion_mnist_classes; };
  if (!in_range(class_a) || !in_range(class_b) || class_a == class_b)
    throw DataError("Fashion-MNIST classes must be two different labels in 0.." +
                    std::to_string(fashion_mnist_classes - 1) + ", got " + std::to_string(class_a) + " and " +
                    std::to_string(class_b));
  const IdxPair pair = read_idx_pair(images_path, labels_path, fashion_mnist_classes);
  const IdxImages& img = pair.images;
  const std::uint64_t d = img.pixels_per_image();
  if (d > max_feature_index) fail(images_path, "images of " + std::to_string(d) + " pixels are too large");

  SparseDataset out;
  out.dim = d;
  out.source = images_path;
  std::uint64_t count_a = 0, count_b = 0;
  for (std::uint64_t i = 0; i < img.count; ++i) {
    const int c = pair.labels.labels[i];
    if (c != class_a && c != class_b) continue;
    (c == class_a ? count_a : count_b) += 1;
    const std::uint8_t* px = &img.pixels[i * d];
    for (std::uint64_t j = 0; j < d; ++j) {
      if (px[j] == 0) continue;
      out.col.push_back(static_cast<std::uint32_t>(j));
      out.val.push_back(px[j] / 255.0f);
    }
    out.row_ptr.push_back(out.col.size());
    out.labels.push_back(c == class_a ? -1.0 : 1.0);
  }
  if (count_a == 0) fail(labels_path, "no image of class " + std::to_string(class_a));
  if (count_b == 0) fail(labels_path, "no image of class " + std::to_string(class_b));
  return out;
}

DenseDataset fashion_mnist_multiclass(const std::string& images_path, const std::string& labels_path) {
  return idx_to_dense(read_idx_pair(images_path, labels_path, fashion_mnist_classes), fashion_mnist_classes);
}

// ---------------------------------------------------------------------------------------------------------
// Partitioning

RowRange row_block(std::uint64_t n, int workers, int worker, const std::string& source) {
  if (workers < 1) throw std::invalid_argument("row_block: workers must be >= 1, got " + std::to_string(workers));
  if (worker < 0 || worker >= workers)
    throw std::invalid_argument("row_block: worker " + std::to_string(worker) + " outside 0.." + std::to_string(workers - 1));
  const std::uint64_t W = static_cast<std::uint64_t>(workers);
  if (W > n) fail(source, "more workers (" + std::to_string(workers) + ") than data rows (" + std::to_string(n) + ")");
  // floor(w N / W) = w q + floor(w r / W) with N = q W + r, r < W; w r < W^2 < 2^62 cannot overflow.
  const std::uint64_t q = n / W, r = n % W;
  const auto start = [&](std::uint64_t w) { return w * q + (w * r) / W; };
  return RowRange{start(static_cast<std::uint64_t>(worker)), start(static_cast<std::uint64_t>(worker) + 1)};
}

SparseDataset slice_rows(const SparseDataset& data, RowRange range) {
  if (range.begin > range.end || range.end > data.rows()) throw std::out_of_range("slice_rows: rows outside the dataset");
  SparseDataset out;
  out.dim = data.dim;
  out.source = data.source;
  const std::uint64_t first = data.row_ptr[range.begin], last = data.row_ptr[range.end];
  out.row_ptr.resize(range.size() + 1);
  for (std::uint64_t i = 0; i <= range.size(); ++i) out.row_ptr[i] = data.row_ptr[range.begin + i] - first;
  out.col.assign(data.col.data() + first, data.col.data() + last);
  out.val.assign(data.val.data() + first, data.val.data() + last);
  out.labels.assign(data.labels.data() + range.begin, data.labels.data() + range.end);
  return out;
}

DenseDataset slice_rows(const DenseDataset& data, RowRange range) {
  if (range.begin > range.end || range.end > data.rows()) throw std::out_of_range("slice_rows: rows outside the dataset");
  DenseDataset out;
  out.dim = data.dim;
  out.num_classes = data.num_classes;
  out.source = data.source;
  out.features.assign(data.features.data() + range.begin * data.dim, data.features.data() + range.end * data.dim);
  out.labels.assign(data.labels.data() + range.begin, data.labels.data() + range.end);
  return out;
}

}  // namespace terse
