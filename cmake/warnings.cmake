# SPDX-License-Identifier: Apache-2.0
# Warnings for our own targets only; generated protobuf code is compiled without them.
function(kfc_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow)
endfunction()
