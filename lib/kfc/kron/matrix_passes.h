// SPDX-License-Identifier: Apache-2.0
// Building blocks of the randomized SVD and the shape search: products of a big float32 matrix
// with thin blocks, in float32 (sgemm) or with double accumulation, plus the small dense pieces
// (orthonormalization, Gram spectra) in double.
//
// Conventions, all sizes in elements:
//   A is m x n, row-major float32 (element A[i, j] at a[i*n + j]); the same memory is A^T
//   column-major (n x m, leading dimension n), which is how BLAS sees it, without any copy.
//   Thin blocks are column-major double: X is n x l (leading dimension n), Y is m x l (leading
//   dimension m).
// The float32 products round each entry of A X to float (relative error about 2^-24 times the
// square root of the inner dimension); the double ones convert a few rows of A at a time to double
// (exact: every float is a double) and use dgemm, so they are as accurate as a float64 matrix.
// Every function expects dimensions already validated (m, n, l >= 1, within BLAS's int) and
// buffers of the stated sizes. This header includes no ONNX or protobuf headers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kfc/core/status.h"

namespace kfc::kron {

enum class PassPrecision {
  kFloat32,  // sgemm on A itself; X and the result are rounded to float on the way
  kFloat64,  // double accumulation: rows of A converted to double in small chunks, dgemm
};

// y (m x l) = A x, for x n x l.
void MultiplyA(const float* a, int64_t m, int64_t n, const double* x, int64_t l, double* y,
               PassPrecision precision);

// z (n x l) = A^T y, for y m x l.
void MultiplyAt(const float* a, int64_t m, int64_t n, const double* y, int64_t l, double* z,
                PassPrecision precision);

// z = A'^T A' x in float32 (sgemm) with one pass over A, for A' = A (m x n; x and z n x l) or,
// with `transpose`, A' = A^T (x and z m x l): A' is taken a block of rows at a time, each block's
// Y_b = A'_b x followed at once by z += A'_b^T Y_b while the block is still in cache. When
// `gram` is given, it receives the Gram matrix (Y^T Y)[0:g, 0:g] of the first g columns of
// Y = A' x (g x g column-major, upper triangle, accumulated in double): what GramEigenvalues of Y
// would see, without Y ever being whole. Same rounding as MultiplyA then MultiplyAt in float32,
// up to the order of the sums over blocks.
void MultiplyGram(const float* a, int64_t m, int64_t n, bool transpose, const double* x, int64_t l,
                  double* z, int64_t g = 0, std::vector<double>* gram = nullptr);

// y (m x l) = A x and w (n x l) = A^T y, for x n x l, with one pass over A: A is taken a fixed
// block of rows at a time, Y_b = A_b x, then w += A_b^T Y_b while the block is still in cache (the
// kernels of simd_kernels.h; on a CPU without them, MultiplyA in float32 then MultiplyAt). x is
// rounded to float and y is A x accumulated in float; w is A^T y for those float values of y,
// accumulated in float (w_precision kFloat32) or double (kFloat64: as exact as MultiplyAt's
// double pass, for y's values) over at most 8 fixed groups of rows, the groups' partial sums added
// in group order in double: the same bits for any thread count. Unlike MultiplyGram (the shape
// search's), it returns Y whole and w = A^T Y, not the Gram matrix of Y.
void MultiplyAAndAt(const float* a, int64_t m, int64_t n, const double* x, int64_t l, double* y,
                    double* w, PassPrecision w_precision);

// Replaces the rows x l column-major `q` (leading dimension rows, rows >= l) by an orthonormal
// basis of its range (Householder QR: dgeqrf then dorgqr). When `r_factor` is given, it receives
// the triangular factor R (l x l column-major, zeros below the diagonal) with q_before = q R.
// Internal error naming `what` when LAPACK fails.
Status Orthonormalize(int64_t rows, int64_t l, double* q, const std::string& what,
                      std::vector<double>* r_factor = nullptr);

// Eigenvalues of the symmetric d x d column-major `a` (upper triangle read; destroyed), descending,
// clamped at 0. Internal error naming `what` when LAPACK fails.
StatusOr<std::vector<double>> SymmetricEigenvalues(std::vector<double>* a, int64_t d,
                                                   const std::string& what);

// Eigenvalues of Y^T Y (the squared singular values of the rows x l column-major y, leading
// dimension ld), descending, clamped at 0. Internal error naming `what` when LAPACK fails.
StatusOr<std::vector<double>> GramEigenvalues(const double* y, int64_t rows, int64_t l, int64_t ld,
                                              const std::string& what);

// Every squared singular value of A (min(m, n) of them), descending: the eigenvalues of the Gram
// matrix of A's shorter side, accumulated in double (chunks of A converted to double, dsyrk), so
// every energy sum_{t<k} s_t^2 is exact to double rounding. Costs m n min(m, n) flops and
// min(m, n)^2 doubles. Internal naming `what` when LAPACK fails or memory runs out.
StatusOr<std::vector<double>> SquaredSingularValues(const float* a, int64_t m, int64_t n,
                                                    const std::string& what);

// Rayleigh-Ritz data of an orthonormal n x l block V against a symmetric positive semidefinite G
// (n x n, e.g. R^T R), for SchurEigenvalueBounds. In the basis [V, V_perp], G = [[A, B], [B^T,
// C]] with A = V^T G V and B B^T = S = Res^T Res, Res = (I - V V^T) G V. a and s are l x l
// column-major (upper triangles set).
struct RitzBlock {
  int64_t l = 0;
  std::vector<double> a, s;
  double res_norm = 0.0;      // ||Res||_2
  std::vector<double> theta;  // the Ritz values (eigenvalues of A), descending
};

// From v (n x l, orthonormal) and z = G v (n x l), both column-major. Internal error naming
// `what` when LAPACK fails.
StatusOr<RitzBlock> MakeRitzBlock(const double* v, const double* z, int64_t n, int64_t l,
                                  const std::string& what);

// Upper bounds on the top eigenvalues of G, given gamma >= ||C||_2 (Schur complement; Haynsworth
// inertia): for lambda > gamma, G - lambda I has as many positive eigenvalues as A + B (lambda -
// C)^-1 B^T - lambda I, and B (lambda - C)^-1 B^T <= S / (lambda - gamma). So lambda_i(G) <=
// lambda wherever g_i(lambda) = lambda_i(T(lambda)) <= lambda, T(lambda) = A + S / (lambda -
// gamma); g_i decreases, so that holds from its fixed point rho_i on. Unlike Ky Fan's E_k(A) +
// E_k(C) this is second order in B: a near-invariant V gives nearly its Ritz values. `delta` >= 0
// bounds the 2-norm error of the z the block was made from (float32 products), so the true A and S
// lie below A + delta I and S + (2 delta ||Res|| + delta^2) I, which T includes. Returns sums[k] >=
// sum of the k largest eigenvalues of G, k = 0..l: the prefix sums of max(gamma, rho_i), with
// rho_i computed for i <= count and taken as rho_count past it (the bounds descend). Every
// eigenvalue past the l-th is at most gamma. Internal error naming `what` when LAPACK fails.
StatusOr<std::vector<double>> SchurEigenvalueBounds(const RitzBlock& b, int64_t count, double gamma,
                                                    double delta, const std::string& what);

}  // namespace kfc::kron
