// SPDX-License-Identifier: Apache-2.0
// Data-aware (calibrated) factorization: minimize ||X (W - W_hat)||_F over the calibration rows X
// instead of ||W - W_hat||_F (primer, "Going past the paper").
//
// Conventions as in factorize.h: W is K x N row-major (y = x W), a shape is k1 x n1 (x) k2 x n2,
// W_hat = sum_t A_t (x) B_t. The input statistics are the mean mu (K) and the centered covariance
// C = E[(x - mu)(x - mu)^T] (K x K, row-major). With the bias corrected by mu^T (W - W_hat) (so the
// expected output is unchanged), the output error on the calibration rows is exactly
// tr(D^T C D) per row, D = W - W_hat. The data-weighted relative error is
// sqrt(tr(D^T C D) / tr(W^T C W)).
//
// Method, per shape:
//  1. Kronecker-factored whitening: C_reg = C + lambda * mean(diag C) * I (regularization for
//     rank-deficient inputs), C_reg ~= C1 (x) C2 (nearest Kronecker product, C1 k1 x k1, C2 k2 x
//     k2, by power iteration on the rearranged C), Cholesky C1 = L1 L1^T, C2 = L2 L2^T. For the
//     low-rank shapes (k1 = 1 or k2 = 1) this is exact: one factor is C itself.
//  2. Factorize W' = (L1 (x) L2)^T W (kron::Factorize) and map back A_t = L1^-T A'_t,
//     B_t = L2^-T B'_t, since (L1 (x) L2)^T (A (x) B) = (L1^T A) (x) (L2^T B).
//  3. Where the whitening was approximate, alternating least squares on the exact C_reg refines
//     the factors (each half-step solves a linear least-squares problem exactly, so the objective
//     never increases), when the normal equations fit (r*k1 and r*k2 at most kMaxAlsUnknowns).
//  4. Keep whichever of this and the plain weight-only factorization has the smaller data error,
//     so calibration never does worse on the calibration data.
// With Kronecker-factored statistics (InputStats::factored(), for K too large for K x K), step 1
// uses their two factors directly (exact in their metric, so step 3 is skipped), only at their
// split of K, and every data error is in that metric.
// No ONNX headers.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/kron/factorize.h"

namespace kfc::kron {

// lambda, chosen on 2,000 validation images of the Fashion-MNIST training set (README).
inline constexpr double kCalibrationRegularization = 10.0;
inline constexpr int64_t kMaxAlsUnknowns = 3000;

struct InputStats {
  int64_t k = 0;
  int64_t count = 0;               // rows accumulated
  std::vector<double> mean;        // K
  std::vector<double> covariance;  // K x K, centered, row-major (empty when factored)
  // Kronecker-factored statistics, for K too large for a K x K matrix: with each centered row
  // reshaped to X (k1 x k2, row-major), c1 = E[X X^T] (k1 x k1) and c2 = E[X^T X] (k2 x k2). Then
  // C ~= (c1 (x) c2) / tr(C), exact when C is itself a Kronecker product (tr c1 = tr c2 = tr C).
  // Only shapes with this k1 can be whitened with them; every data error is in this metric.
  int64_t kf_k1 = 0, kf_k2 = 0;
  std::vector<double> c1, c2;
  // The regularization lambda of C_reg = C + lambda * mean(diag C) * I.
  double lambda = kCalibrationRegularization;
  // Names these contents for the whitening cache (Whiten): unique per accumulator Finish, kept by
  // copies. 0 (never cached) for statistics built by hand; set it to 0 after changing mean,
  // covariance, c1 or c2 (lambda may change: it is part of the cache key).
  uint64_t id = 0;
  bool factored() const { return kf_k1 > 0; }
};

// Streaming accumulation of rows (double sums, then centered at Finish).
class StatsAccumulator {
 public:
  explicit StatsAccumulator(int64_t k);
  // Adds `rows` rows of length k from `x` (row-major). InvalidArgument on NaN/Inf (with position).
  Status Add(const float* x, int64_t rows);
  // InvalidArgument when fewer than 2 rows were added.
  StatusOr<InputStats> Finish() const;
  int64_t count() const { return count_; }

