// SPDX-License-Identifier: Apache-2.0
// Unit tests for kfc/kron/truncated_svd: exact and randomized top-r singular triplets.
#include "kfc/kron/truncated_svd.h"

#include <cblas.h>
#include <gtest/gtest.h>
#include <lapacke.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace kfc::kron {
namespace {

// Test data comes from splitmix64 + Box-Muller so the matrices are the same on every platform
// (std::normal_distribution's output is implementation-defined).
class TestRng {
 public:
  explicit TestRng(uint64_t seed) : state_(seed) {}
  double Gaussian() {
    const double u1 = (static_cast<double>(Next() >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = static_cast<double>(Next() >> 11) * 0x1.0p-53;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t state_;
};

using Matrix = std::vector<double>;  // row-major

Matrix GaussianMatrix(int64_t rows, int64_t cols, uint64_t seed) {
  TestRng rng(seed);
  Matrix g(static_cast<size_t>(rows * cols));
  for (double& x : g) x = rng.Gaussian();
  return g;
}

// rows x k with orthonormal columns (row-major), from the QR of a Gaussian matrix.
Matrix OrthonormalColumns(int64_t rows, int64_t k, uint64_t seed) {
  Matrix q = GaussianMatrix(rows, k, seed);
  std::vector<double> tau(static_cast<size_t>(k));
  EXPECT_EQ(
      LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, static_cast<lapack_int>(rows), static_cast<lapack_int>(k),
                     q.data(), static_cast<lapack_int>(k), tau.data()),
      0);
  EXPECT_EQ(
      LAPACKE_dorgqr(LAPACK_ROW_MAJOR, static_cast<lapack_int>(rows), static_cast<lapack_int>(k),
                     static_cast<lapack_int>(k), q.data(), static_cast<lapack_int>(k), tau.data()),
      0);
  return q;
}

// A = U_k diag(sigma) V_k^T + noise * G, sigma_i = scale * decay^i, U_k and V_k orthonormal.
Matrix LowRankPlusNoise(int64_t m, int64_t n, int64_t k, double scale, double decay, double noise,
                        uint64_t seed) {
  const Matrix u = OrthonormalColumns(m, k, seed * 3 + 1);
  const Matrix v = OrthonormalColumns(n, k, seed * 3 + 2);
  Matrix us(u);
  for (int64_t i = 0; i < m; ++i) {
    double sigma = scale;
    for (int64_t t = 0; t < k; ++t, sigma *= decay) us[static_cast<size_t>(i * k + t)] *= sigma;
  }
  Matrix a = GaussianMatrix(m, n, seed * 3 + 3);
  // a = noise * G + (U_k diag(sigma)) V_k^T.
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0, us.data(), static_cast<int>(k), v.data(),
              static_cast<int>(k), noise, a.data(), static_cast<int>(n));
  return a;
}

// Every singular value of A, descending, straight from LAPACK (independent of the code under test).
std::vector<double> FullSpectrum(const Matrix& a, int64_t m, int64_t n) {
  Matrix copy(a);
  std::vector<double> s(static_cast<size_t>(std::min(m, n)));
  // Row-major A is column-major A^T, which has the same singular values.
  EXPECT_EQ(
      LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', static_cast<lapack_int>(n), static_cast<lapack_int>(m),
                     copy.data(), static_cast<lapack_int>(n), s.data(), nullptr, 1, nullptr, 1),
      0);
  return s;
}

// sqrt(sum_{t >= rank} s_t^2): the least possible Frobenius error at `rank` (Eckart-Young).
double OptimalError(const std::vector<double>& spectrum, int64_t rank) {
  double sum = 0.0;
  for (size_t t = spectrum.size(); t-- > static_cast<size_t>(rank);)
    sum += spectrum[t] * spectrum[t];
  return std::sqrt(sum);
}

double FrobeniusNorm(const Matrix& a) {
  double sum = 0.0;
  for (double x : a) sum += x * x;
  return std::sqrt(sum);
}

// ||A - U_r S_r V_r^T||_F computed densely.
double ReconstructionError(const Matrix& a, const TruncatedSvd& svd) {
  const int64_t m = svd.rows, n = svd.cols, r = svd.rank;
  Matrix us(svd.u);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t t = 0; t < r; ++t) us[static_cast<size_t>(i * r + t)] *= svd.s[t];
  }
  Matrix residual(a);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(r), -1.0, us.data(), static_cast<int>(r), svd.vt.data(),
              static_cast<int>(n), 1.0, residual.data(), static_cast<int>(n));
  return FrobeniusNorm(residual);
}

