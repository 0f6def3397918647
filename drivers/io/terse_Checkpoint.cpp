#include "terse_Checkpoint.hpp"

#include "terse_Deck.hpp"
#include "terse_Hdf5.hpp"
#include "terse_Collective.hpp"

#include <hdf5.h>
#include <yaml-cpp/yaml.h>
#include <zlib.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fcntl.h>
#include <sstream>
#include <unistd.h>

namespace terse {

namespace {

constexpr const char* kFormat = "terse checkpoint";
constexpr std::int64_t kFormatVersion = 2;  ///< 2: the history has loss_rows and loss_std_error

// ------------------------------------------------------------------------------------------- checksums

/// CRC-32 (zlib) of n bytes, continuing crc.
std::uint32_t crc_bytes(std::uint32_t crc, const void* data, std::uint64_t n) {
  const auto* p = static_cast<const Bytef*>(data);
  uLong c = crc;
  while (n > 0) {
    const uInt chunk = static_cast<uInt>(std::min<std::uint64_t>(n, 1u << 30));
    c = crc32(c, p, chunk);
    p += chunk;
    n -= chunk;
  }
  return static_cast<std::uint32_t>(c);
}

std::string hex(std::uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

struct PieceCrc {
  std::uint64_t offset, count;
  std::uint32_t crc;
  std::uint32_t pad;
};

/// The CRC-32 of a whole dataset of n elements of `elem` bytes from the ranks' pieces: the pieces tile [0, n)
/// in rank order (combined with crc32_combine), or this rank's piece is all of it. Returns false (and sets
/// why) when the pieces do not cover the dataset in either way. Collective.
bool combined_crc(MPI_Comm comm, std::uint64_t n, std::uint64_t elem, Piece piece, std::uint32_t local,
                  std::uint32_t& out) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  PieceCrc mine{piece.offset, piece.count, local, 0};
  std::vector<PieceCrc> all(size);
  MPI_Allgather(&mine, sizeof(PieceCrc), MPI_BYTE, all.data(), sizeof(PieceCrc), MPI_BYTE, comm);
  if (piece.offset == 0 && piece.count == n) {
    out = local;
    return true;
  }
  uLong crc = crc32(0L, Z_NULL, 0);
  std::uint64_t next = 0;
  for (const auto& p : all) {
    if (p.count == 0) continue;
    if (p.offset != next) return false;
    crc = crc32_combine(crc, p.crc, static_cast<z_off_t>(p.count * elem));
    next += p.count;
  }
  if (next != n) return false;
  out = static_cast<std::uint32_t>(crc);
  return true;
}

// ------------------------------------------------------------------------------------------------ HDF5

std::string hdf5_error_stack() {
  std::string text;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* e, void* data) -> herr_t {
        auto* s = static_cast<std::string*>(data);
        if (e->desc && *e->desc) {
          if (!s->empty()) *s += "; ";
          *s += e->desc;
        }
        return 0;
      },
      &text);
  H5Eclear2(H5E_DEFAULT);
  return text;
}

using h5::check;
using h5::check_id;
using h5::write_numeric_attribute;
using h5::write_string_attribute;

/// Reads a string attribute; false when it is missing or not a string.
bool read_string_attr(hid_t obj, const char* name, std::string& out) {
  if (H5Aexists(obj, name) <= 0) return false;
  const hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
  if (attr < 0) return false;
  const hid_t type = H5Aget_type(attr);
  bool ok = H5Tget_class(type) == H5T_STRING && !H5Tis_variable_str(type);
  if (ok) {
    const std::size_t n = H5Tget_size(type);
    std::vector<char> buf(n + 1, '\0');
    ok = H5Aread(attr, type, buf.data()) >= 0;
    out.assign(buf.data());
  }
  H5Tclose(type);
  H5Aclose(attr);
  return ok;
}

/// Reads an integer attribute of n elements; false when missing or of another size.
template <class T>
bool read_numeric_attr(hid_t obj, const char* name, std::vector<T>& out, hid_t mem_type) {
  if (H5Aexists(obj, name) <= 0) return false;
  const hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
  if (attr < 0) return false;
  const hid_t space = H5Aget_space(attr);
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  bool ok = n > 0;
  if (ok) {
    out.resize(static_cast<std::size_t>(n));
    ok = H5Aread(attr, mem_type, out.data()) >= 0;
  }
  H5Sclose(space);
  H5Aclose(attr);
  return ok;
}

