// The HDF5 history writer on several ranks: collective appends, /final/x by slices, attributes, the
// temporary name until close(), and clear errors for unusable output paths.
#include <terse_History.hpp>
#include <terse_Error.hpp>

#include <gtest/gtest.h>
#include <hdf5.h>
#include <mpi.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

namespace {

using namespace terse;

int rank_of() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int size_of() {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

/// A directory shared by all ranks (rank 0 creates it).
std::string shared_tmp_dir(const std::string& name) {
  std::string dir;
  if (rank_of() == 0) {
    dir = (std::filesystem::temp_directory_path() / ("terse-test-" + name + "-" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(dir);
  }
  int len = static_cast<int>(dir.size());
  MPI_Bcast(&len, 1, MPI_INT, 0, MPI_COMM_WORLD);
  dir.resize(len);
  MPI_Bcast(dir.data(), len, MPI_CHAR, 0, MPI_COMM_WORLD);
  return dir;
}

std::vector<double> read_doubles(hid_t file, const char* name) {
  const hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
  const hid_t space = H5Dget_space(ds);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space, &n, nullptr);
  std::vector<double> v(n);
  H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Sclose(space);
  H5Dclose(ds);
  return v;
}

std::string read_string_attribute(hid_t file, const char* name) {
  const hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
  const hid_t type = H5Aget_type(attr);
  std::string s(H5Tget_size(type), '\0');
  H5Aread(attr, type, s.data());
  H5Tclose(type);
  H5Aclose(attr);
  return std::string(s.c_str());
}

TEST(MpiHistory, RowsSlicesAndAttributesRoundTrip) {
  const int rank = rank_of(), size = size_of();
  const std::string dir = shared_tmp_dir("history");
  const std::string path = dir + "/out.h5";
  HistoryAttributes attrs{"majority_vote", "quadratic", "problem: {kind: quadratic}\n", "OpenMP", "0.1.0", 4, size};
  const std::uint64_t d = 1000;
  {
    HistoryWriter w(MPI_COMM_WORLD, path, attrs, /*with_test_accuracy=*/true);
    for (int k = 0; k < 5; ++k) {
      HistoryRow row;
      row.iteration = 10 * k;
      row.loss = 1.0 / (k + 1);
      row.grad_norm_sq = k;
      row.lr = 0.5;
      row.bits_up = 1000.0 * k;
      row.bits_down = 2000.0 * k;
      row.wall_time = 0.1 * k;
      row.test_accuracy = 0.9;
      w.append(row);
    }
    // Until close() only the temporary file exists.
    if (rank == 0) {
      EXPECT_FALSE(std::filesystem::exists(path));
      EXPECT_TRUE(std::filesystem::exists(w.temporary_path()));
    }
    const std::uint64_t begin = d * rank / size, end = d * (rank + 1) / size;
    std::vector<float> x(end - begin);
    for (std::uint64_t i = begin; i < end; ++i) x[i - begin] = static_cast<float>(i) * 0.5f;
    w.write_final_x(d, begin, x.data(), x.size());
    w.close();
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    ASSERT_TRUE(std::filesystem::exists(path));
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    EXPECT_EQ(read_doubles(file, "/history/iteration"), (std::vector<double>{0, 10, 20, 30, 40}));
    EXPECT_EQ(read_doubles(file, "/history/loss"), (std::vector<double>{1, 0.5, 1.0 / 3, 0.25, 0.2}));
    EXPECT_EQ(read_doubles(file, "/history/bits_down"), (std::vector<double>{0, 2000, 4000, 6000, 8000}));
    EXPECT_EQ(read_doubles(file, "/history/test_accuracy").size(), 5u);
    const auto x = read_doubles(file, "/final/x");
    ASSERT_EQ(x.size(), d);
    for (std::uint64_t i = 0; i < d; ++i) ASSERT_EQ(x[i], 0.5 * i) << i;
    EXPECT_EQ(read_string_attribute(file, "algorithm"), "majority_vote");
    EXPECT_EQ(read_string_attribute(file, "config"), "problem: {kind: quadratic}\n");
    H5Fclose(file);
    std::filesystem::remove_all(dir);
  }
}

TEST(MpiHistory, UnusableOutputPathsAreNamed) {
  const std::string dir = shared_tmp_dir("history-bad");
  HistoryAttributes attrs;
  try {
    HistoryWriter w(MPI_COMM_WORLD, dir + "/missing/out.h5", attrs, false);
    FAIL() << "a missing directory was accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("missing/out.h5"), std::string::npos) << e.what();
  }
  try {
    HistoryWriter w(MPI_COMM_WORLD, dir, attrs, false);
    FAIL() << "a directory was accepted as the output file";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank_of() == 0) std::filesystem::remove_all(dir);
}

}  // namespace