// max |X^T X - I| for X = U_r (columns) or X = V_r (rows of vt).
double OrthonormalityError(const TruncatedSvd& svd, bool left) {
  const int64_t r = svd.rank, len = left ? svd.rows : svd.cols;
  double worst = 0.0;
  for (int64_t p = 0; p < r; ++p) {
    for (int64_t q = 0; q < r; ++q) {
      double dot = 0.0;
      for (int64_t i = 0; i < len; ++i) {
        dot += left ? svd.u[static_cast<size_t>(i * r + p)] * svd.u[static_cast<size_t>(i * r + q)]
                    : svd.vt[static_cast<size_t>(p * len + i)] *
                          svd.vt[static_cast<size_t>(q * len + i)];
      }
      worst = std::max(worst, std::fabs(dot - (p == q ? 1.0 : 0.0)));
    }
  }
  return worst;
}

bool SameBits(const std::vector<double>& x, const std::vector<double>& y) {
  return x.size() == y.size() &&
         (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0);
}

SvdOptions WithMethod(SvdMethod method) {
  SvdOptions options;
  options.method = method;
  return options;
}

TruncatedSvd MustSvd(const Matrix& a, int64_t m, int64_t n, int64_t rank,
                     const SvdOptions& options) {
  StatusOr<TruncatedSvd> svd = ComputeTruncatedSvd(a.data(), m, n, rank, options);
  EXPECT_TRUE(svd.ok()) << svd.status().message();
  if (!svd.ok()) return TruncatedSvd{};
  EXPECT_EQ(svd->rows, m);
  EXPECT_EQ(svd->cols, n);
  EXPECT_EQ(svd->rank, rank);
  EXPECT_EQ(svd->s.size(), static_cast<size_t>(rank));
  EXPECT_EQ(svd->u.size(), static_cast<size_t>(m * rank));
  EXPECT_EQ(svd->vt.size(), static_cast<size_t>(rank * n));
  return std::move(svd).value();
}

// The 600 x 500 (tall) and 300 x 700 (wide) test matrices: 80 geometrically decaying singular
// values (10 * 0.9^i) over a noise floor near 1e-3 * (sqrt(m) + sqrt(n)).
struct Case {
  int64_t m, n;
  uint64_t seed;
};
constexpr Case kCases[] = {{600, 500, 11}, {300, 700, 12}};
Matrix CaseMatrix(const Case& c) { return LowRankPlusNoise(c.m, c.n, 80, 10.0, 0.9, 1e-3, c.seed); }

TEST(TruncatedSvdTest, ExactPathMatchesPlantedSpectrumAndVectors) {
  // No noise: the singular values are exactly 5 * 0.7^i and the vectors are U_k, V_k up to sign.
  const int64_t m = 120, n = 90, k = 12, r = 6;
  const Matrix a = LowRankPlusNoise(m, n, k, 5.0, 0.7, 0.0, 5);
  const Matrix u = OrthonormalColumns(m, k, 5 * 3 + 1);
  const TruncatedSvd svd = MustSvd(a, m, n, r, WithMethod(SvdMethod::kExact));
  double sigma = 5.0;
  for (int64_t t = 0; t < r; ++t, sigma *= 0.7) {
    EXPECT_NEAR(svd.s[t], sigma, 1e-12 * 5.0) << "t=" << t;
    double dot = 0.0;  // |<u_t, planted u_t>| must be 1
    for (int64_t i = 0; i < m; ++i) dot += svd.u[i * r + t] * u[i * k + t];
    EXPECT_NEAR(std::fabs(dot), 1.0, 1e-10) << "t=" << t;
  }
}

TEST(TruncatedSvdRandomizedTest, SingularValuesMatchExactToOneInAThousand) {
  for (const Case& c : kCases) {
    const Matrix a = CaseMatrix(c);
    const std::vector<double> spectrum = FullSpectrum(a, c.m, c.n);
    for (int64_t r : {1, 4, 16}) {
      SCOPED_TRACE(std::to_string(c.m) + "x" + std::to_string(c.n) + " rank " + std::to_string(r));
      const TruncatedSvd exact = MustSvd(a, c.m, c.n, r, WithMethod(SvdMethod::kExact));
      const TruncatedSvd rand = MustSvd(a, c.m, c.n, r, WithMethod(SvdMethod::kRandomized));
      for (int64_t t = 0; t < r; ++t) {
        EXPECT_NEAR(exact.s[t], spectrum[t], 1e-12 * spectrum[0]) << "t=" << t;
        EXPECT_LE(std::fabs(rand.s[t] - exact.s[t]), 1e-3 * exact.s[t]) << "t=" << t;
        // The singular values of the projection Q^T A never exceed those of A.
        EXPECT_LE(rand.s[t], exact.s[t] * (1.0 + 1e-12)) << "t=" << t;
        if (t > 0) {
          EXPECT_LE(rand.s[t], rand.s[t - 1]);
        }
      }
    }
  }
}