std::string identity_text(const CheckpointIdentity& id) {
  std::string s;
  for (const auto& kv : id.keys) s += kv.first + ": " + kv.second + "\n";
  return s;
}

std::string header_text(const std::string& algorithm, const std::string& problem, std::uint64_t dim,
                        std::int64_t workers, std::int64_t iteration, const std::string& identity) {
  return algorithm + "\n" + problem + "\n" + std::to_string(dim) + "\n" + std::to_string(workers) + "\n" +
         std::to_string(iteration) + "\n" + identity;
}

std::vector<std::pair<std::string, std::string>> parse_identity(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> keys;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(": ");
    if (colon == std::string::npos) continue;
    keys.emplace_back(line.substr(0, colon), line.substr(colon + 2));
  }
  return keys;
}

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::uint64_t product(const std::vector<std::uint64_t>& shape) {
  std::uint64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

/// Rank 0's check of the file before the ranks open it collectively: "" or the refusal. Sets iteration.
std::string inspect(const std::string& path, const CheckpointIdentity& expected, std::int64_t& iteration) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) return path + ": no such checkpoint file";
  if (fs::is_directory(path, ec)) return path + ": is a directory, not a checkpoint file";
  if (::access(path.c_str(), R_OK) != 0) return path + ": cannot read the checkpoint (" + std::strerror(errno) + ")";
  const auto bytes = fs::file_size(path, ec);
  if (bytes == 0) return path + ": the checkpoint file is empty (0 bytes): it was never written";
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return path + ": not an HDF5 file, so not a terse checkpoint";
  }
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) {
    const std::string why = hdf5_error_stack();
    if (why.find("truncated") != std::string::npos)
      return path + ": the checkpoint is truncated (" + std::to_string(bytes) + " bytes; HDF5: " + why +
             "): it was cut short after it was written; restart from an older checkpoint or from the start";
    return path + ": cannot open the checkpoint as HDF5 (" + why + ")";
  }
  std::string msg;
  std::string format, algorithm, problem, identity;
  std::vector<std::int64_t> version, workers, iter;
  std::vector<std::uint64_t> dim;
  std::vector<std::uint32_t> crc;
  if (!read_string_attr(file, "format", format) || format != kFormat) {
    msg = path + ": an HDF5 file but not a terse checkpoint (no 'format: terse checkpoint' attribute)";
  } else if (!read_numeric_attr(file, "format_version", version, H5T_NATIVE_INT64) || version[0] != kFormatVersion) {
    msg = path + ": checkpoint format version " + (version.empty() ? "?" : std::to_string(version[0])) +
          ", this terse reads version " + std::to_string(kFormatVersion);
  } else if (!read_string_attr(file, "algorithm", algorithm) || !read_string_attr(file, "problem", problem) ||
             !read_string_attr(file, "identity", identity) || !read_numeric_attr(file, "dim", dim, H5T_NATIVE_UINT64) ||
             !read_numeric_attr(file, "workers", workers, H5T_NATIVE_INT64) ||
             !read_numeric_attr(file, "iteration", iter, H5T_NATIVE_INT64) ||
             !read_numeric_attr(file, "header_crc32", crc, H5T_NATIVE_UINT32)) {
    msg = path + ": the checkpoint header is incomplete (a root attribute is missing or unreadable): the file is "
                 "corrupted";
  } else {
    const std::string header = header_text(algorithm, problem, dim[0], workers[0], iter[0], identity);
    const std::uint32_t computed = crc_bytes(0, header.data(), header.size());
    if (computed != crc[0]) {
      msg = path + ": the checkpoint header fails its checksum (stored " + hex(crc[0]) + ", computed " +
            hex(computed) + "): the file is corrupted";
    } else {
      const std::string head = path + ": the checkpoint does not match the deck: ";
      const std::string todo = "; it is another run's checkpoint: continue that run with the deck and options that "
                               "wrote it, or start this one afresh under another run.output (--output; the "
                               "checkpoint's name follows it) or after you remove " + path;
      if (problem != expected.problem) {
        msg = head + "it was written for problem " + problem + ", the deck's problem.kind is " + expected.problem +
              todo;
      } else if (algorithm != expected.algorithm) {
        msg = head + "it was written for algorithm " + algorithm + ", the deck's optimizer.kind is " +
              expected.algorithm + todo;
      } else if (dim[0] != expected.dim) {
        msg = head + "its model has dimension d = " + std::to_string(dim[0]) + ", the deck's has d = " +
              std::to_string(expected.dim) + todo;
      } else if (workers[0] != expected.workers) {
        msg = head + "it was written by W = " + std::to_string(workers[0]) +
              " workers, this run has W = " + std::to_string(expected.workers) +
              " (ranks x workers.per_rank); a restart may change the ranks but not W" + todo;
      } else {
        const auto stored = parse_identity(identity);
        for (const auto& kv : expected.keys) {
          std::string theirs = "(not set)";
          for (const auto& s : stored)
            if (s.first == kv.first) theirs = s.second;
          if (theirs != kv.second) {
            msg = head + kv.first + " is " + theirs + " in the checkpoint and " + kv.second +
                  " in the deck (a restart may change only run.iterations, run.log_every, run.output, "
                  "run.checkpoint and the ranks)" + todo;
            break;
          }
        }
        if (msg.empty())
          for (const auto& s : stored) {
            bool found = false;
            for (const auto& kv : expected.keys) found = found || kv.first == s.first;
            if (!found) {
              msg = head + s.first + " is " + s.second + " in the checkpoint and not set in the deck" + todo;
              break;
            }
          }
      }
    }
  }
  iteration = iter.empty() ? 0 : iter[0];
  H5Fclose(file);
  return msg;
}

}  // namespace

