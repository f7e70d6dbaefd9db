#include "kfc/runner/compare.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kfc/io/npy.h"

namespace kfc::runner {
namespace {

constexpr int64_t kChunkElements = int64_t{1} << 20;

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

}  // namespace

StatusOr<Difference> CompareRecordings(const std::vector<std::string>& a_files,
                                       const std::vector<std::string>& b_files,
                                       const std::string& what) {
  if (a_files.size() != b_files.size()) {
    return FailedPrecondition(what + ": " + std::to_string(a_files.size()) + " batches against " +
                              std::to_string(b_files.size()));
  }
  Difference d;
  double diff2 = 0, ref2 = 0;
  bool non_finite = false;
  std::vector<float> a, b;
  for (size_t f = 0; f < a_files.size(); ++f) {
    KFC_ASSIGN_OR_RETURN(io::NpyReader ra, io::NpyReader::Open(a_files[f]));
    KFC_ASSIGN_OR_RETURN(io::NpyReader rb, io::NpyReader::Open(b_files[f]));
    if (ra.shape() != rb.shape()) {
      return FailedPrecondition(what + ": batch " + std::to_string(f) + " has shape " +
                                ShapeText(rb.shape()) + " after compression, " +
                                ShapeText(ra.shape()) + " before");
    }
    while (true) {
      KFC_RETURN_IF_ERROR(ra.Read(kChunkElements, &a));
      KFC_RETURN_IF_ERROR(rb.Read(kChunkElements, &b));
      if (a.empty()) break;
      for (size_t i = 0; i < a.size(); ++i) {
        const double x = a[i], y = b[i];
        if (!std::isfinite(y) && std::isfinite(x)) non_finite = true;
        const double e = y - x;
        diff2 += e * e;
        ref2 += x * x;
        d.max_abs_error = std::max(d.max_abs_error, std::abs(e));
      }
      d.elements += static_cast<int64_t>(a.size());
    }
  }
  d.relative_error = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  if (non_finite) {
    d.relative_error = std::numeric_limits<double>::quiet_NaN();
    d.max_abs_error = std::numeric_limits<double>::quiet_NaN();
  }
  return d;
}

}  // namespace kfc::runner