TEST(TruncatedSvdRandomizedTest, ReconstructionErrorWithinOnePercentOfOptimal) {
  for (const Case& c : kCases) {
    const Matrix a = CaseMatrix(c);
    const std::vector<double> spectrum = FullSpectrum(a, c.m, c.n);
    const double norm = FrobeniusNorm(a);
    for (int64_t r : {1, 4, 16}) {
      SCOPED_TRACE(std::to_string(c.m) + "x" + std::to_string(c.n) + " rank " + std::to_string(r));
      const double optimal = OptimalError(spectrum, r);
      const TruncatedSvd exact = MustSvd(a, c.m, c.n, r, WithMethod(SvdMethod::kExact));
      const TruncatedSvd rand = MustSvd(a, c.m, c.n, r, WithMethod(SvdMethod::kRandomized));
      EXPECT_NEAR(ReconstructionError(a, exact), optimal, 1e-9 * norm);
      const double rand_error = ReconstructionError(a, rand);
      EXPECT_LE(rand_error, 1.01 * optimal);
      EXPECT_GE(rand_error, optimal * (1.0 - 1e-9));
      // Both results are projections of A, so the header's identity gives the same error.
      double kept = 0.0;
      for (double s : rand.s) kept += s * s;
      EXPECT_NEAR(std::sqrt(std::max(0.0, norm * norm - kept)), rand_error, 1e-6 * norm);
    }
  }
}

// The two checks above can fail: with no oversampling and no power iterations, the sketch of a
// slowly decaying spectrum misses both tolerances.
TEST(TruncatedSvdRandomizedTest, TolerancesRejectAWeakSketch) {
  const Case& c = kCases[0];
  const Matrix a = CaseMatrix(c);
  const std::vector<double> spectrum = FullSpectrum(a, c.m, c.n);
  const int64_t r = 16;
  SvdOptions weak = WithMethod(SvdMethod::kRandomized);
  weak.oversampling = 0;
  weak.power_iterations = 0;
  const TruncatedSvd rand = MustSvd(a, c.m, c.n, r, weak);
  double worst = 0.0;
  for (int64_t t = 0; t < r; ++t) worst = std::max(worst, 1.0 - rand.s[t] / spectrum[t]);
  EXPECT_GT(worst, 1e-3);
  EXPECT_GT(ReconstructionError(a, rand), 1.01 * OptimalError(spectrum, r));
}

// Singular values spanning ten orders of magnitude: without re-orthonormalization inside the power
// iterations, (A A^T)^q A Omega collapses onto the top directions and the small triplets are lost
// to rounding (the only test here that notices).
TEST(TruncatedSvdRandomizedTest, SteepSpectrumKeepsSmallTriplets) {
  const int64_t m = 400, n = 300, k = 20, r = 16;
  const Matrix a = LowRankPlusNoise(m, n, k, 1.0, 0.3, 0.0, 61);  // s_t = 0.3^t
  const TruncatedSvd rand = MustSvd(a, m, n, r, WithMethod(SvdMethod::kRandomized));
  double sigma = 1.0;
  for (int64_t t = 0; t < r; ++t, sigma *= 0.3) {
    EXPECT_LE(std::fabs(rand.s[t] - sigma), 1e-3 * sigma) << "t=" << t;
  }
  EXPECT_LT(OrthonormalityError(rand, /*left=*/true), 1e-12);
  EXPECT_LT(OrthonormalityError(rand, /*left=*/false), 1e-12);
}

TEST(TruncatedSvdTest, TripletsAreOrthonormalAndConsistent) {
  const Case& c = kCases[0];
  const Matrix a = CaseMatrix(c);
  const int64_t m = c.m, n = c.n, r = 8;
  for (SvdMethod method : {SvdMethod::kExact, SvdMethod::kRandomized}) {
    SCOPED_TRACE(method == SvdMethod::kExact ? "exact" : "randomized");
    const TruncatedSvd svd = MustSvd(a, m, n, r, WithMethod(method));
    EXPECT_LT(OrthonormalityError(svd, /*left=*/true), 1e-12);
    EXPECT_LT(OrthonormalityError(svd, /*left=*/false), 1e-12);
    // A^T u_t = s_t v_t holds exactly on both paths (U_r^T A = S_r V_r^T).
    double worst = 0.0;
    for (int64_t t = 0; t < r; ++t) {
      for (int64_t j = 0; j < n; ++j) {
        double dot = 0.0;
        for (int64_t i = 0; i < m; ++i) dot += a[i * n + j] * svd.u[i * r + t];
        worst = std::max(worst, std::fabs(dot - svd.s[t] * svd.vt[t * n + j]));
      }
    }
    EXPECT_LT(worst, 1e-12 * svd.s[0]);
  }
}

