// SPDX-License-Identifier: Apache-2.0
// Size limits of Debian's LP64 LAPACK (32-bit lapack_int), shared by the SVD paths in kron/.
#pragma once

#include <lapacke.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "kfc/core/status.h"

namespace kfc::kron {

inline std::string LapackIntBits() { return std::to_string(8 * sizeof(lapack_int)) + "-bit"; }

// dgesdd on an m x n matrix indexes it and sizes its workspace with lapack_int: refuse what it
// cannot address instead of letting it overflow. `what` names the matrix ("rearranged matrix").
inline Status CheckDgesddDims(int64_t m, int64_t n, const std::string& what) {
  constexpr double kLapackMax = static_cast<double>(std::numeric_limits<lapack_int>::max());
  const double mn = static_cast<double>(std::min(m, n));
  const double mx = static_cast<double>(std::max(m, n));
  // jobz='S' needs about 3*mn + max(mx, 4*mn^2 + 4*mn) doubles, plus blocking slack.
  const double workspace = 4.0 * mn * mn + 8.0 * mn + 128.0 * mx + 1024.0;
  if (mx * mn > kLapackMax || workspace > kLapackMax) {
    return InvalidArgument(what + " " + std::to_string(m) + "x" + std::to_string(n) +
                           " is too large for the exact SVD: LAPACK uses " + LapackIntBits() +
                           " integers");
  }
  return Status::Ok();
}

}  // namespace kfc::kron