// ------------------------------------------------------------------------------------------ identity

CheckpointIdentity CheckpointIdentity::of(const Deck& deck, std::uint64_t dim, std::int64_t workers) {
  CheckpointIdentity id;
  id.algorithm = to_string(deck.optimizer.kind);
  id.problem = to_string(deck.problem.kind);
  id.dim = dim;
  id.workers = workers;
  // The effective deck (defaults applied, unused keys left out), section by section.
  const YAML::Node root = YAML::Load(effective_config_yaml(deck));
  const auto value_text = [](const YAML::Node& n) {
    YAML::Emitter e;
    e << YAML::Flow << n;
    return std::string(e.c_str());
  };
  for (const char* section : {"problem", "optimizer"})
    for (auto it = root[section].begin(); it != root[section].end(); ++it)
      id.keys.emplace_back(std::string(section) + "." + it->first.Scalar(), value_text(it->second));
  id.keys.emplace_back("run.batch", value_text(root["run"]["batch"]));
  id.keys.emplace_back("run.seed", value_text(root["run"]["seed"]));
  // The history's columns: a restart must record the same ones.
  id.keys.emplace_back("run.success_probability_samples", std::to_string(deck.run.success_probability_samples));
  return id;
}

// -------------------------------------------------------------------------------------------- writer

