// SPDX-License-Identifier: Apache-2.0
// Top-r singular triplets of a dense matrix: exact (LAPACK dgesdd) or randomized (Halko,
// Martinsson and Tropp 2011, "Finding structure with randomness", Algorithm 4.4 + 5.1).
//
// Conventions, all matrices row-major:
//   A is m x n (m = rows, n = cols), element A[i, j] at a[i*n + j].
//   A ~= U_r S_r V_r^T with U_r: m x r, S_r = diag(s_0 >= s_1 >= ... >= s_{r-1} >= 0), V_r: n x r.
// Randomized path, with l = min(r + oversampling, min(m, n)) sketch columns and q power iterations:
//   Omega: n x l Gaussian;  Q = orth(A Omega);  repeat q times: Q = orth(A orth(A^T Q));
//   B = Q^T A (l x n) = U_B S V_B^T exactly;  U = Q U_B;  keep the first r triplets.
// Its cost is (2q + 2) products of A with an n x l or m x l block plus O((m + n) l^2), against
// O(m n min(m, n)) for the exact SVD.
//
// Both paths return the exact singular triplets of an orthogonal projection of A: the returned
// U_r S_r V_r^T equals U_r U_r^T A, so ||A - U_r S_r V_r^T||_F^2 = ||A||_F^2 - sum_t s_t^2 holds
// (up to rounding) for the returned triplets, and each randomized s_t is at most the exact s_t.
//
// Mixed precision (the float overload, randomized path): the 2q + 1 passes that only shape the
// subspace (A Omega, the power iterations) run in float32 (sgemm on A itself); Q stays
// orthonormal in double (QR in double), and the last pass B^T = A^T Q accumulates in double, so
// the identity above, and with it the error accounting, holds to double rounding whatever the
// precision of the earlier passes. Float32 only makes Q a little less good than float64 would:
// its rounding (about 2^-24 sqrt(n) relative per product) perturbs the subspace by that much and
// costs up to about its square in captured energy. That is invisible unless the relative error
// ||A - U_r S_r V_r^T|| / ||A|| is itself small, where SvdPrecision::kFloat64 is there for
// callers that want it (kAuto keeps float32: redoing the sketch in float64 when the error came out
// below kFloat32MinRelativeError cost a third of a -r 8 run on nearly exact layers, and gained
// only below about 1e-6, where the float32 rounding of the stored factors is of the same order;
// docs/performance.md). Factorize measures such small errors directly from the factors.
// This header includes no ONNX or protobuf headers.
#pragma once

#include <cstdint>
#include <vector>

#include "kfc/core/status.h"

