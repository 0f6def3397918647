#pragma once
// terse_Hdf5.hpp: the small HDF5 helpers the history and checkpoint writers share (internal to the drivers):
// status checks that throw UserError naming the file, and attribute writers.

#include "terse_Error.hpp"

#include <hdf5.h>

#include <string>
#include <vector>

namespace terse::h5 {

inline void check(herr_t status, const std::string& what, const std::string& path) {
  if (status < 0) throw UserError(path + ": HDF5 error in " + what);
}

inline hid_t check_id(hid_t id, const std::string& what, const std::string& path) {
  if (id < 0) throw UserError(path + ": HDF5 error in " + what);
  return id;
}

/// A fixed-length, NUL-terminated string attribute.
inline void write_string_attribute(hid_t obj, const char* name, const std::string& value, const std::string& path) {
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

/// A numeric attribute: a scalar for one value, else a 1-D array. file_type: the type stored (e.g.
/// H5T_STD_I64LE), mem_type: the type of T (e.g. H5T_NATIVE_INT64).
template <class T>
void write_numeric_attribute(hid_t obj, const char* name, const std::vector<T>& values, hid_t file_type,
                             hid_t mem_type, const std::string& path) {
  const hsize_t n = values.size();
  const hid_t space = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr);
  const hid_t attr = check_id(H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT), name, path);
  check(H5Awrite(attr, mem_type, values.data()), name, path);
  H5Aclose(attr);
  H5Sclose(space);
}

/// Collective write (read) of this rank's piece [offset, offset + count) of a 1-D dataset of n elements from
/// (into) `data`; count 0: the rank takes part with an empty selection (data may then be null). Returns the
/// H5Dwrite / H5Dread status.
enum class Direction { write, read };
inline herr_t transfer_piece(Direction direction, hid_t ds, hid_t mem_type, hsize_t n, hsize_t offset, hsize_t count,
                             void* data) {
  const hid_t fspace = H5Screate_simple(1, &n, nullptr);
  const hid_t mspace = H5Screate_simple(1, &count, nullptr);
  if (count > 0) {
    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &offset, nullptr, &count, nullptr);
  } else {
    H5Sselect_none(fspace);
    H5Sselect_none(mspace);
  }
  const hid_t xfer = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(xfer, H5FD_MPIO_COLLECTIVE);
  const herr_t st = direction == Direction::write ? H5Dwrite(ds, mem_type, mspace, fspace, xfer, data)
                                                  : H5Dread(ds, mem_type, mspace, fspace, xfer, data);
  H5Pclose(xfer);
  H5Sclose(mspace);
  H5Sclose(fspace);
  return st;
}

}  // namespace terse::h5
