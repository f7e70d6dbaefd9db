// SPDX-License-Identifier: Apache-2.0
// The Van Loan-Pitsianis rearrangement: W (K x N) -> R ((k1*n1) x (k2*n2)), row-major, with
//   R[i1*n1 + j1, i2*n2 + j2] = W[i1*k2 + i2, j1*n2 + j2],
// so that W = sum_t A_t (x) B_t exactly when R = sum_t vec(A_t) vec(B_t)^T (see factorize.h).
// This header includes no ONNX or protobuf headers.
#pragma once

#include <cstdint>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/kron/norms.h"
#include "kfc/kron/shapes.h"

namespace kfc::kron {

// Builds R from W (K x N, row-major) for `shape`; R is (k1*n1) x (k2*n2), row-major, in double.
// InvalidArgument when shape does not divide W.
StatusOr<std::vector<double>> Rearrange(const float* w, int64_t K, int64_t N,
                                        const KronShape& shape);
StatusOr<std::vector<double>> Rearrange(const double* w, int64_t K, int64_t N,
                                        const KronShape& shape);
// The same R in float32 (exact: a permutation of W's elements).
StatusOr<std::vector<float>> RearrangeFloat(const float* w, int64_t K, int64_t N,
                                            const KronShape& shape);
// The same into *r (resized to K*N; its memory is reused when large enough).
// RearrangeFloatTo writes it to r (K*N floats) without any allocation.
Status RearrangeFloatInto(const float* w, int64_t K, int64_t N, const KronShape& shape,
                          std::vector<float>* r);
Status RearrangeFloatTo(const float* w, int64_t K, int64_t N, const KronShape& shape, float* r);
// W's memory turned into R's (same values as RearrangeFloatTo): rows i1*k2 .. i1*k2 + k2 - 1 of W
// and rows i1*n1 .. i1*n1 + n1 - 1 of R are the same k2 * N elements, so each such block is moved
// through a copy of itself (k2 * N floats), not a second matrix. InvalidArgument when shape does
// not divide W; Internal when the block's copy cannot be allocated.
Status RearrangeFloatInPlace(float* w, int64_t K, int64_t N, const KronShape& shape);
// Builds R for `shape` into r (K*N floats) from W's rows handed over k2 at a time, in order (the
// rows i1*k2 .. i1*k2 + k2 - 1 become R's rows i1*n1 .. i1*n1 + n1 - 1), summing ||W||_F^2 on the
// way with the bits of CheckedFrobeniusNorm (factorize.h): for W read in pieces that stay in cache,
// where a pass over a whole W would cost more than the rearrangement. Construct after
// ValidateDims(K, N, shape) succeeded.
class BlockRearranger {
 public:
  BlockRearranger(int64_t K, int64_t N, const KronShape& shape, float* r);
  // Rows per block: k2.
  int64_t block_rows() const { return shape_.k2; }
  // The next block of k2 rows of W (k2 * N floats, not in r). CheckedFrobeniusNorm's
  // InvalidArgument naming W's first NaN or infinity when the block holds one (R is then
  // incomplete); FailedPrecondition past the last block.
  Status Add(const float* rows);
  // Whether every block was added.
  bool done() const { return next_ == shape_.k1; }
  // ||W||_F of the blocks so far.
  double norm() const;

 private:
  int64_t N_;
  KronShape shape_;
  float* r_;
  int64_t next_ = 0;
  SquareSum squares_;
};

}  // namespace kfc::kron
