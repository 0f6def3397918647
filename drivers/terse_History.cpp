#include "terse_History.hpp"

#include "terse_Error.hpp"

#include <hdf5.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <unistd.h>

namespace terse {

namespace {

void check(herr_t status, const char* what, const std::string& path) {
  if (status < 0) throw UserError(path + ": HDF5 error in " + what);
}

hid_t check_id(hid_t id, const char* what, const std::string& path) {
  if (id < 0) throw UserError(path + ": HDF5 error in " + what);
  return id;
}

void write_string_attribute(hid_t obj, const char* name, const std::string& value, const std::string& path) {
  const hid_t type = check_id(H5Tcopy(H5T_C_S1), "H5Tcopy", path);
  H5Tset_size(type, value.empty() ? 1 : value.size());
  H5Tset_strpad(type, H5T_STR_NULLTERM);
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t attr = check_id(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT), name, path);
  check(H5Awrite(attr, type, value.empty() ? "" : value.c_str()), name, path);
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
}

void write_int_attribute(hid_t obj, const char* name, std::int64_t value, const std::string& path) {
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t attr = check_id(H5Acreate2(obj, name, H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT), name, path);
  check(H5Awrite(attr, H5T_NATIVE_INT64, &value), name, path);
  H5Aclose(attr);
  H5Sclose(space);
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
                             bool with_test_accuracy)
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
  names_ = {"iteration", "loss", "grad_norm_sq", "lr", "bits_up", "bits_down", "wall_time"};
  if (with_test_accuracy) names_.push_back("test_accuracy");
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

void HistoryWriter::append(const HistoryRow& row) {
  const double values[] = {0, row.loss, row.grad_norm_sq, row.lr, row.bits_up, row.bits_down, row.wall_time,
                           row.test_accuracy};
  const hsize_t new_size = rows_ + 1, start = rows_, one = 1;
  const hid_t xfer = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(xfer, H5FD_MPIO_COLLECTIVE);
  for (std::size_t k = 0; k < datasets_.size(); ++k) {
    const hid_t ds = static_cast<hid_t>(datasets_[k]);
    check(H5Dset_extent(ds, &new_size), "H5Dset_extent", path_);
    const hid_t fspace = H5Dget_space(ds);
    const hid_t mspace = H5Screate_simple(1, &one, nullptr);
    if (rank_ == 0) {
      H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, nullptr, &one, nullptr);
    } else {
      H5Sselect_none(fspace);
      H5Sselect_none(mspace);
    }
    if (k == 0) {
      check(H5Dwrite(ds, H5T_NATIVE_INT64, mspace, fspace, xfer, &row.iteration), "H5Dwrite", path_);
    } else {
      check(H5Dwrite(ds, H5T_NATIVE_DOUBLE, mspace, fspace, xfer, &values[k]), "H5Dwrite", path_);
    }
    H5Sclose(mspace);
    H5Sclose(fspace);
  }
  H5Pclose(xfer);
  check(H5Fflush(static_cast<hid_t>(file_), H5F_SCOPE_GLOBAL), "H5Fflush", path_);
  ++rows_;
}

void HistoryWriter::write_final_x(std::uint64_t d, std::uint64_t begin, const float* values, std::uint64_t count) {
  const hid_t file = static_cast<hid_t>(file_);
  const hid_t group = check_id(H5Gcreate2(file, "final", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "final", path_);
  const hsize_t dims = d, start = begin, cnt = count;
  const hid_t fspace = H5Screate_simple(1, &dims, nullptr);
  const hid_t ds = check_id(H5Dcreate2(group, "x", H5T_IEEE_F32LE, fspace, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                            "/final/x", path_);
  const hid_t mspace = H5Screate_simple(1, &cnt, nullptr);
  if (count > 0) {
    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, nullptr, &cnt, nullptr);
  } else {
    H5Sselect_none(fspace);
    H5Sselect_none(mspace);
  }
  const hid_t xfer = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(xfer, H5FD_MPIO_COLLECTIVE);
  check(H5Dwrite(ds, H5T_NATIVE_FLOAT, mspace, fspace, xfer, values), "H5Dwrite /final/x", path_);
  H5Pclose(xfer);
  H5Sclose(mspace);
  H5Dclose(ds);
  H5Sclose(fspace);
  H5Gclose(group);
}

void HistoryWriter::close() {
  if (closed_) return;
  for (auto ds : datasets_) H5Dclose(static_cast<hid_t>(ds));
  datasets_.clear();
  check(H5Fclose(static_cast<hid_t>(file_)), "H5Fclose", path_);
  file_ = -1;
  closed_ = true;
  int ok = 1;
  if (rank_ == 0 && std::rename(tmp_path_.c_str(), path_.c_str()) != 0) ok = 0;
  MPI_Bcast(&ok, 1, MPI_INT, 0, comm_);
  if (!ok) throw UserError(path_ + ": cannot rename " + tmp_path_ + " to it");
}

void HistoryWriter::write_status(const std::string& status) {
  write_string_attribute(static_cast<hid_t>(file_), "status", status, path_);
}

void HistoryWriter::discard() {
  if (closed_) return;
  for (auto ds : datasets_) H5Dclose(static_cast<hid_t>(ds));
  datasets_.clear();
  check(H5Fclose(static_cast<hid_t>(file_)), "H5Fclose", path_);
  file_ = -1;
  closed_ = true;
  if (rank_ == 0) std::remove(tmp_path_.c_str());
  MPI_Barrier(comm_);
}

HistoryWriter::~HistoryWriter() {
  if (closed_) return;
  // An unfinished run: close what is open and leave the temporary file (the history so far) for inspection;
  // the final name is never created.
  for (auto ds : datasets_) H5Dclose(static_cast<hid_t>(ds));
  if (file_ >= 0) H5Fclose(static_cast<hid_t>(file_));
}

}  // namespace terse
