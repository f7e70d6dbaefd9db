// SPDX-License-Identifier: Apache-2.0
// Error compensation (docs/compensation.md): fit a layer to the inputs X~ it receives once the
// layers before it are compressed, so that it reproduces the original layer's output on the
// original inputs X:   minimize  E || x~ W_hat + c - x W ||^2   over the calibration rows,
// with x~ and x the same row of X~ and X, and c the bias correction.
//
// Statistics (streamed, row-aligned): the means mu~ and mu, the centered covariances
// C~ = E[(x~-mu~)(x~-mu~)^T] and C = E[(x-mu)(x-mu)^T], and the cross moment
// M = E[(x~-mu~)(x-mu)^T]. With the optimal bias c = mu^T W - mu~^T W_hat, the objective is
//   E(W_hat) = tr(W_hat^T C~ W_hat) - 2 tr(W_hat^T M W) + tr(W^T C W).
// Regularized as calibration is (weighted.h: lambda * mean(diag C~) = rho), with the penalty
// rho ||W_hat - W||_F^2, which pulls W_hat toward W in the directions X~ does not excite (and
// reduces to plain calibration when X~ = X):
//   E(W_hat) + rho ||W_hat - W||^2 = ||L^T (W_hat - W*)||_F^2 + const,
//   C~_reg = C~ + rho I = L L^T,   W* = C~_reg^-1 (M + rho I) W.
// So W_hat is the factorization of W* in the metric C~_reg: kron::FactorizeWeighted with the
// statistics (mu~, C~) (closed form for low-rank shapes, Kronecker-factored whitening then ALS on
// the exact C~_reg for Kronecker shapes). The plain calibrated factors are kept instead when they
// do better on the unregularized objective (with their bias recomputed the same way).
// No ONNX headers.
#pragma once

#include <cstdint>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/kron/factorize.h"
#include "kfc/kron/weighted.h"

namespace kfc::kron {

// lambda for compensation (docs/compensation.md: chosen on validation images).
inline constexpr double kCompensationRegularization = 10.0;

struct CompensationStats {
  int64_t k = 0;
  int64_t count = 0;
  std::vector<double> mean_tilde, mean;         // K each
  std::vector<double> cov_tilde;                // C~, K x K row-major
  std::vector<double> cov;                      // C
  std::vector<double> cross;                    // M = E[(x~ - mu~)(x - mu)^T], row i: x~_i
  double lambda = kCompensationRegularization;  // rho = lambda * mean(diag C~)
};

// Streaming accumulation of row-aligned pairs (x~, x); memory 3 K x K doubles.
class CompensationAccumulator {
 public:
  explicit CompensationAccumulator(int64_t k);
  // Adds `rows` rows of x~ and the same rows of x (row-major, length k each). InvalidArgument on
  // NaN/Inf, naming the row and column and which of the two.
  Status Add(const float* x_tilde, const float* x, int64_t rows);
  // InvalidArgument when fewer than 2 rows were added.
  StatusOr<CompensationStats> Finish() const;
  int64_t count() const { return count_; }

 private:
  int64_t k_;
  int64_t count_ = 0;
  std::vector<double> sum_t_, sum_;      // K
  std::vector<double> stt_, sxx_, stx_;  // sums of x~ x~^T, x x^T (upper), x~ x^T (full)
};

// sqrt(E||x~ W_hat + c - x W||^2 / tr(W^T C W)) for the bias offset c (length N, the correction
// added to the layer's own bias; empty: 0); 0 when tr(W^T C W) == 0.
double CompensationError(const float* w, const std::vector<float>& w_hat,
                         const std::vector<float>& c, int64_t K, int64_t N,
                         const CompensationStats& st);

// The unconstrained optimum W* = C~_reg^-1 (M + rho I) W (K x N).
StatusOr<std::vector<float>> CompensationTarget(const float* w, int64_t K, int64_t N,
                                                const CompensationStats& st);

struct CompensatedFactors {
  KronFactors factors;                 // relative_error: the plain weight error against W
  std::vector<float> bias_correction;  // mu^T W - mu~^T W_hat, length N
  double error = 0.0;                  // CompensationError of the kept factors and bias_correction
  double plain_error = 0.0;  // of `plain` with `plain_bias` (what calibration alone gives)
  bool used_plain = false;   // the plain factors (bias recomputed) did better; kept
  int als_iterations = 0;
};

// Fits W_hat at `shape` and `rank` to W* as above. `plain` and `plain_bias` are the plain
// calibrated factors of W and their bias correction mu^T (W - W_hat).
StatusOr<CompensatedFactors> FactorizeCompensated(const float* w, int64_t K, int64_t N,
                                                  const KronShape& shape, int64_t rank,
                                                  const CompensationStats& st,
                                                  const KronFactors& plain,
                                                  const std::vector<float>& plain_bias);

}  // namespace kfc::kron
