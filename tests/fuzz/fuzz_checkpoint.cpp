// fuzz_checkpoint.cpp: libFuzzer harness of the checkpoint loader (terse::CheckpointReader).
//
// Random bytes are almost never an HDF5 file, so the harness is structure-aware: at start it writes a valid
// checkpoint (CheckpointWriter: two state arrays, the scalars, three history rows) and records where HDF5 put
// the raw data of every dataset (H5Dget_offset). An input is read as
//   byte 0..3   a truncation control: when its low 3 bits are 0 the file keeps its length, otherwise it is
//               cut to (value % length) bytes,
//   then 5-byte records (position: 4 bytes, value: 1 byte) that overwrite bytes of the datasets' raw data,
// and the patched file is loaded as `terse run --restart` loads one: header check, every array, the scalars,
// the history. It must either be refused with terse::CheckpointError (UserError) or give back exactly the
// values written: a change the checksums miss is a bug, as is a crash or a sanitizer report.
//
// Patches stay in the raw data and the header's attributes are left alone: corrupting HDF5's own metadata
// (object headers, B-trees) exercises libhdf5's parser, not terse's loader, and HDF5 1.10 is known to crash
// on such files. A file truncated anywhere is in scope (terse checks the length before opening it).
// Leak checking is off for this harness (tests/fuzz/CMakeLists.txt): MPI stays initialised until exit.
#include "fuzz_common.hpp"

#include <terse_Checkpoint.hpp>
#include <terse_Deck.hpp>

#include <hdf5.h>
#include <mpi.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

namespace {

struct Base {
  terse::CheckpointIdentity id;
  std::vector<std::uint8_t> bytes;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> raw;  // [offset, offset + size) of each dataset's data
  std::vector<float> x, m;
  std::vector<terse::HistoryRow> rows;
  std::vector<std::string> scalar_names{"lr", "bits_up"};
  std::vector<double> scalars{0.125, 4096};
};

constexpr std::uint64_t kDim = 300;

void collect_raw(hid_t file, const char* name, std::vector<std::pair<std::uint64_t, std::uint64_t>>& raw) {
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return;
  const hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
  if (ds < 0) return;
  const haddr_t off = H5Dget_offset(ds);
  const hsize_t size = H5Dget_storage_size(ds);
  if (off != HADDR_UNDEF && size > 0) raw.emplace_back(off, size);
  H5Dclose(ds);
}

Base make_base(const std::string& path) {
  Base b;
  const terse::Deck deck = terse::parse_deck_string(
      "problem: {kind: quadratic, dim: 300}\noptimizer: {kind: amsgrad, lr: 0.1}\nrun: {iterations: 20}\n", "fuzz.yaml");
  b.id = terse::CheckpointIdentity::of(deck, kDim, 1);
  for (std::uint64_t i = 0; i < kDim; ++i) {
    b.x.push_back(0.5f + static_cast<float>(i) / 7);
    b.m.push_back(-static_cast<float>(i) / 3);
  }
  for (int k = 0; k < 3; ++k) {
    terse::HistoryRow r;
    r.iteration = 5 * k;
    r.loss = 10.0 / (k + 1);
    r.grad_norm_sq = 1.0 / (k + 2);
    r.lr = 0.1;
    r.bits_up = r.bits_down = 32.0 * kDim * k;
    r.wall_time = 0.01 * k;
    b.rows.push_back(r);
  }
  {
    terse::CheckpointWriter w(MPI_COMM_SELF, path, b.id, 10);
    w.write_array("x", {kDim}, terse::Piece{0, kDim}, b.x.data());
    w.write_array("amsgrad.m", {kDim}, terse::Piece{0, kDim}, b.m.data());
    std::vector<std::pair<std::string, double>> s;
    for (std::size_t i = 0; i < b.scalar_names.size(); ++i) s.emplace_back(b.scalar_names[i], b.scalars[i]);
    w.write_scalars(s);
    w.write_history(b.rows, terse::HistoryExtras{});
    w.commit();
  }
  std::ifstream in(path, std::ios::binary);
  b.bytes.assign(std::istreambuf_iterator<char>(in), {});
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) std::abort();
  for (const char* name : {"/state/x", "/state/amsgrad.m", "/scalars", "/history/iteration", "/history/loss",
                           "/history/grad_norm_sq", "/history/lr", "/history/bits_up", "/history/bits_down",
                           "/history/wall_time"})
    collect_raw(file, name, b.raw);
  H5Fclose(file);
  if (b.raw.empty()) std::abort();
  return b;
}

const Base& base() {
  static const terse::fuzz::ScratchFile file("checkpoint-base", ".h5");
  static const Base b = make_base(file.path());
  return b;
}

bool same_rows(const std::vector<terse::HistoryRow>& a, const std::vector<terse::HistoryRow>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].iteration != b[i].iteration || a[i].loss != b[i].loss || a[i].grad_norm_sq != b[i].grad_norm_sq ||
        a[i].lr != b[i].lr || a[i].bits_up != b[i].bits_up || a[i].bits_down != b[i].bits_down ||
        a[i].wall_time != b[i].wall_time)
      return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  MPI_Init(argc, argv);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  base();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Base& b = base();
  std::vector<std::uint8_t> bytes = b.bytes;
  std::uint64_t raw_total = 0;
  for (const auto& r : b.raw) raw_total += r.second;
  std::size_t pos = 0;
  std::uint32_t cut = 0;
  if (size >= 4) {
    std::memcpy(&cut, data, 4);
    pos = 4;
  }
  for (; pos + 5 <= size; pos += 5) {
    std::uint32_t at = 0;
    std::memcpy(&at, data + pos, 4);
    std::uint64_t k = at % raw_total;
    for (const auto& r : b.raw) {
      if (k < r.second) {
        if (r.first + k < bytes.size()) bytes[r.first + k] = data[pos + 4];
        break;
      }
      k -= r.second;
    }
  }
  if ((cut & 7u) != 0) bytes.resize(cut % bytes.size());
  static const terse::fuzz::ScratchFile file("checkpoint", ".h5");
  const std::string& path = file.write(bytes.data(), bytes.size());
  try {
    terse::CheckpointReader reader(MPI_COMM_SELF, path, b.id);
    std::vector<float> x(kDim), m(kDim);
    reader.read_array("x", {kDim}, terse::Piece{0, kDim}, x.data());
    reader.read_array("amsgrad.m", {kDim}, terse::Piece{0, kDim}, m.data());
    const std::vector<double> s = reader.read_scalars(b.scalar_names);
    const std::vector<terse::HistoryRow> rows = reader.read_history(terse::HistoryExtras{});
    // Accepted: everything must be what was written (the checksums cover every array, the scalars and rows).
    if (reader.iteration() != 10 || std::memcmp(x.data(), b.x.data(), kDim * 4) != 0 ||
        std::memcmp(m.data(), b.m.data(), kDim * 4) != 0 || s != b.scalars || !same_rows(rows, b.rows)) {
      std::fprintf(stderr, "a changed checkpoint was loaded without a refusal\n");
      std::abort();
    }
  } catch (const terse::UserError&) {
  }
  return 0;
}
