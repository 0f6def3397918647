#pragma once
// fuzz_common.hpp: what the harnesses share: a per-process scratch file for the readers that take a path.

#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace terse::fuzz {

/// A file under $TMPDIR (or /tmp) named after the harness and the process; rewritten for every input and
/// removed at exit.
class ScratchFile {
 public:
  explicit ScratchFile(const std::string& name, const std::string& suffix = "") {
    const char* dir = std::getenv("TMPDIR");
    path_ = std::string(dir && *dir ? dir : "/tmp") + "/terse-fuzz-" + name + "-" + std::to_string(::getpid()) + suffix;
  }
  ~ScratchFile() { std::remove(path_.c_str()); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  const std::string& write(const std::uint8_t* data, std::size_t size) const {
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    if (!f) std::abort();
    if (size && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
    return path_;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace terse::fuzz
