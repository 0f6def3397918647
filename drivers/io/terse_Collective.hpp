#pragma once
// terse_Collective.hpp: agreeing on an error across the ranks (used by the readers and the run).

#include <mpi.h>

#include <string>

namespace terse {

/// Collective: the message of the lowest rank of comm whose `local` is not empty, on every rank ("" when no
/// rank has one). Lets an error that one rank found (a file it reads, a check of its part) stop every rank
/// the same way instead of leaving the others in the next collective.
std::string first_error(MPI_Comm comm, const std::string& local);

}  // namespace terse
