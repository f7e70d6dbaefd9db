# SPDX-License-Identifier: Apache-2.0
# LAPACKE + OpenBLAS (Debian: liblapacke-dev, libopenblas-dev) as the imported target kfc::lapack.
# Used by the build and, installed next to kfcConfig.cmake, by projects that find_package(kfc).
if(NOT TARGET kfc::lapack)
  find_path(LAPACKE_INCLUDE_DIR lapacke.h PATH_SUFFIXES openblas)
  find_library(LAPACKE_LIBRARY lapacke)
  find_library(OPENBLAS_LIBRARY openblas)
  find_path(CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas x86_64-linux-gnu/openblas-pthread)
  include(FindPackageHandleStandardArgs)
  find_package_handle_standard_args(kfcLapack NAME_MISMATCHED REQUIRED_VARS LAPACKE_INCLUDE_DIR LAPACKE_LIBRARY
                                                            OPENBLAS_LIBRARY CBLAS_INCLUDE_DIR)
  if(kfcLapack_FOUND)
    add_library(kfc::lapack INTERFACE IMPORTED)
    set_target_properties(kfc::lapack PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${LAPACKE_INCLUDE_DIR};${CBLAS_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES "${LAPACKE_LIBRARY};${OPENBLAS_LIBRARY}")
  endif()
endif()