 private:
  int64_t k_;
  int64_t count_ = 0;
  std::vector<double> sum_;     // K
  std::vector<double> second_;  // K x K, sum of x x^T (upper triangle filled at Finish)
};

// Kronecker-factored accumulation of rows (kf_k1 x kf_k2 reshapes), memory k1^2 + k2^2 + K.
class FactoredStatsAccumulator {
 public:
  FactoredStatsAccumulator(int64_t k1, int64_t k2);
  // As StatsAccumulator::Add.
  Status Add(const float* x, int64_t rows);
  // InvalidArgument when fewer than 2 rows were added.
  StatusOr<InputStats> Finish() const;
  int64_t count() const { return count_; }

 private:
  int64_t k1_, k2_;
  int64_t count_ = 0;
  std::vector<double> sum_;      // K
  std::vector<double> s1_, s2_;  // sums of X X^T and X^T X (upper triangles)
};

// sqrt(tr(D^T C D) / tr(W^T C W)) for D = W - W_hat; 0 when tr(W^T C W) == 0. With factored
// statistics C is their Kronecker-factored estimate.
double DataRelativeError(const float* w, const std::vector<float>& w_hat, int64_t K, int64_t N,
                         const InputStats& stats);

// The whitening factors of one split K = k1 * k2, shared by every shape with that k1 (and the
// K x K one by both low-rank splits).
struct WhiteningFactors {
  std::shared_ptr<const std::vector<double>> l1;  // k1 x k1, lower triangular
  std::shared_ptr<const std::vector<double>> l2;  // k2 x k2, lower triangular
};

// The whitened weight W' = (L1 (x) L2)^T W for `shape`, with its whitening factors.
struct Whitened {
  std::vector<float> w;  // K x N
  std::shared_ptr<const WhiteningFactors> factors;
  bool exact = false;  // C_reg == C1 (x) C2 exactly (low-rank shapes)
  // Rating a shape by W' alone would trust the Kronecker-factored metric. beta estimates the
  // largest eigenvalue of (L1 (x) L2)^-1 C_reg (L1 (x) L2)^-T (30 power iterations; 1 when exact),
  // so for any D: tr(D^T C_reg D) <= beta * ||(L1 (x) L2)^T D||_F^2. energy = tr(W^T C_reg W).
  double beta = 1.0;
  double energy = 0.0;
};
// Everything here but W' depends on W and the split k1 alone, so per thread the whitening of the
// last statistics (id and lambda) is kept: C_reg, per k1 the factors and beta, and the energy of
// the last W. A hit gives the same bits as computing afresh (the same arithmetic, done once);
// statistics with id 0 are never cached. The next statistics replace it (one layer input at a
// time per thread), as does ReleaseWhiteningCache.
StatusOr<Whitened> Whiten(const float* w, int64_t K, int64_t N, const KronShape& shape,
                          const InputStats& stats);
// Frees the calling thread's whitening cache.
void ReleaseWhiteningCache();

struct WeightedFactors {
  KronFactors factors;      // relative_error is the plain weight error of these factors (exact)
  double data_error = 0.0;  // data-weighted relative error of these factors
  double weight_only_data_error = 0.0;  // the same for the plain weight-only factorization
  bool used_weight_only = false;        // calibration did not help: weight-only factors kept
  int als_iterations = 0;
  std::vector<float> bias_correction;  // mu^T (W - W_hat), length N
};

StatusOr<WeightedFactors> FactorizeWeighted(const float* w, int64_t K, int64_t N,
                                            const KronShape& shape, int64_t rank,
                                            const InputStats& stats, int max_als_iterations = 8);

}  // namespace kfc::kron
