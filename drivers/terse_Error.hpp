#pragma once
// terse_Error.hpp: the error type for problems a user can fix (bad options, decks, data files, output
// paths). `terse` prints its message, which names the file, key or line, and exits with status 2.

#include <stdexcept>

namespace terse {

struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace terse