CheckpointWriter::CheckpointWriter(MPI_Comm comm, const std::string& path, const CheckpointIdentity& id,
                                   std::int64_t iteration)
    : comm_(comm), path_(path), tmp_(path + ".tmp") {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  check_output_path(path_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, comm_, MPI_INFO_NULL);
  const hid_t file = H5Fcreate(tmp_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (file < 0) throw UserError(path_ + ": cannot create the checkpoint's temporary file " + tmp_);
  file_ = file;
  const std::string identity = identity_text(id);
  write_string_attribute(file, "format", kFormat, path_);
  write_numeric_attribute<std::int64_t>(file, "format_version", {kFormatVersion}, H5T_STD_I64LE, H5T_NATIVE_INT64, path_);
  write_string_attribute(file, "algorithm", id.algorithm, path_);
  write_string_attribute(file, "problem", id.problem, path_);
  write_numeric_attribute<std::uint64_t>(file, "dim", {id.dim}, H5T_STD_U64LE, H5T_NATIVE_UINT64, path_);
  write_numeric_attribute<std::int64_t>(file, "workers", {id.workers}, H5T_STD_I64LE, H5T_NATIVE_INT64, path_);
  write_numeric_attribute<std::int64_t>(file, "iteration", {iteration}, H5T_STD_I64LE, H5T_NATIVE_INT64, path_);
  write_string_attribute(file, "identity", identity, path_);
  const std::string header = header_text(id.algorithm, id.problem, id.dim, id.workers, iteration, identity);
  write_numeric_attribute<std::uint32_t>(file, "header_crc32", {crc_bytes(0, header.data(), header.size())},
                                    H5T_STD_U32LE, H5T_NATIVE_UINT32, path_);
  for (const char* g : {"state", "history"}) H5Gclose(check_id(H5Gcreate2(file, g, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), g, path_));
}

namespace {

/// Collective write of one 1-D dataset (n elements of `mem_type`), this rank's piece from `values`; returns
/// the dataset's combined CRC-32 (and writes it as the crc32 attribute).
void write_dataset(MPI_Comm comm, hid_t file, const std::string& name, hid_t file_type, hid_t mem_type,
                   std::uint64_t elem, std::uint64_t n, Piece piece, const void* values, const std::string& path,
                   const std::vector<std::uint64_t>& shape) {
  const hsize_t dims = n;
  const hid_t fspace = H5Screate_simple(1, &dims, nullptr);
  const hid_t ds = check_id(H5Dcreate2(file, name.c_str(), file_type, fspace, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                            "creating " + name, path);
  H5Sclose(fspace);
  const herr_t st =
      h5::transfer_piece(h5::Direction::write, ds, mem_type, n, piece.offset, piece.count, const_cast<void*>(values));
  check(st, "writing " + name, path);
  std::uint32_t crc = 0;
  if (!combined_crc(comm, n, elem, piece, crc_bytes(0, values, piece.count * elem), crc))
    throw std::logic_error("terse::CheckpointWriter: the ranks' pieces of " + name + " do not tile it");
  write_numeric_attribute<std::uint32_t>(ds, "crc32", {crc}, H5T_STD_U32LE, H5T_NATIVE_UINT32, path);
  if (!shape.empty()) write_numeric_attribute<std::uint64_t>(ds, "shape", shape, H5T_STD_U64LE, H5T_NATIVE_UINT64, path);
  H5Dclose(ds);
}

}  // namespace

void CheckpointWriter::write_array(const std::string& name, const std::vector<std::uint64_t>& shape, Piece piece,
                                   const float* values) {
  write_dataset(comm_, static_cast<hid_t>(file_), "/state/" + name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, sizeof(float),
                product(shape), piece, values, path_, shape);
}

void CheckpointWriter::write_scalars(const std::vector<std::pair<std::string, double>>& scalars) {
  std::vector<double> v;
  std::string names;
  for (const auto& s : scalars) {
    v.push_back(s.second);
    names += (names.empty() ? "" : ",") + s.first;
  }
  const Piece piece{0, rank_ == 0 ? v.size() : 0};
  write_dataset(comm_, static_cast<hid_t>(file_), "/scalars", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, sizeof(double),
                v.size(), piece, v.data(), path_, {});
  const hid_t ds = H5Dopen2(static_cast<hid_t>(file_), "/scalars", H5P_DEFAULT);
  write_string_attribute(ds, "names", names, path_);
  H5Dclose(ds);
}

void CheckpointWriter::write_history(const std::vector<HistoryRow>& rows, HistoryExtras extras) {
  const std::uint64_t n = rows.size();
  const Piece piece{0, rank_ == 0 ? n : 0};
  std::vector<std::int64_t> it(n);
  for (std::size_t i = 0; i < n; ++i) it[i] = rows[i].iteration;
  write_dataset(comm_, static_cast<hid_t>(file_), "/history/iteration", H5T_STD_I64LE, H5T_NATIVE_INT64,
                sizeof(std::int64_t), n, piece, it.data(), path_, {});
  std::vector<double> col(n);
  for (const auto& c : history_columns(extras)) {
    for (std::size_t i = 0; i < n; ++i) col[i] = rows[i].*(c.member);
    write_dataset(comm_, static_cast<hid_t>(file_), std::string("/history/") + c.name, H5T_IEEE_F64LE,
                  H5T_NATIVE_DOUBLE, sizeof(double), n, piece, col.data(), path_, {});
  }
}

void CheckpointWriter::commit() {
  check(H5Fclose(static_cast<hid_t>(file_)), "closing the checkpoint", path_);
  file_ = -1;
  std::string err;
  if (rank_ == 0) {
    // Data first (fsync of the file), then the name (rename), then the name's durability (fsync of the directory).
    const int fd = ::open(tmp_.c_str(), O_RDONLY);
    if (fd < 0 || ::fsync(fd) != 0) err = path_ + ": cannot sync " + tmp_ + " to disk (" + std::strerror(errno) + ")";
    if (fd >= 0) ::close(fd);
    if (err.empty() && std::rename(tmp_.c_str(), path_.c_str()) != 0)
      err = path_ + ": cannot rename " + tmp_ + " over it (" + std::strerror(errno) + ")";
    if (err.empty()) {
      const std::filesystem::path dir = std::filesystem::path(path_).has_parent_path()
                                            ? std::filesystem::path(path_).parent_path()
                                            : std::filesystem::path(".");
      const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
      if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
      }
    }
  }
  done_ = true;
  const std::string e = first_error(comm_, err);
  if (!e.empty()) throw UserError(e);
}

CheckpointWriter::~CheckpointWriter() {
  if (done_) return;
  // Unwinding from an error that may be this rank's alone: closing is collective and could wait forever for
  // the other ranks, so leave the file to the process's end (the caller ends the job); the previous
  // checkpoint is untouched either way.
  if (std::uncaught_exceptions() > 0) return;
  // Abandoned by every rank (a state that is not finite): the previous checkpoint stays; the partial file goes.
  if (file_ >= 0) H5Fclose(static_cast<hid_t>(file_));
  if (rank_ == 0) std::remove(tmp_.c_str());
}

// -------------------------------------------------------------------------------------------- reader

CheckpointReader::CheckpointReader(MPI_Comm comm, const std::string& path, const CheckpointIdentity& expected)
    : comm_(comm), path_(path) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  std::string err;
  if (rank_ == 0) err = inspect(path_, expected, iteration_);
  err = first_error(comm_, err);
  if (!err.empty()) throw CheckpointError(err);
  MPI_Bcast(&iteration_, 1, MPI_INT64_T, 0, comm_);
  const hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, comm_, MPI_INFO_NULL);
  const hid_t file = H5Fopen(path_.c_str(), H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  err = first_error(comm_, file < 0 ? path_ + ": cannot open the checkpoint with parallel HDF5 (" + hdf5_error_stack() + ")"
                               : std::string());
  if (!err.empty()) {
    if (file >= 0) H5Fclose(file);
    throw CheckpointError(err);
  }
  file_ = file;
}

