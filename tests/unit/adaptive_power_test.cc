// SPDX-License-Identifier: Apache-2.0
// Unit tests for the adaptive stop of the randomized SVD's power iterations
// (SvdOptions::power_tolerance): the rule itself, and on float matrices against a dense double
// reference: the error stays within the tolerance of the fixed iterations' and stays exact.
#include <cblas.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kfc/kron/truncated_svd.h"

namespace kfc::kron {
namespace {

// splitmix64 + Box-Muller: the same matrices on every platform.
std::vector<float> GaussianFloats(int64_t rows, int64_t cols, uint64_t seed) {
  uint64_t state = seed;
  auto next = [&state] {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  std::vector<float> a(static_cast<size_t>(rows * cols));
  for (float& x : a) {
    const double u1 = (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = static_cast<double>(next() >> 11) * 0x1.0p-53;
    x = static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
  return a;
}

// A (rows x cols) = sum_t decay^t g_t h_t^T + noise * G: a decaying spectrum over a floor.
std::vector<float> DecayingPlusNoise(int64_t rows, int64_t cols, int64_t k, double decay,
                                     double noise, uint64_t seed) {
  const std::vector<float> g = GaussianFloats(rows, k, seed + 1),
                           h = GaussianFloats(k, cols, seed + 2);
  std::vector<float> a = GaussianFloats(rows, cols, seed + 3);
  for (float& x : a) x = static_cast<float>(noise * x);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t t = 0; t < k; ++t) {
      const double c = std::pow(decay, static_cast<double>(t)) * g[static_cast<size_t>(i * k + t)];
      for (int64_t j = 0; j < cols; ++j) {
        a[static_cast<size_t>(i * cols + j)] +=
            static_cast<float>(c * h[static_cast<size_t>(t * cols + j)]);
      }
    }
  }
  return a;
}

double SquaredNorm(const std::vector<float>& a) {
  double sum = 0.0;
  for (float x : a) sum += static_cast<double>(x) * x;
  return sum;
}

// ||A - U_r S_r V_r^T||_F / ||A||_F, densely in double.
double DenseRelativeError(const std::vector<float>& a, const TruncatedSvd& svd) {
  const int64_t m = svd.rows, n = svd.cols, r = svd.rank;
  std::vector<double> us(svd.u), residual(a.begin(), a.end());
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t t = 0; t < r; ++t) us[static_cast<size_t>(i * r + t)] *= svd.s[t];
  }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(r), -1.0, us.data(), static_cast<int>(r), svd.vt.data(),
              static_cast<int>(n), 1.0, residual.data(), static_cast<int>(n));
  double sum = 0.0;
  for (double x : residual) sum += x * x;
  return std::sqrt(sum / SquaredNorm(a));
}

// sqrt(||A||^2 - sum_t s_t^2) / ||A||: what Factorize reports above kIdentityMinRelativeError.
double IdentityRelativeError(const std::vector<float>& a, const TruncatedSvd& svd) {
  double kept = 0.0;
  for (double s : svd.s) kept += s * s;
  const double total = SquaredNorm(a);
  return std::sqrt(std::max(0.0, total - kept) / total);
}

TruncatedSvd MustSvd(const std::vector<float>& a, int64_t m, int64_t n, int64_t rank,
                     const SvdOptions& options) {
  StatusOr<TruncatedSvd> svd = ComputeTruncatedSvd(a.data(), m, n, rank, options);
  EXPECT_TRUE(svd.ok()) << svd.status().message();
  if (!svd.ok()) return TruncatedSvd{};
  return std::move(svd).value();
}

SvdOptions Randomized(double power_tolerance, double squared_norm) {
  SvdOptions o;
  o.method = SvdMethod::kRandomized;
  o.power_tolerance = power_tolerance;
  o.squared_norm = squared_norm;
  return o;
}

bool SameBits(const std::vector<double>& x, const std::vector<double>& y) {
  return x.size() == y.size() &&
         (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0);
}

