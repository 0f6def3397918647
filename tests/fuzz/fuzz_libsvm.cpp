// fuzz_libsvm.cpp: libFuzzer harness of the LibSVM reader (terse::read_libsvm, then make_binary).
//
// Input: the file's bytes (plain or gzip: the reader sniffs). A bad file must be refused with terse::DataError
// naming the file (and the line); anything else is a bug. Properties of an accepted file: every row's
// indices increase strictly and lie in [0, dim), every value and label is finite.
#include "fuzz_common.hpp"

#include <terse_Data.hpp>

#include <cmath>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const terse::fuzz::ScratchFile file("libsvm", ".svm");
  const std::string& path = file.write(data, size);
  terse::LibsvmOptions options;
  options.max_dim = 1u << 20;  // keep the columns small; the guard itself is part of what is fuzzed
  try {
    terse::SparseDataset d = terse::read_libsvm(path, options);
    const auto& ptr = d.row_ptr;
    for (std::size_t r = 0; r + 1 < ptr.size(); ++r)
      for (auto j = ptr[r]; j < ptr[r + 1]; ++j) {
        if (d.col[j] >= d.dim || (j > ptr[r] && d.col[j] <= d.col[j - 1]) || !std::isfinite(d.val[j])) std::abort();
      }
    for (double y : d.labels)
      if (!std::isfinite(y)) std::abort();
    terse::make_binary(d);
  } catch (const terse::DataError&) {
  }
  return 0;
}
