# SPDX-License-Identifier: Apache-2.0
# What `cmake --install build --prefix P` puts under P, and the .deb that `cpack -G DEB` builds:
#   bin/kfc-compress
#   lib/libkfc.a, lib/libkfc_proto.a           the library and the report/plan messages it needs
#   include/kfc/**/*.h, include/kfc/*.pb.h     public headers (#include "kfc/pipeline/compress.h")
#   lib/cmake/kfc/                             find_package(kfc) -> kfc::kfc
#   ${KFC_PYTHON_INSTALL_DIR}/kfc_compress*.so the Python module (when built)
include(CMakePackageConfigHelpers)

set(KFC_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/kfc)

install(TARGETS kfc-compress RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# The calibration runner next to the binary; its npm dependencies are installed by the user with
# `ONNXRUNTIME_NODE_INSTALL=skip npm ci` in PREFIX/lib/kfc-compress (docs/runner.md). The runner
# looks there literally, so this is not CMAKE_INSTALL_LIBDIR (lib/<triplet> on Debian).
install(PROGRAMS ${PROJECT_SOURCE_DIR}/tool/kfc-runner.js DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/tool/package.json ${PROJECT_SOURCE_DIR}/tool/package-lock.json
        DESTINATION lib/kfc-compress)
install(TARGETS kfc kfc_proto EXPORT kfcTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/lib/kfc DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")
install(FILES ${KFC_PROTO_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kfc)
install(EXPORT kfcTargets NAMESPACE kfc:: DESTINATION ${KFC_CMAKE_INSTALL_DIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/kfcConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/kfcConfig.cmake
                              INSTALL_DESTINATION ${KFC_CMAKE_INSTALL_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/kfcConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/kfcConfig.cmake ${PROJECT_BINARY_DIR}/kfcConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/kfcLapack.cmake
        DESTINATION ${KFC_CMAKE_INSTALL_DIR})

# --- cpack -G DEB ------------------------------------------------------------------------------
# One package with everything above, installed under /usr. Its Depends come from dpkg-shlibdeps
# (the shared libraries the binary and the Python module load); the -dev packages a CMake consumer
# needs are Suggests.
set(CPACK_PACKAGE_NAME kfc-compress)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "kfc-compress developers")
set(CPACK_PACKAGE_CONTACT "kfc-compress developers <kfc-compress@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Compress the Gemm/MatMul layers of ONNX models as sums of Kronecker products")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Executables and the Python module without debug info (the static libraries keep theirs; build
# with -DCMAKE_BUILD_TYPE=Release for a smaller package).
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS
    "libonnx-dev, libprotobuf-dev, libspdlog-dev, liblapacke-dev, libopenblas-dev")
if(KFC_PYTHON_DEB_DEPENDS)
  # The module is built for one Python ABI (it does not link libpython, so shlibdeps cannot see it).
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "${KFC_PYTHON_DEB_DEPENDS}")
endif()
include(CPack)
