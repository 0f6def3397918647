// terse_Optim.cpp: the Method of every enabled backend, compiled once here (terse_Optim.hpp declares them
// extern, so a program that includes the header does not compile the pieces again).
#include "terse_Optim.hpp"

namespace terse::optim {

#define TERSE_METHOD_INSTANTIATE(E) template class Method<E>;
TERSE_FOR_EACH_BACKEND(TERSE_METHOD_INSTANTIATE)
#undef TERSE_METHOD_INSTANTIATE

}  // namespace terse::optim