TEST(TruncatedSvdTest, RecoversPlantedLowRankMatrixExactly) {
  // Sum of 5 Gaussian outer products: rank exactly 5.
  const int64_t m = 300, n = 200, k = 5;
  const Matrix x = GaussianMatrix(m, k, 21), y = GaussianMatrix(k, n, 22);
  Matrix a(static_cast<size_t>(m * n), 0.0);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0, x.data(), k, y.data(), n,
              0.0, a.data(), n);
  const double norm = FrobeniusNorm(a);
  SvdOptions bare = WithMethod(SvdMethod::kRandomized);
  bare.oversampling = 0;
  bare.power_iterations = 0;
  for (const SvdOptions& options :
       {WithMethod(SvdMethod::kExact), WithMethod(SvdMethod::kRandomized), bare}) {
    SCOPED_TRACE("method " + std::to_string(static_cast<int>(options.method)) + ", oversampling " +
                 std::to_string(options.oversampling));
    const TruncatedSvd svd = MustSvd(a, m, n, k, options);
    EXPECT_LT(ReconstructionError(a, svd), 1e-12 * norm);
    const TruncatedSvd more = MustSvd(a, m, n, k + 1, options);
    EXPECT_LT(more.s[k], 1e-12 * more.s[0]);
  }
}

TEST(TruncatedSvdTest, SameInputGivesSameBits) {
  const Case& c = kCases[0];
  const Matrix a = CaseMatrix(c);
  for (SvdMethod method : {SvdMethod::kExact, SvdMethod::kRandomized}) {
    SCOPED_TRACE(method == SvdMethod::kExact ? "exact" : "randomized");
    const TruncatedSvd first = MustSvd(a, c.m, c.n, 8, WithMethod(method));
    const TruncatedSvd second = MustSvd(a, c.m, c.n, 8, WithMethod(method));
    EXPECT_TRUE(SameBits(first.s, second.s));
    EXPECT_TRUE(SameBits(first.u, second.u));
    EXPECT_TRUE(SameBits(first.vt, second.vt));
  }
  // The seed matters (a different sketch gives different low bits) but not the answer.
  SvdOptions reseeded = WithMethod(SvdMethod::kRandomized);
  reseeded.seed = 12345;
  const TruncatedSvd base = MustSvd(a, c.m, c.n, 8, WithMethod(SvdMethod::kRandomized));
  const TruncatedSvd other = MustSvd(a, c.m, c.n, 8, reseeded);
  EXPECT_FALSE(SameBits(base.u, other.u));
  for (int64_t t = 0; t < 8; ++t) EXPECT_NEAR(base.s[t], other.s[t], 1e-9 * base.s[0]);
}

TEST(TruncatedSvdTest, SignsFollowTheConventionAndAgreeBetweenMethods) {
  const Case& c = kCases[0];
  const Matrix a = CaseMatrix(c);
  const int64_t m = c.m, n = c.n, r = 8;
  const TruncatedSvd exact = MustSvd(a, m, n, r, WithMethod(SvdMethod::kExact));
  const TruncatedSvd rand = MustSvd(a, m, n, r, WithMethod(SvdMethod::kRandomized));
  for (const TruncatedSvd* svd : {&exact, &rand}) {
    for (int64_t t = 0; t < r; ++t) {
      int64_t arg_max = 0;
      for (int64_t i = 1; i < m; ++i) {
        if (std::fabs(svd->u[i * r + t]) > std::fabs(svd->u[arg_max * r + t])) arg_max = i;
      }
      EXPECT_GT(svd->u[arg_max * r + t], 0.0) << "t=" << t;
    }
  }
  double worst_u = 0.0, worst_v = 0.0;
  for (size_t i = 0; i < exact.u.size(); ++i) {
    worst_u = std::max(worst_u, std::fabs(exact.u[i] - rand.u[i]));
  }
  for (size_t i = 0; i < exact.vt.size(); ++i) {
    worst_v = std::max(worst_v, std::fabs(exact.vt[i] - rand.vt[i]));
  }
  // Randomized vectors converge more slowly than values (here about 2e-5 off); a sign flip would
  // put an entry of magnitude >= 1/sqrt(m) about 0.08 off.
  EXPECT_LT(worst_u, 1e-3);
  EXPECT_LT(worst_v, 1e-3);
}

