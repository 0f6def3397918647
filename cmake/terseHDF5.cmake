# Finds parallel HDF5 (C bindings) and stops with a clear message when only a serial HDF5 is found.
# Defines the imported target terse::hdf5.
set(HDF5_PREFER_PARALLEL TRUE)
find_package(HDF5 REQUIRED COMPONENTS C)

set(_terse_h5_parallel ${HDF5_IS_PARALLEL})
if(NOT _terse_h5_parallel)
  # FindHDF5 only knows from the compiler wrapper; H5pubconf.h is the authority.
  foreach(_dir IN LISTS HDF5_C_INCLUDE_DIRS HDF5_INCLUDE_DIRS)
    if(EXISTS "${_dir}/H5pubconf.h")
      file(STRINGS "${_dir}/H5pubconf.h" _terse_h5_par REGEX "^#define H5_HAVE_PARALLEL 1")
      if(_terse_h5_par)
        set(_terse_h5_parallel TRUE)
      endif()
    endif()
  endforeach()
endif()
if(NOT _terse_h5_parallel)
  message(FATAL_ERROR
    "terse needs a parallel (MPI) build of HDF5, but the HDF5 found (${HDF5_VERSION}, include "
    "${HDF5_C_INCLUDE_DIRS}) is serial. On Debian install libhdf5-openmpi-dev; with spack use hdf5+mpi; "
    "or point HDF5_ROOT at a parallel HDF5.")
endif()
message(STATUS "terse: parallel HDF5 ${HDF5_VERSION}")

if(NOT TARGET terse::hdf5)
  add_library(terse::hdf5 INTERFACE IMPORTED)
  set_target_properties(terse::hdf5 PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${HDF5_C_INCLUDE_DIRS}"
    INTERFACE_LINK_LIBRARIES "${HDF5_C_LIBRARIES}"
    INTERFACE_COMPILE_DEFINITIONS "${HDF5_C_DEFINITIONS};TERSE_HDF5_VERSION=\"${HDF5_VERSION}\"")
endif()
