// fuzz_idx.cpp: libFuzzer harness of the IDX readers (terse::read_idx_images, read_idx_labels).
//
// Input: the file's bytes (raw IDX or gzip: the reader sniffs). Both readers read it; a bad file must be
// refused with terse::DataError; anything else (a crash, an allocation the header asks for but the file
// cannot hold, a sanitizer report) is a bug. Properties of an accepted file: the pixels (labels) are exactly
// the count x rows x cols (count) bytes the header promises.
#include "fuzz_common.hpp"

#include <terse_Data.hpp>

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const terse::fuzz::ScratchFile file("idx", "-idx.gz");
  const std::string& path = file.write(data, size);
  try {
    const terse::IdxImages im = terse::read_idx_images(path);
    if (im.count == 0 || im.rows == 0 || im.cols == 0 || im.pixels.size() != im.count * im.rows * im.cols) std::abort();
  } catch (const terse::DataError&) {
  }
  try {
    const terse::IdxLabels lab = terse::read_idx_labels(path);
    if (lab.labels.empty()) std::abort();
  } catch (const terse::DataError&) {
  }
  return 0;
}