CheckpointReader::~CheckpointReader() {
  if (file_ >= 0) H5Fclose(static_cast<hid_t>(file_));
}

namespace {

/// Collective read of `piece` of the 1-D dataset `name` (n elements) and the check of its checksum.
void read_dataset(MPI_Comm comm, hid_t file, const std::string& name, hid_t mem_type, std::uint64_t elem,
                  std::uint64_t n, Piece piece, void* values, const std::string& path,
                  const std::vector<std::uint64_t>* shape) {
  std::string err;
  hid_t ds = -1;
  if (H5Lexists(file, name.c_str(), H5P_DEFAULT) <= 0 || (ds = H5Dopen2(file, name.c_str(), H5P_DEFAULT)) < 0) {
    err = path + ": the checkpoint has no dataset " + name + " (written by another version of terse?)";
  } else {
    const hid_t fspace = H5Dget_space(ds);
    const hssize_t len = H5Sget_simple_extent_npoints(fspace);
    H5Sclose(fspace);
    std::vector<std::uint64_t> stored;
    if (shape && (!read_numeric_attr(ds, "shape", stored, H5T_NATIVE_UINT64) || stored != *shape))
      err = path + ": " + name + " has shape " + shape_text(stored) + ", this run needs " + shape_text(*shape);
    else if (len < 0 || static_cast<std::uint64_t>(len) != n)
      err = path + ": " + name + " has " + std::to_string(len) + " elements, this run needs " + std::to_string(n);
  }
  err = first_error(comm, err);
  if (!err.empty()) {
    if (ds >= 0) H5Dclose(ds);
    throw CheckpointError(err);
  }
  const herr_t st = h5::transfer_piece(h5::Direction::read, ds, mem_type, n, piece.offset, piece.count, values);
  std::vector<std::uint32_t> stored_crc;
  const bool has_crc = read_numeric_attr(ds, "crc32", stored_crc, H5T_NATIVE_UINT32);
  H5Dclose(ds);
  std::uint32_t crc = 0;
  const bool tiled = combined_crc(comm, n, elem, piece, crc_bytes(0, values, piece.count * elem), crc);
  if (st < 0) err = path + ": cannot read " + name + " (" + hdf5_error_stack() + "): the checkpoint is damaged";
  else if (!tiled) throw std::logic_error("terse::CheckpointReader: the ranks' pieces of " + name + " do not tile it");
  else if (!has_crc) err = path + ": " + name + " has no crc32 attribute: the checkpoint is corrupted";
  else if (crc != stored_crc[0])
    err = path + ": " + name + " fails its checksum (stored " + hex(stored_crc[0]) + ", computed " + hex(crc) +
          "): the checkpoint is corrupted";
  err = first_error(comm, err);
  if (!err.empty()) throw CheckpointError(err);
}

}  // namespace

