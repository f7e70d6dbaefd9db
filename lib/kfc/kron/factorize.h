// SPDX-License-Identifier: Apache-2.0
// Nearest sum of Kronecker products (Van Loan-Pitsianis rearrangement + truncated SVD). Shapes
// and their costs: shapes.h; the rearrangement W -> R: rearrange.h.
//
// Conventions (docs/design.md), all matrices row-major:
//   W is K x N and acts as y = x W on input rows x of length K.
//   W_hat = sum_{t<r} A_t (x) B_t,  A_t: k1 x n1,  B_t: k2 x n2,  K = k1*k2,  N = n1*n2,
//   W[i1*k2 + i2, j1*n2 + j2] = sum_t A_t[i1, j1] * B_t[i2, j2].
//   Rearranged R (k1*n1 x k2*n2): R[i1*n1 + j1, i2*n2 + j2] = W[i1*k2 + i2, j1*n2 + j2].
//   R = U S V^T;  A_t = reshape(sqrt(s_t) U[:, t], k1 x n1),  B_t = reshape(sqrt(s_t) V[:, t], k2 x
//   n2).
// This header includes no ONNX or protobuf headers.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/kron/shapes.h"
#include "kfc/kron/truncated_svd.h"

namespace kfc::kron {

// Result of factorizing one weight.
struct KronFactors {
  KronShape shape;
  int64_t rank = 0;
  // a[t*k1*n1 + i1*n1 + j1] = A_t[i1, j1];  b[t*k2*n2 + i2*n2 + j2] = B_t[i2, j2]. Held in double,
  // with the precision of the weight they came from: factors of a float32 W are float32 values
  // (each exactly a float), those of a float64 W full doubles. Callers that store them in a
  // narrower dtype round them first (tensor::RoundToDType) and measure the error again.
  std::vector<double> a;
  std::vector<double> b;
  // Singular values of R in descending order that were computed (`rank` of them on the randomized
  // path; all of them on the exact path).
  std::vector<double> singular_values;
  double frobenius_norm = 0.0;  // ||W||_F, accumulated in double
  // ||W - W_hat||_F / ||W||_F (0 when W == 0), exact, never an estimate. Exact path: sqrt(sum of
  // discarded sigma^2) over the whole spectrum, for either precision of W. Randomized path, float32
  // W: sqrt(||W||^2 - sum of kept s_t^2) when that is at least kIdentityMinRelativeError, which is
  // exact for its factors (an orthogonal projection of R, accumulated in double even when the
  // subspace passes ran in float32) to about 1e-9 of itself; below it, and always for a float64 W,
  // FactorsError of the returned factors (exact to double rounding, about 1e-15 of ||W||). The
  // identity holds for the double-precision triplets; rounding a float32 W's factors to float
  // changes the error by at most about 1e-15 / error there (their rounding is orthogonal to the
  // residual to first order; docs/performance.md).
  double relative_error = 0.0;
  SvdMethod method = SvdMethod::kExact;  // how the triplets were computed
  // Randomized path: the subspace passes ran in float32 (the error is exact either way; see
  // "Mixed precision" in truncated_svd.h). Never for a float64 W.
  bool float32_passes = false;
  // Randomized path: the power iterations run (fewer than svd.power_iterations when the adaptive
  // stop ended them; SvdOptions::power_tolerance). 0 on the exact path.
  int64_t power_iterations = 0;
};

// At or above this relative error, the randomized path reports sqrt(||W||^2 - sum_t s_t^2) /
// ||W||: its rounding (about 1e-13 of ||W||^2, from ||W||^2 and the s_t) moves an error e by about
// 1e-13 / (2 e^2) of itself, under 1e-9 from here on. Below it, the error is measured from the
// factors (FactorsError: rank * K * N multiply-adds in double).
constexpr double kIdentityMinRelativeError = 1e-2;

struct FactorizeOptions {
  // kAuto: exact dgesdd for small rearranged matrices or large ranks, else the randomized range
  // finder (see ChooseSvdMethod). For a float32 W it runs on a float32 R, its subspace passes in
  // float32 unless svd.precision says kFloat64; for a float64 W on a double R, every pass in
  // double (svd.precision is ignored). The seed is fixed, so results are deterministic.
  SvdOptions svd;
  // ||W||_F as CheckedFrobeniusNorm returned it for this W (so W is known finite): Factorize
  // then skips its own pass over W. Unset: Factorize computes and checks it.
  std::optional<double> frobenius_norm;
};

// The functions reading W take it as float32 or as float64 (K x N, row-major); a float64 W is
// read as it is, never rounded to float32.

// Singular values of R for `shape`, descending, without singular vectors (cheaper than Factorize;
// used to compare shapes). Sets *frobenius_norm to ||W||_F. Errors as Factorize.
StatusOr<std::vector<double>> SingularValues(const float* w, int64_t K, int64_t N,
                                             const KronShape& shape, double* frobenius_norm);
StatusOr<std::vector<double>> SingularValues(const double* w, int64_t K, int64_t N,
                                             const KronShape& shape, double* frobenius_norm);

// sqrt(sum_{t >= rank} s_t^2) / frobenius_norm: the exact relative error of the best rank-`rank`
// approximation given the whole spectrum; 0 when frobenius_norm is 0.
double SpectrumError(const std::vector<double>& singular_values, int64_t rank,
                     double frobenius_norm);

// Best rank-`rank` sum of Kronecker products of `shape` for W (K x N, row-major), via the SVD of R.
// `rank` must be in [1, shape.MaxRank()]. InvalidArgument on bad dimensions, shape or rank, or on
// NaN/Inf in W; Internal when LAPACK fails (message carries LAPACK's info). A float64 W is
// rearranged and factorized in double throughout, and its factors are not rounded to float32.
StatusOr<KronFactors> Factorize(const float* w, int64_t K, int64_t N, const KronShape& shape,
                                int64_t rank, const FactorizeOptions& options = {});
StatusOr<KronFactors> Factorize(const double* w, int64_t K, int64_t N, const KronShape& shape,
                                int64_t rank, const FactorizeOptions& options = {});

// Factorize of a float32 W from R already rearranged for `shape` (rearrange.h; K * N floats),
// W known finite and options.frobenius_norm set (InvalidArgument otherwise): the same factors and
// error, to the bit, as Factorize of W, without W in memory (the error, where it is measured from
// the factors, reads R in W's order).
StatusOr<KronFactors> FactorizeRearranged(const float* r, int64_t K, int64_t N,
                                          const KronShape& shape, int64_t rank,
                                          const FactorizeOptions& options);

// ||W||_F of W (K x N, row-major), accumulated in double. InvalidArgument naming the first
// non-finite element: "weight has a NaN at row 3, column 7" (or "an infinity").
StatusOr<double> CheckedFrobeniusNorm(const float* w, int64_t K, int64_t N);
StatusOr<double> CheckedFrobeniusNorm(const double* w, int64_t K, int64_t N);

// Dense W_hat = sum_t A_t (x) B_t as a K x N row-major matrix of T (float or double; for tests and
// references), accumulated in double and rounded to T once. Empty when the sizes of `a` and `b`
// disagree with `shape` and `rank`.
template <typename T = float>
std::vector<T> Reconstruct(const KronFactors& factors);

// ||W - sum_t A_t (x) B_t||_F / ||W||_F for the factors as they are, against W (K x N, row-major,
// K and N those of factors.shape), accumulated in double one row of W_hat at a time; 0 when W is
// 0. Exact where the spectrum no longer is: for factors rounded to a narrower dtype, and for
// errors below about 1e-8, where ||W||^2 - sum_t s_t^2 cancels. Costs rank * K * N
// multiply-adds. Sizes of `a` and `b` that disagree with shape and rank are a programmer error.
double FactorsError(const KronFactors& factors, const float* w);
double FactorsError(const KronFactors& factors, const double* w);

}  // namespace kfc::kron
