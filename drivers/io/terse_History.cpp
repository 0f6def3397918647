#include "terse_History.hpp"

#include <chrono>

#include "terse_Error.hpp"
#include "terse_Hdf5.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <unistd.h>

namespace terse {

std::vector<HistoryColumn> history_columns(HistoryExtras extras) {
  std::vector<HistoryColumn> c = {
      {"loss", &HistoryRow::loss},           {"grad_norm_sq", &HistoryRow::grad_norm_sq},
      {"lr", &HistoryRow::lr},               {"bits_up", &HistoryRow::bits_up},
      {"bits_down", &HistoryRow::bits_down}, {"bytes_sent", &HistoryRow::bytes_sent},
      {"wall_time", &HistoryRow::wall_time}, {"loss_rows", &HistoryRow::loss_rows},
      {"loss_std_error", &HistoryRow::loss_std_error}};
  if (extras.test_accuracy) c.push_back({"test_accuracy", &HistoryRow::test_accuracy});
  if (extras.success_probability) {
    c.push_back({"success_probability_min", &HistoryRow::success_probability_min});
    c.push_back({"success_probability_mean", &HistoryRow::success_probability_mean});
  }
  return c;
}

namespace {

using h5::check;
using h5::check_id;
using h5::write_string_attribute;

void write_int_attribute(hid_t obj, const char* name, std::int64_t value, const std::string& path) {
  h5::write_numeric_attribute<std::int64_t>(obj, name, {value}, H5T_STD_I64LE, H5T_NATIVE_INT64, path);
}

}  // namespace

void check_output_path(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw UserError(path + ": the output directory " + dir.string() + " does not exist");
  if (!fs::is_directory(dir, ec)) throw UserError(path + ": " + dir.string() + " is not a directory");
  if (fs::is_directory(p, ec)) throw UserError(path + ": the output path is a directory");
  if (::access(dir.c_str(), W_OK) != 0)
    throw UserError(path + ": the output directory " + dir.string() + " is not writable (" + std::strerror(errno) + ")");
}

HistoryWriter::HistoryWriter(MPI_Comm comm, const std::string& path, const HistoryAttributes& attributes,
                             HistoryExtras extras)
    : comm_(comm), path_(path) {
  MPI_Comm_rank(comm_, &rank_);
  check_output_path(path_);
  // One temporary name for all ranks: rank 0 chooses it from its pid.
  long long pid = rank_ == 0 ? static_cast<long long>(::getpid()) : 0;
  MPI_Bcast(&pid, 1, MPI_LONG_LONG, 0, comm_);
  tmp_path_ = path_ + ".tmp-" + std::to_string(pid);

  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are reported by the checks above, not printed
  const hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  check(H5Pset_fapl_mpio(fapl, comm_, MPI_INFO_NULL), "H5Pset_fapl_mpio", path_);
  const hid_t file = H5Fcreate(tmp_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (file < 0) throw UserError(path_ + ": cannot create the HDF5 file " + tmp_path_);
  file_ = file;

  write_string_attribute(file, "algorithm", attributes.algorithm, path_);
  write_string_attribute(file, "problem", attributes.problem, path_);
  write_string_attribute(file, "config", attributes.config, path_);
  write_string_attribute(file, "kokkos_backend", attributes.kokkos_backend, path_);
  write_string_attribute(file, "terse_version", attributes.terse_version, path_);
  write_int_attribute(file, "workers", attributes.workers, path_);
  write_int_attribute(file, "ranks", attributes.ranks, path_);

  const hid_t group = check_id(H5Gcreate2(file, "history", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "history", path_);
  columns_ = history_columns(extras);
  names_ = {"iteration"};
  for (const auto& c : columns_) names_.push_back(c.name);
  const hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = 256;
  for (const auto& name : names_) {
    const hid_t space = H5Screate_simple(1, &zero, &unlimited);
    const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    const hid_t type = name == "iteration" ? H5T_STD_I64LE : H5T_IEEE_F64LE;
    datasets_.push_back(
        check_id(H5Dcreate2(group, name.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), name.c_str(), path_));
    H5Pclose(dcpl);
    H5Sclose(space);
  }
  H5Gclose(group);
}

namespace {
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

void HistoryWriter::append(const HistoryRow& row) {
  pending_.push_back(row);
  int due = 0;  // rank 0 decides, so that every rank makes the same collective calls
  if (rank_ == 0)
    due = rows_ == 0 || pending_.size() >= kFlushRows || now_seconds() - last_write_ >= kFlushSeconds ? 1 : 0;
  MPI_Bcast(&due, 1, MPI_INT, 0, comm_);
  if (due) write_pending();
}

void HistoryWriter::write_pending() {
  if (pending_.empty() || closed_) return;
  const hsize_t k = pending_.size(), start = rows_, new_size = rows_ + k;
  const hid_t xfer = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(xfer, H5FD_MPIO_COLLECTIVE);
  std::vector<std::int64_t> iterations(k);
  std::vector<double> values(k);
  for (hsize_t r = 0; r < k; ++r) iterations[r] = pending_[r].iteration;
  for (std::size_t c = 0; c < datasets_.size(); ++c) {
    const hid_t ds = static_cast<hid_t>(datasets_[c]);
    check(H5Dset_extent(ds, &new_size), "H5Dset_extent", path_);
    const hid_t fspace = H5Dget_space(ds);
    const hid_t mspace = H5Screate_simple(1, &k, nullptr);
    if (rank_ == 0) {
      H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, nullptr, &k, nullptr);
    } else {
      H5Sselect_none(fspace);
      H5Sselect_none(mspace);
    }
    if (c == 0) {
      check(H5Dwrite(ds, H5T_NATIVE_INT64, mspace, fspace, xfer, iterations.data()), "H5Dwrite", path_);
    } else {
      for (hsize_t r = 0; r < k; ++r) values[r] = pending_[r].*(columns_[c - 1].member);
      check(H5Dwrite(ds, H5T_NATIVE_DOUBLE, mspace, fspace, xfer, values.data()), "H5Dwrite", path_);
    }
    H5Sclose(mspace);
    H5Sclose(fspace);
  }
  H5Pclose(xfer);
  check(H5Fflush(static_cast<hid_t>(file_), H5F_SCOPE_GLOBAL), "H5Fflush", path_);
  rows_ += k;
  pending_.clear();
  if (rank_ == 0) last_write_ = now_seconds();
}

void HistoryWriter::write_final_x(std::uint64_t d, std::uint64_t begin, const float* values, std::uint64_t count) {
  write_pending();
  const hid_t file = static_cast<hid_t>(file_);
  const hid_t group = check_id(H5Gcreate2(file, "final", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "final", path_);
  const hsize_t dims = d;
  const hid_t fspace = H5Screate_simple(1, &dims, nullptr);
  const hid_t ds = check_id(H5Dcreate2(group, "x", H5T_IEEE_F32LE, fspace, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                            "/final/x", path_);
  H5Sclose(fspace);
  check(h5::transfer_piece(h5::Direction::write, ds, H5T_NATIVE_FLOAT, d, begin, count, const_cast<float*>(values)),
        "H5Dwrite /final/x", path_);
  H5Dclose(ds);
  H5Gclose(group);
}

void HistoryWriter::close_file() {
  for (auto ds : datasets_) H5Dclose(static_cast<hid_t>(ds));
  datasets_.clear();
  check(H5Fclose(static_cast<hid_t>(file_)), "H5Fclose", path_);
  file_ = -1;
  closed_ = true;
}

void HistoryWriter::close() {
  if (closed_) return;
  write_pending();
  close_file();
  int ok = 1;
  if (rank_ == 0 && std::rename(tmp_path_.c_str(), path_.c_str()) != 0) ok = 0;
  MPI_Bcast(&ok, 1, MPI_INT, 0, comm_);
  if (!ok) throw UserError(path_ + ": cannot rename " + tmp_path_ + " to it");
}

void HistoryWriter::write_status(const std::string& status) {
  write_pending();
  write_string_attribute(static_cast<hid_t>(file_), "status", status, path_);
}

void HistoryWriter::discard() {
  if (closed_) return;
  close_file();
  if (rank_ == 0) std::remove(tmp_path_.c_str());
  MPI_Barrier(comm_);
}

HistoryWriter::~HistoryWriter() {
  if (closed_) return;
  // An unfinished run: close what is open and leave the temporary file (the history so far, but the rows held
  // back: writing them is collective, and the other ranks may be gone) for inspection; the final name is never
  // created.
  for (auto ds : datasets_) H5Dclose(static_cast<hid_t>(ds));
  if (file_ >= 0) H5Fclose(static_cast<hid_t>(file_));
}

}  // namespace terse
