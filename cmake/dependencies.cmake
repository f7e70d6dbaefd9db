# SPDX-License-Identifier: Apache-2.0
# Finds Debian's packages; nothing is vendored or fetched.
find_package(Protobuf REQUIRED)  # must come before ONNX: Debian's ONNX targets use protobuf::libprotobuf
find_package(ONNX REQUIRED)
find_package(spdlog REQUIRED)
find_package(CLI11 QUIET CONFIG)
if(NOT TARGET CLI11::CLI11)
  find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp REQUIRED)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  target_include_directories(CLI11::CLI11 INTERFACE ${CLI11_INCLUDE_DIR})
endif()

# LAPACKE + OpenBLAS (Debian: liblapacke-dev, libopenblas-dev): kfc::lapack.
include(${CMAKE_CURRENT_LIST_DIR}/kfcLapack.cmake)
if(NOT TARGET kfc::lapack)
  message(FATAL_ERROR "LAPACKE and OpenBLAS not found: install liblapacke-dev and libopenblas-dev")
endif()

# RE2 (Debian: libre2-dev) for --include/--exclude and plan regexes: linear time, no
# backreferences, and the \d \w \s classes users write.
find_package(PkgConfig REQUIRED)
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)