namespace kfc::kron {

struct TruncatedSvd {
  int64_t rows = 0;  // m
  int64_t cols = 0;  // n
  int64_t rank = 0;  // r
  // s[t] = s_t, length r, descending.
  std::vector<double> s;
  // U_r, rows x rank, row-major: u[i*rank + t] = U[i, t] (the t-th left singular vector is
  // strided).
  std::vector<double> u;
  // V_r^T, rank x cols, row-major: vt[t*cols + j] = V[j, t] (the t-th right singular vector is
  // contiguous).
  std::vector<double> vt;
  // Exact path: every singular value of A (min(m, n) of them), descending. Empty on the randomized
  // path.
  std::vector<double> spectrum;
  // Randomized path of the float overload: the subspace passes ran in float32.
  bool float32_passes = false;
  // Randomized path: the power iterations run (options.power_iterations, or fewer when the
  // adaptive stop ended them early; see SvdOptions::power_tolerance).
  int64_t power_iterations = 0;
};

enum class SvdMethod {
  kAuto,        // ChooseSvdMethod's rule
  kExact,       // LAPACK dgesdd of the whole matrix, then truncation
  kRandomized,  // randomized range finder + dgesdd of the small projected matrix
};

// Precision of the randomized path's subspace passes over a float32 matrix (the float overload of
// ComputeTruncatedSvd; the double overload always works in double). The last pass and everything
// after it are double in every case.
enum class SvdPrecision {
  kAuto,     // float32 (the same as kFloat32)
  kFloat32,  // float32 whatever the result
  kFloat64,  // double accumulation throughout
};

// Below this relative error ||A - A_r||_F / ||A||_F, float32 subspace passes start to cost
// measurable accuracy (the shape search switches to float64 passes for targets below it). Float32
// rounding puts a floor of about 1e-7 (relative to ||A||) under the error the subspace can reach,
// so it inflates an error e by about (1e-7 / e)^2 / 2. Measured on 2048 x 2048 and 512 x 8192
// matrices of exact rank 40 plus noise, at rank 40: float32 and float64 errors agreed to 6e-9
// (relative) at e = 1e-3, 7e-7 at 1e-4, 8e-5 at 1e-5 and 4e-3 at 1e-6. At 1e-3 and above the loss
// is far below the randomized method's own gap to optimal (up to about 1e-3 of the error).
constexpr double kFloat32MinRelativeError = 1e-3;

// The adaptive stop (SvdOptions::power_tolerance) acts only on errors from here up: its estimates
// come from float32 passes, whose rounding (about 1e-6 of the captured energy) moves an estimate e
// by about 1e-6 / (2 e) of ||A||-relative error, 5e-6 at 0.1: well below the 1e-4 of e that
// power_tolerance 1e-3 compares with. Nearly exact layers always run every iteration.
constexpr double kAdaptiveMinRelativeError = 0.1;

struct SvdOptions {
  SvdMethod method = SvdMethod::kAuto;
  // p: extra sketch columns beyond the rank (randomized path and the kAuto rule); >= 0.
  int64_t oversampling = 10;
  // q: power (subspace) iterations, each with re-orthonormalization; >= 0. Sharpens the sketch
  // when the spectrum decays slowly.
  int64_t power_iterations = 4;
  // Adaptive stop of the power iterations, on when power_tolerance > 0 and squared_norm
  // (||A||_F^2) > 0; randomized path only. After power iteration k (of q), the relative error the
  // sketch would give, e_k = sqrt(||A||^2 - sum_{t<r} s_t^2) / ||A|| with s_t the singular values
  // of A Z (Z the orthonormal co-sketch), is compared with e_{k-1/2}, the same from Q^T A one half
  // step earlier: both come free from the passes (an l x l Gram matrix each). The iterations stop
  // when 2 (q - k) (e_{k-1/2} - e_k) <= power_tolerance * e_k and e_k >= kAdaptiveMinRelativeError:
  // each half step gains no more than the one before (so the 2 (q - k) half steps left would have
  // lowered the error by at most that), so the final error is within power_tolerance of itself of
  // what all q iterations give. Measured on random and trained weights: the gains per half step
  // do decrease (docs/performance.md). The final pass and the error accounting are unchanged.
  double power_tolerance = 1e-3;
  double squared_norm = 0.0;
  // Seed of the Gaussian test matrix (splitmix64 + Box-Muller, implemented here, so the stream
  // does not depend on the standard library).
  uint64_t seed = 0x6b6663;
  SvdPrecision precision = SvdPrecision::kAuto;  // float overload only
};

// The adaptive stop's test (SvdOptions::power_tolerance) after a power iteration with
// `remaining` iterations left: error >= kAdaptiveMinRelativeError and
// 2 * remaining * (half_error - error) <= tolerance * error.
bool AdaptivePowerStop(double half_error, double error, int64_t remaining, double tolerance);

// Fills `out` with standard normal samples from `seed`: splitmix64 + Box-Muller, pairwise, in
// order. The stream is fixed by this code, not by the standard library.
void FillGaussian(uint64_t seed, std::vector<double>* out);

// The method ComputeTruncatedSvd will use: options.method unless it is kAuto; for kAuto, kExact
// when min(m, n) <= 512 or 4 * (rank + oversampling) >= min(m, n) (the sketch would not be much
// smaller than the matrix), else kRandomized. Does not validate its arguments.
SvdMethod ChooseSvdMethod(int64_t m, int64_t n, int64_t rank, const SvdOptions& options);

// Top-`rank` singular triplets of the m x n row-major matrix `a` (read only, not modified).
//
// Singular vectors are defined up to a joint sign per triplet: each U[:, t] is flipped so its
// largest-magnitude entry is positive (ties to the lowest row), as Factorize does, so both methods
// agree in sign wherever the singular value is well separated.
//
// Deterministic: the same input, options, binary and BLAS thread count give the same bits (the
// randomized path's test matrix comes from options.seed only; its first columns do not depend on
// rank or oversampling).
//
// Errors (never aborts on bad data):
//   InvalidArgument: a == nullptr; m or n < 1; m * n overflows; rank < 1 or rank > min(m, n);
//     oversampling or power_iterations < 0; a NaN or infinity in `a` (the message names the first);
//     dimensions beyond the 32-bit integers of LAPACK/BLAS (for the exact path: m * n or the
//     dgesdd workspace; for the randomized path: m, n, or max(m, n) * l).
//   Internal: a LAPACK routine failed (the message carries its name and info) or memory ran out.
StatusOr<TruncatedSvd> ComputeTruncatedSvd(const double* a, int64_t m, int64_t n, int64_t rank,
                                           const SvdOptions& options = {});

// The same for a float32 matrix, without a double copy of it on the randomized path (see "Mixed
// precision" above; options.precision chooses). The exact path converts `a` to double first
// (m * n doubles). Same errors as the double overload.
StatusOr<TruncatedSvd> ComputeTruncatedSvd(const float* a, int64_t m, int64_t n, int64_t rank,
                                           const SvdOptions& options = {});

// The same for a matrix the caller has already checked to be finite (no scan for NaN and
// infinity; Factorize checks W while it computes ||W||). Same errors otherwise.
StatusOr<TruncatedSvd> ComputeTruncatedSvdOfFinite(const float* a, int64_t m, int64_t n,
                                                   int64_t rank, const SvdOptions& options = {});

// The exact path on a matrix it may destroy: dgesdd of the m x n row-major `a` in place (no copy),
// the top-`rank` triplets with ComputeTruncatedSvd's sign convention, and `spectrum` filled.
// Validates nothing but LAPACK's integer limits (the caller has checked dimensions, rank and
// finiteness); Internal when LAPACK fails or memory runs out.
StatusOr<TruncatedSvd> ExactSvdInPlace(double* a, int64_t m, int64_t n, int64_t rank);

}  // namespace kfc::kron