void CheckpointReader::read_array(const std::string& name, const std::vector<std::uint64_t>& shape, Piece piece,
                                  float* values) {
  read_dataset(comm_, static_cast<hid_t>(file_), "/state/" + name, H5T_NATIVE_FLOAT, sizeof(float), product(shape),
               piece, values, path_, &shape);
}

std::vector<double> CheckpointReader::read_scalars(const std::vector<std::string>& names) {
  const hid_t file = static_cast<hid_t>(file_);
  std::string stored_names;
  std::string err;
  if (H5Lexists(file, "/scalars", H5P_DEFAULT) > 0) {
    const hid_t ds = H5Dopen2(file, "/scalars", H5P_DEFAULT);
    if (ds >= 0) {
      read_string_attr(ds, "names", stored_names);
      H5Dclose(ds);
    }
  }
  std::vector<std::string> stored;
  std::stringstream ss(stored_names);
  for (std::string s; std::getline(ss, s, ',');) stored.push_back(s);
  std::vector<double> all(stored.size());
  if (stored.empty()) err = path_ + ": the checkpoint has no /scalars (or their names)";
  err = first_error(comm_, err);
  if (!err.empty()) throw CheckpointError(err);
  read_dataset(comm_, file, "/scalars", H5T_NATIVE_DOUBLE, sizeof(double), all.size(), Piece{0, all.size()},
               all.data(), path_, nullptr);
  std::vector<double> out;
  for (const auto& n : names) {
    const auto it = std::find(stored.begin(), stored.end(), n);
    if (it == stored.end()) throw CheckpointError(path_ + ": the checkpoint's /scalars have no '" + n + "'");
    out.push_back(all[static_cast<std::size_t>(it - stored.begin())]);
  }
  return out;
}

std::vector<HistoryRow> CheckpointReader::read_history(HistoryExtras extras) {
  const hid_t file = static_cast<hid_t>(file_);
  std::int64_t n = -1;
  if (H5Lexists(file, "/history/iteration", H5P_DEFAULT) > 0) {
    const hid_t ds = H5Dopen2(file, "/history/iteration", H5P_DEFAULT);
    if (ds >= 0) {
      const hid_t sp = H5Dget_space(ds);
      n = H5Sget_simple_extent_npoints(sp);
      H5Sclose(sp);
      H5Dclose(ds);
    }
  }
  const std::string err = first_error(comm_, n < 0 ? path_ + ": the checkpoint has no /history/iteration" : "");
  if (!err.empty()) throw CheckpointError(err);
  const auto un = static_cast<std::uint64_t>(n);
  std::vector<HistoryRow> rows(un);
  std::vector<std::int64_t> it(un);
  read_dataset(comm_, file, "/history/iteration", H5T_NATIVE_INT64, sizeof(std::int64_t), un, Piece{0, un}, it.data(),
               path_, nullptr);
  for (std::size_t i = 0; i < un; ++i) rows[i].iteration = it[i];
  std::vector<double> col(un);
  if (!extras.test_accuracy)
    for (auto& r : rows) r.test_accuracy = std::nan("");
  for (const auto& c : history_columns(extras)) {
    read_dataset(comm_, file, std::string("/history/") + c.name, H5T_NATIVE_DOUBLE, sizeof(double), un, Piece{0, un},
                 col.data(), path_, nullptr);
    for (std::size_t i = 0; i < un; ++i) rows[i].*(c.member) = col[i];
  }
  return rows;
}

}  // namespace terse
