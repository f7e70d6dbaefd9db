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

# LAPACKE + OpenBLAS (Debian: liblapacke-dev, libopenblas-dev).
find_path(LAPACKE_INCLUDE_DIR lapacke.h PATH_SUFFIXES openblas REQUIRED)
find_library(LAPACKE_LIBRARY lapacke REQUIRED)
find_library(OPENBLAS_LIBRARY openblas REQUIRED)
find_path(CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas x86_64-linux-gnu/openblas-pthread REQUIRED)
add_library(kfc_lapack INTERFACE)
target_include_directories(kfc_lapack INTERFACE ${LAPACKE_INCLUDE_DIR} ${CBLAS_INCLUDE_DIR})
target_link_libraries(kfc_lapack INTERFACE ${LAPACKE_LIBRARY} ${OPENBLAS_LIBRARY})

# RE2 (Debian: libre2-dev) for --include/--exclude and plan regexes: linear time, no
# backreferences, and the \d \w \s classes users write.
find_package(PkgConfig REQUIRED)
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)
