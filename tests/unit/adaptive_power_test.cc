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

// The float32 passes take A^T Q from the one-pass W = A^T Y as W Rc^-1 (Y = Q Rc) and, at a
// guessed stop, the final A^T Q from a double-accumulated W: on the flat spectrum (stops early)
// and the decaying one, the reported error is the dense one to 1e-9, and the errors agree with the
// float64 passes' (the products of their own, unchanged) to well within power_tolerance.
TEST(FusedPowerIterationsTest, AgreeWithTheFloat64PassesAndStayExact) {
  struct Case {
    int64_t m, n;
    std::vector<float> a;
  };
  const Case cases[] = {{640, 1024, GaussianFloats(640, 1024, 7)},
                        {600, 800, DecayingPlusNoise(600, 800, 40, 0.85, 0.3, 33)}};
  for (const Case& c : cases) {
    SvdOptions o32 = Randomized(1e-3, SquaredNorm(c.a)), o64 = o32;
    o32.precision = SvdPrecision::kFloat32;
    o64.precision = SvdPrecision::kFloat64;
    const TruncatedSvd f32 = MustSvd(c.a, c.m, c.n, 8, o32);
    const TruncatedSvd f64 = MustSvd(c.a, c.m, c.n, 8, o64);
    EXPECT_LT(f32.power_iterations, 4);
    const double e32 = DenseRelativeError(c.a, f32), e64 = DenseRelativeError(c.a, f64);
    EXPECT_NEAR(IdentityRelativeError(c.a, f32), e32, 1e-9);
    EXPECT_NEAR(e32, e64, 1e-4 * e64) << c.m << "x" << c.n;
  }
}

// Exactly low rank (rank 3 < the 12 sketch columns, and zero columns): Rc is singular, so every
// iteration falls back to A^T Q from a pass of its own; the planted matrix comes back to float
// rounding, as with the float64 passes, and a zero matrix gives zeros.
TEST(FusedPowerIterationsTest, LowRankYFallsBackToItsOwnPass) {
  const int64_t m = 300, n = 400, k = 3;
  const std::vector<float> g = GaussianFloats(m, k, 51), h = GaussianFloats(k, n, 52);
  std::vector<float> a(static_cast<size_t>(m * n), 0.0f);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; j += 2) {  // odd columns stay zero
      double sum = 0.0;
      for (int64_t t = 0; t < k; ++t) sum += static_cast<double>(g[i * k + t]) * h[t * n + j];
      a[static_cast<size_t>(i * n + j)] = static_cast<float>(sum);
    }
  }
  SvdOptions o = Randomized(1e-3, SquaredNorm(a));
  o.precision = SvdPrecision::kFloat32;
  o.oversampling = 10;
  const TruncatedSvd svd = MustSvd(a, m, n, 2, o);
  SvdOptions o64 = o;
  o64.precision = SvdPrecision::kFloat64;
  const TruncatedSvd ref = MustSvd(a, m, n, 2, o64);
  for (int t = 0; t < 2; ++t) EXPECT_NEAR(svd.s[t], ref.s[t], 1e-6 * ref.s[0]) << t;
  EXPECT_NEAR(DenseRelativeError(a, svd), DenseRelativeError(a, ref), 1e-6);
  const TruncatedSvd rank3 = MustSvd(a, m, n, 3, o);
  EXPECT_LT(DenseRelativeError(a, rank3), 1e-6);
  const std::vector<float> zero(static_cast<size_t>(m * n), 0.0f);
  SvdOptions o_zero = Randomized(0.0, 0.0);
  o_zero.precision = SvdPrecision::kFloat32;
  const TruncatedSvd z = MustSvd(zero, m, n, 2, o_zero);
  for (double s : z.s) EXPECT_EQ(s, 0.0);
}

}  // namespace
}  // namespace kfc::kron