// FillGaussian keeps the calling thread's last fill for reuse: whatever was asked before, each
// fill has the bits of the same fill on a fresh thread (nothing kept), for shorter, odd, longer
// and other-seed requests in a row.
TEST(TruncatedSvdTest, FillGaussianGivesTheSameBitsWhateverCameBefore) {
  auto fresh = [](uint64_t seed, size_t size) {
    std::vector<double> v(size);
    std::thread([&] { FillGaussian(seed, &v); }).join();
    return v;
  };
  const std::pair<uint64_t, size_t> asks[] = {{7, 100}, {7, 100}, {7, 37}, {7, 1},   {7, 0},
                                              {7, 101}, {8, 64},  {7, 64}, {7, 101}, {8, 65}};
  for (const auto& [seed, size] : asks) {
    std::vector<double> v(size, -1.0);
    FillGaussian(seed, &v);
    const std::vector<double> expected = fresh(seed, size);
    EXPECT_EQ(v, expected) << "seed " << seed << ", size " << size;  // no NaN among them
  }
  // Prefixes: a shorter fill is the start of a longer one.
  const std::vector<double> longer = fresh(9, 51), shorter = fresh(9, 50);
  EXPECT_EQ(std::vector<double>(longer.begin(), longer.begin() + 50), shorter);
}

TEST(TruncatedSvdTest, ChooseSvdMethodRules) {
  const SvdOptions auto_options;  // oversampling 10
  // min(m, n) <= 512: always exact.
  EXPECT_EQ(ChooseSvdMethod(512, 4096, 1, auto_options), SvdMethod::kExact);
  EXPECT_EQ(ChooseSvdMethod(4096, 512, 1, auto_options), SvdMethod::kExact);
  EXPECT_EQ(ChooseSvdMethod(600, 500, 4, auto_options), SvdMethod::kExact);
  // min(m, n) = 513: randomized while 4 * (rank + 10) < 513, i.e. rank <= 118.
  EXPECT_EQ(ChooseSvdMethod(513, 4096, 1, auto_options), SvdMethod::kRandomized);
  EXPECT_EQ(ChooseSvdMethod(513, 4096, 118, auto_options), SvdMethod::kRandomized);
  EXPECT_EQ(ChooseSvdMethod(513, 4096, 119, auto_options), SvdMethod::kExact);
  // 2048: the threshold is rank + 10 >= 512.
  EXPECT_EQ(ChooseSvdMethod(2048, 2048, 8, auto_options), SvdMethod::kRandomized);
  EXPECT_EQ(ChooseSvdMethod(2048, 2048, 501, auto_options), SvdMethod::kRandomized);
  EXPECT_EQ(ChooseSvdMethod(2048, 2048, 502, auto_options), SvdMethod::kExact);
  // Oversampling counts toward the sketch, and huge values do not overflow.
  SvdOptions wide;
  wide.oversampling = 504;
  EXPECT_EQ(ChooseSvdMethod(2048, 2048, 8, wide), SvdMethod::kExact);
  wide.oversampling = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(ChooseSvdMethod(2048, 2048, 8, wide), SvdMethod::kExact);
  // An explicit method is kept.
  EXPECT_EQ(ChooseSvdMethod(4096, 4096, 8, WithMethod(SvdMethod::kExact)), SvdMethod::kExact);
  EXPECT_EQ(ChooseSvdMethod(10, 10, 10, WithMethod(SvdMethod::kRandomized)),
            SvdMethod::kRandomized);
}

TEST(TruncatedSvdTest, AutoRunsTheChosenMethod) {
  // 600 x 500 -> exact; 1024 x 600 at rank 4 -> randomized. Same bits as the forced method.
  struct AutoCase {
    int64_t m, n, rank;
    SvdMethod expected;
  };
  for (const AutoCase& c :
       {AutoCase{600, 500, 4, SvdMethod::kExact}, AutoCase{1024, 600, 4, SvdMethod::kRandomized}}) {
    SCOPED_TRACE(std::to_string(c.m) + "x" + std::to_string(c.n));
    const Matrix a = LowRankPlusNoise(c.m, c.n, 20, 1.0, 0.8, 1e-4, 31);
    ASSERT_EQ(ChooseSvdMethod(c.m, c.n, c.rank, SvdOptions{}), c.expected);
    const TruncatedSvd automatic = MustSvd(a, c.m, c.n, c.rank, SvdOptions{});
    const TruncatedSvd forced = MustSvd(a, c.m, c.n, c.rank, WithMethod(c.expected));
    EXPECT_TRUE(SameBits(automatic.s, forced.s));
    EXPECT_TRUE(SameBits(automatic.u, forced.u));
    EXPECT_TRUE(SameBits(automatic.vt, forced.vt));
  }
}