TEST(AdaptivePowerTest, StopRule) {
  // 2 * remaining * gain against tolerance * error.
  EXPECT_TRUE(AdaptivePowerStop(0.9904, 0.99, 1, 1e-3));   // 8e-4 <= 9.9e-4
  EXPECT_FALSE(AdaptivePowerStop(0.9904, 0.99, 2, 1e-3));  // 1.6e-3 > 9.9e-4
  EXPECT_TRUE(AdaptivePowerStop(0.5, 0.5, 3, 1e-3));       // no gain
  EXPECT_TRUE(AdaptivePowerStop(0.49, 0.5, 3, 1e-3));      // a negative gain (rounding): converged
  // Below kAdaptiveMinRelativeError every iteration runs, converged or not.
  EXPECT_FALSE(AdaptivePowerStop(kAdaptiveMinRelativeError * 0.99, kAdaptiveMinRelativeError * 0.99,
                                 1, 1e-3));
  EXPECT_TRUE(AdaptivePowerStop(kAdaptiveMinRelativeError, kAdaptiveMinRelativeError, 1, 1e-3));
}

// A flat (Gaussian) spectrum, the slowest case for power iterations and the scale benchmark's:
// the adaptive stop saves iterations, its error is within power_tolerance of the fixed
// iterations' and the identity the error accounting uses still holds.
TEST(AdaptivePowerTest, FlatSpectrumStopsEarlyWithinTheTolerance) {
  const int64_t m = 640, n = 1024, rank = 8;
  const std::vector<float> a = GaussianFloats(m, n, 7);
  const double total = SquaredNorm(a);
  const TruncatedSvd fixed = MustSvd(a, m, n, rank, Randomized(0.0, total));
  const TruncatedSvd adaptive = MustSvd(a, m, n, rank, Randomized(1e-3, total));
  EXPECT_EQ(fixed.power_iterations, 4);
  EXPECT_GE(adaptive.power_iterations, 1);
  EXPECT_LT(adaptive.power_iterations, 4);
  const double e_fixed = DenseRelativeError(a, fixed), e_adaptive = DenseRelativeError(a, adaptive);
  EXPECT_GT(e_fixed, 0.5);
  EXPECT_LE(e_adaptive, e_fixed * (1.0 + 1e-3));
  EXPECT_GE(e_adaptive, e_fixed * (1.0 - 1e-9));  // fewer iterations never do better here
  EXPECT_NEAR(IdentityRelativeError(a, adaptive), e_adaptive, 1e-9);
}

// A nearly exact matrix (error far below kAdaptiveMinRelativeError) runs every iteration and
// gives the bits of the fixed iterations; so does a zero tolerance, and no squared_norm.
TEST(AdaptivePowerTest, NearlyExactMatricesAndZeroToleranceRunEveryIteration) {
  const int64_t m = 600, n = 700, rank = 8;
  const std::vector<float> a = DecayingPlusNoise(m, n, rank, 0.8, 1e-4, 21);
  const double total = SquaredNorm(a);
  const TruncatedSvd fixed = MustSvd(a, m, n, rank, Randomized(0.0, total));
  const TruncatedSvd adaptive = MustSvd(a, m, n, rank, Randomized(1e-3, total));
  const TruncatedSvd no_norm = MustSvd(a, m, n, rank, Randomized(1e-3, 0.0));
  EXPECT_LT(DenseRelativeError(a, fixed), 1e-2);
  EXPECT_EQ(adaptive.power_iterations, 4);
  EXPECT_EQ(no_norm.power_iterations, 4);
  EXPECT_TRUE(SameBits(adaptive.s, fixed.s));
  EXPECT_TRUE(SameBits(adaptive.u, fixed.u));
  EXPECT_TRUE(SameBits(no_norm.vt, fixed.vt));
}

// A decaying spectrum over a floor at a moderate error (trained weights look like this): the stop
// comes early and the error stays within the tolerance of the fixed iterations'.
TEST(AdaptivePowerTest, DecayingSpectrumConvergesInFewIterations) {
  const int64_t m = 600, n = 800, rank = 8;
  const std::vector<float> a = DecayingPlusNoise(m, n, 40, 0.85, 0.3, 33);
  const double total = SquaredNorm(a);
  const TruncatedSvd fixed = MustSvd(a, m, n, rank, Randomized(0.0, total));
  const TruncatedSvd adaptive = MustSvd(a, m, n, rank, Randomized(1e-3, total));
  const double e_fixed = DenseRelativeError(a, fixed), e_adaptive = DenseRelativeError(a, adaptive);
  EXPECT_GT(e_fixed, kAdaptiveMinRelativeError);
  EXPECT_LT(adaptive.power_iterations, 4);
  EXPECT_LE(e_adaptive, e_fixed * (1.0 + 1e-3));
  EXPECT_NEAR(IdentityRelativeError(a, adaptive), e_adaptive, 1e-9);
}

}  // namespace
}  // namespace kfc::kron