TEST(TruncatedSvdTest, RejectsBadInput) {
  const Matrix a = GaussianMatrix(6, 4, 41);
  auto expect_invalid = [](const StatusOr<TruncatedSvd>& got, const std::string& fragment) {
    ASSERT_FALSE(got.ok()) << "expected an error mentioning '" << fragment << "'";
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(got.status().message().find(fragment), std::string::npos) << got.status().message();
  };
  for (SvdMethod method : {SvdMethod::kAuto, SvdMethod::kExact, SvdMethod::kRandomized}) {
    const SvdOptions options = WithMethod(method);
    expect_invalid(ComputeTruncatedSvd(static_cast<const double*>(nullptr), 6, 4, 1, options),
                   "null");
    expect_invalid(ComputeTruncatedSvd(a.data(), 0, 4, 1, options), "at least 1");
    expect_invalid(ComputeTruncatedSvd(a.data(), 6, -3, 1, options), "at least 1");
    expect_invalid(ComputeTruncatedSvd(a.data(), 6, 4, 0, options), "rank 0 must be in [1, 4]");
    expect_invalid(ComputeTruncatedSvd(a.data(), 6, 4, -1, options), "rank -1");
    expect_invalid(ComputeTruncatedSvd(a.data(), 6, 4, 5, options), "rank 5 must be in [1, 4]");
    SvdOptions bad = options;
    bad.oversampling = -1;
    expect_invalid(ComputeTruncatedSvd(a.data(), 6, 4, 2, bad), "oversampling -1");
    bad = options;
    bad.power_iterations = -2;
    expect_invalid(ComputeTruncatedSvd(a.data(), 6, 4, 2, bad), "power iterations -2");
    Matrix non_finite(a);
    non_finite[2 * 4 + 3] = std::nan("");
    expect_invalid(ComputeTruncatedSvd(non_finite.data(), 6, 4, 2, options),
                   "a NaN at row 2, column 3");
    non_finite[2 * 4 + 3] = 1.0;
    non_finite[5 * 4 + 0] = -std::numeric_limits<double>::infinity();
    expect_invalid(ComputeTruncatedSvd(non_finite.data(), 6, 4, 2, options),
                   "an infinity at row 5, column 0");
  }
}

TEST(TruncatedSvdTest, RejectsSizesBeyondIntegerLimitsWithoutTouchingData) {
  // Only one double exists behind the pointer: every call must fail before reading the matrix.
  const double one = 1.0;
  const int64_t huge = int64_t{1} << 40;
  StatusOr<TruncatedSvd> got = ComputeTruncatedSvd(&one, huge, huge, 1);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.status().message().find("too many elements"), std::string::npos)
      << got.status().message();
  // 65536^2 = 2^32 elements: beyond LAPACK's 32-bit indexing for the exact path.
  got = ComputeTruncatedSvd(&one, 65536, 65536, 1, WithMethod(SvdMethod::kExact));
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.status().message().find("32-bit"), std::string::npos) << got.status().message();
  // 2^31 rows: beyond BLAS's int dimensions for the randomized path.
  got = ComputeTruncatedSvd(&one, int64_t{1} << 31, 1, 1, WithMethod(SvdMethod::kRandomized));
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.status().message().find("32-bit"), std::string::npos) << got.status().message();
}

TEST(TruncatedSvdTest, RowAndColumnVectors) {
  const int64_t len = 7;
  const Matrix v = {0.5, -3.0, 1.0, 2.0, -0.25, 0.0, 1.5};  // largest magnitude is negative
  const double norm = FrobeniusNorm(v);
  for (SvdMethod method : {SvdMethod::kExact, SvdMethod::kRandomized}) {
    SCOPED_TRACE(method == SvdMethod::kExact ? "exact" : "randomized");
    // 1 x N: u = [1] (positive by convention), vt = v / ||v||.
    const TruncatedSvd row = MustSvd(v, 1, len, 1, WithMethod(method));
    EXPECT_NEAR(row.s[0], norm, 1e-14 * norm);
    EXPECT_NEAR(row.u[0], 1.0, 1e-14);
    for (int64_t j = 0; j < len; ++j) EXPECT_NEAR(row.vt[j], v[j] / norm, 1e-14) << "j=" << j;
    // N x 1: u = -v / ||v|| (so its largest entry, at index 1, is positive), vt = [-1].
    const TruncatedSvd column = MustSvd(v, len, 1, 1, WithMethod(method));
    EXPECT_NEAR(column.s[0], norm, 1e-14 * norm);
    for (int64_t i = 0; i < len; ++i) EXPECT_NEAR(column.u[i], -v[i] / norm, 1e-14) << "i=" << i;
    EXPECT_NEAR(column.vt[0], -1.0, 1e-14);
  }
}

TEST(TruncatedSvdTest, ZeroMatrixGivesZeroSingularValues) {
  const int64_t m = 40, n = 30, r = 3;
  const Matrix zero(static_cast<size_t>(m * n), 0.0);
  for (SvdMethod method : {SvdMethod::kExact, SvdMethod::kRandomized}) {
    SCOPED_TRACE(method == SvdMethod::kExact ? "exact" : "randomized");
    const TruncatedSvd svd = MustSvd(zero, m, n, r, WithMethod(method));
    for (double s : svd.s) EXPECT_EQ(s, 0.0);
    for (double x : svd.u) EXPECT_TRUE(std::isfinite(x));
    for (double x : svd.vt) EXPECT_TRUE(std::isfinite(x));
  }
}

std::vector<float> ToFloat(const Matrix& a) { return std::vector<float>(a.begin(), a.end()); }

Matrix ToDouble(const std::vector<float>& a) { return Matrix(a.begin(), a.end()); }

TruncatedSvd MustFloatSvd(const std::vector<float>& a, int64_t m, int64_t n, int64_t rank,
                          SvdPrecision precision) {
  SvdOptions options = WithMethod(SvdMethod::kRandomized);
  options.precision = precision;
  StatusOr<TruncatedSvd> svd = ComputeTruncatedSvd(a.data(), m, n, rank, options);
  EXPECT_TRUE(svd.ok()) << svd.status().message();
  if (!svd.ok()) return TruncatedSvd{};
  return std::move(svd).value();
}

// Float32 subspace passes against float64 ones on the same float matrix: the same singular values
// to float32 accuracy, errors that agree to far better than the method's own gap, and in both the
// error from the header's identity equals the dense reconstruction error in double.
TEST(TruncatedSvdFloatTest, Float32AgreesWithFloat64AndErrorsAreExact) {
  for (const Case& c : kCases) {
    const std::vector<float> a = ToFloat(CaseMatrix(c));
    const Matrix ad = ToDouble(a);  // the float matrix exactly, in double
    const double norm = FrobeniusNorm(ad);
    for (int64_t r : {1, 4, 16}) {
      SCOPED_TRACE(std::to_string(c.m) + "x" + std::to_string(c.n) + " rank " + std::to_string(r));
      const TruncatedSvd f32 = MustFloatSvd(a, c.m, c.n, r, SvdPrecision::kFloat32);
      const TruncatedSvd f64 = MustFloatSvd(a, c.m, c.n, r, SvdPrecision::kFloat64);
      EXPECT_TRUE(f32.float32_passes);
      EXPECT_FALSE(f64.float32_passes);
      for (int64_t t = 0; t < r; ++t) EXPECT_NEAR(f32.s[t], f64.s[t], 1e-6 * f64.s[0]) << t;
      double errors[2];
      int i = 0;
      for (const TruncatedSvd* svd : {&f32, &f64}) {
        double kept = 0.0;
        for (double s : svd->s) kept += s * s;
        const double reported = std::sqrt(std::max(0.0, norm * norm - kept));
        const double dense = ReconstructionError(ad, *svd);
        EXPECT_NEAR(reported, dense, 1e-9 * norm);
        EXPECT_LT(OrthonormalityError(*svd, /*left=*/true), 1e-12);
        EXPECT_LT(OrthonormalityError(*svd, /*left=*/false), 1e-12);
        errors[i++] = dense;
      }
      EXPECT_NEAR(errors[0], errors[1], 1e-6 * errors[1]);
    }
  }
}

// The double overload and the float overload at float64 see the same numbers (the matrix is
// exactly representable in both), so they agree to double rounding.
TEST(TruncatedSvdFloatTest, Float64PassesMatchTheDoubleOverload) {
  const Case& c = kCases[1];
  const std::vector<float> a = ToFloat(CaseMatrix(c));
  const TruncatedSvd from_double =
      MustSvd(ToDouble(a), c.m, c.n, 8, WithMethod(SvdMethod::kRandomized));
  const TruncatedSvd from_float = MustFloatSvd(a, c.m, c.n, 8, SvdPrecision::kFloat64);
  for (int64_t t = 0; t < 8; ++t) {
    EXPECT_NEAR(from_float.s[t], from_double.s[t], 1e-12 * from_double.s[0]) << t;
  }
}

// Nearly exact low rank: kAuto keeps float32 passes (no float64 redo; Factorize measures such
// small errors from the factors instead), so it gives float32's bits; float32 costs a little
// against float64 there, within the bound in truncated_svd.h ((1e-7 / e)^2 / 2 of the error, here
// generously 1e-3 plus that).
TEST(TruncatedSvdFloatTest, AutoKeepsFloat32PassesWhenTheErrorIsTiny) {
  const int64_t m = 600, n = 500, r = 12;
  const std::vector<float> a = ToFloat(LowRankPlusNoise(m, n, r, 10.0, 0.8, 1e-5, 71));
  const Matrix ad = ToDouble(a);
  const TruncatedSvd automatic = MustFloatSvd(a, m, n, r, SvdPrecision::kAuto);
  const TruncatedSvd f32 = MustFloatSvd(a, m, n, r, SvdPrecision::kFloat32);
  const TruncatedSvd f64 = MustFloatSvd(a, m, n, r, SvdPrecision::kFloat64);
  EXPECT_TRUE(automatic.float32_passes);
  EXPECT_EQ(automatic.s, f32.s);
  EXPECT_EQ(automatic.u, f32.u);
  EXPECT_EQ(automatic.vt, f32.vt);
  const double norm = FrobeniusNorm(ad);
  const double e32 = ReconstructionError(ad, f32) / norm, e64 = ReconstructionError(ad, f64) / norm;
  EXPECT_LT(e64, kFloat32MinRelativeError);
  EXPECT_LT(e32, e64 * (1.0 + 1e-3 + 0.5 * (1e-7 / e64) * (1e-7 / e64)));
}

TEST(TruncatedSvdFloatTest, RejectsNonFiniteAndNull) {
  std::vector<float> a = ToFloat(GaussianMatrix(6, 4, 3));
  a[9] = std::numeric_limits<float>::infinity();
  auto got = ComputeTruncatedSvd(a.data(), 6, 4, 1);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("an infinity at row 2, column 1"), std::string::npos)
      << got.status().message();
  EXPECT_EQ(ComputeTruncatedSvd(static_cast<const float*>(nullptr), 6, 4, 1).status().code(),
            StatusCode::kInvalidArgument);
}

// ExactSvdInPlace (the exact path Factorize uses) returns the whole spectrum with the top triplets.
TEST(TruncatedSvdTest, ExactPathReturnsTheWholeSpectrum) {
  const Case& c = kCases[0];
  const Matrix a = CaseMatrix(c);
  const std::vector<double> spectrum = FullSpectrum(a, c.m, c.n);
  const TruncatedSvd exact = MustSvd(a, c.m, c.n, 5, WithMethod(SvdMethod::kExact));
  ASSERT_EQ(exact.spectrum.size(), spectrum.size());
  for (size_t t = 0; t < spectrum.size(); ++t) {
    EXPECT_NEAR(exact.spectrum[t], spectrum[t], 1e-12 * spectrum[0]) << t;
  }
  Matrix work(a);
  auto in_place = ExactSvdInPlace(work.data(), c.m, c.n, 5);
  ASSERT_TRUE(in_place.ok());
  EXPECT_TRUE(SameBits(in_place->s, exact.s));
  EXPECT_TRUE(SameBits(in_place->u, exact.u));
  EXPECT_TRUE(SameBits(in_place->spectrum, exact.spectrum));
  EXPECT_TRUE(MustSvd(a, c.m, c.n, 5, WithMethod(SvdMethod::kRandomized)).spectrum.empty());
}

// Information only, disabled by default (timed assertions and slow runs do not belong in the
// suite); run with --gtest_also_run_disabled_tests --gtest_filter=TruncatedSvdTiming.*
TEST(TruncatedSvdTiming, DISABLED_Exact_vs_Randomized_2048_Rank8) {
  const int64_t m = 2048, n = 2048, r = 8;
  const Matrix a = LowRankPlusNoise(m, n, 256, 10.0, 0.98, 1e-4, 51);
  const double norm = FrobeniusNorm(a);
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const TruncatedSvd exact = MustSvd(a, m, n, r, WithMethod(SvdMethod::kExact));
  const auto t1 = Clock::now();
  const TruncatedSvd rand = MustSvd(a, m, n, r, WithMethod(SvdMethod::kRandomized));
  const auto t2 = Clock::now();
  const double exact_s = std::chrono::duration<double>(t1 - t0).count();
  const double rand_s = std::chrono::duration<double>(t2 - t1).count();
  const double exact_error = ReconstructionError(a, exact);
  const double rand_error = ReconstructionError(a, rand);
  std::cout << std::setprecision(4) << "[ timing ] " << m << "x" << n << " rank " << r << ": exact "
            << exact_s << " s, randomized " << rand_s << " s (" << exact_s / rand_s
            << "x); relative error exact " << exact_error / norm << ", randomized "
            << rand_error / norm << " (+" << 100.0 * (rand_error / exact_error - 1.0)
            << "% vs optimal)\n";
}

}  // namespace
}  // namespace kfc::kron
