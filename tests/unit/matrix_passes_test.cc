// SPDX-License-Identifier: Apache-2.0
// Building blocks of the randomized passes: the Schur-complement eigenvalue bounds must bound the
// exact spectrum from above (for any gamma >= ||C||, with float32-like errors in Z covered by
// delta), and be nearly tight once V is nearly invariant.
#include "kfc/kron/matrix_passes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <tuple>
#include <utility>
#include <vector>

#include "kfc/core/parallel.h"
#include "kfc/kron/simd_kernels.h"
#include "kfc/kron/truncated_svd.h"

namespace kfc::kron {
namespace {

// Column-major n x n G = V diag(sigma^2) V^T for a random orthogonal V: the Gram matrix R^T R of
// any R with singular values `sigma` and right singular vectors V.
std::vector<double> GramWithSpectrum(int64_t n, const std::vector<double>& sigma, uint64_t seed) {
  std::vector<double> v(static_cast<size_t>(n * n));
  FillGaussian(seed, &v);
  EXPECT_TRUE(Orthonormalize(n, n, v.data(), "v").ok());
  std::vector<double> g(static_cast<size_t>(n * n), 0.0);
  for (int64_t t = 0; t < static_cast<int64_t>(sigma.size()); ++t) {
    const double s2 = sigma[static_cast<size_t>(t)] * sigma[static_cast<size_t>(t)];
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < n; ++i) g[j * n + i] += s2 * v[t * n + i] * v[t * n + j];
  }
  return g;
}

// y (n x l) = G x (n x l), column-major.
std::vector<double> Apply(const std::vector<double>& g, const std::vector<double>& x, int64_t n,
                          int64_t l) {
  std::vector<double> y(static_cast<size_t>(n * l), 0.0);
  for (int64_t c = 0; c < l; ++c)
    for (int64_t k = 0; k < n; ++k)
      for (int64_t i = 0; i < n; ++i) y[c * n + i] += g[k * n + i] * x[c * n + k];
  return y;
}

// Largest eigenvalue of C = (I - V V^T) G (I - V V^T).
double ComplementNorm(const std::vector<double>& g, const std::vector<double>& v, int64_t n,
                      int64_t l) {
  std::vector<double> p(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) p[i * n + i] = 1.0;
  for (int64_t c = 0; c < l; ++c)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < n; ++i) p[j * n + i] -= v[c * n + i] * v[c * n + j];
  const auto gp = Apply(g, p, n, n);
  std::vector<double> c(static_cast<size_t>(n * n), 0.0);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t k = 0; k < n; ++k)
      for (int64_t i = 0; i < n; ++i) c[j * n + i] += p[k * n + i] * gp[j * n + k];
  auto eig = SymmetricEigenvalues(&c, n, "complement");
  EXPECT_TRUE(eig.ok());
  return eig->front();
}

std::vector<double> ExactPrefixSums(std::vector<double> g, int64_t n) {
  auto eig = SymmetricEigenvalues(&g, n, "G");
  EXPECT_TRUE(eig.ok());
  std::vector<double> sums(static_cast<size_t>(n + 1), 0.0);
  for (int64_t k = 0; k < n; ++k) sums[k + 1] = sums[k] + (*eig)[k];
  return sums;
}

struct Case {
  const char* name;
  std::vector<double> sigma;
};

std::vector<Case> Cases() {
  std::vector<double> flat, planted, power;
  for (int t = 0; t < 40; ++t) flat.push_back(1.0 + 0.01 * t);
  for (int t = 0; t < 40; ++t) planted.push_back(t < 5 ? 10.0 - t : 0.05);
  for (int t = 0; t < 40; ++t) power.push_back(1.0 / (t + 1.0));
  return {{"flat", flat}, {"planted", planted}, {"power_law", power}};
}

TEST(SchurEigenvalueBoundsTest, BoundTheTopEigenvaluesFromAbove) {
  const int64_t n = 40, l = 10;
  for (const Case& c : Cases()) {
    for (uint64_t seed : {1u, 2u, 3u}) {
      const auto g = GramWithSpectrum(n, c.sigma, seed);
      const auto exact = ExactPrefixSums(g, n);
      std::vector<double> v(static_cast<size_t>(n * l));
      FillGaussian(seed + 10, &v);
      ASSERT_TRUE(Orthonormalize(n, l, v.data(), "v0").ok());
      for (int iteration = 0; iteration < 4; ++iteration) {
        const auto z = Apply(g, v, n, l);
        const double gamma = ComplementNorm(g, v, n, l);
        for (double delta : {0.0, 1e-6 * exact[n]}) {
          // A Z off by at most delta in the 2-norm (delta / sqrt(n l) per entry) is covered.
          auto zd = z;
          for (size_t k = 0; k < zd.size(); ++k) {
            zd[k] += (k % 2 ? 1.0 : -1.0) * delta / std::sqrt(static_cast<double>(n * l));
          }
          auto block = MakeRitzBlock(v.data(), zd.data(), n, l, "test block");
          ASSERT_TRUE(block.ok());
          for (double factor : {1.0, 3.0}) {
            for (int64_t count : {int64_t{3}, l}) {
              auto sums = SchurEigenvalueBounds(*block, count, factor * gamma, delta, "test");
              ASSERT_TRUE(sums.ok());
              for (int64_t k = 1; k <= n; ++k) {
                const double bound =
                    k <= l ? (*sums)[k] : (*sums)[l] + static_cast<double>(k - l) * factor * gamma;
                EXPECT_GE(bound, exact[k] * (1 - 1e-12))
                    << c.name << " seed " << seed << " iteration " << iteration << " k " << k;
              }
            }
          }
        }
        v = z;
        ASSERT_TRUE(Orthonormalize(n, l, v.data(), "v").ok());
      }
    }
  }
}

// Where V holds the top eigenvectors nearly exactly, the bound is nearly the exact energy, far
// below what Ky Fan (Ritz values plus k times ||C||) proves.
TEST(SchurEigenvalueBoundsTest, NearlyTightForANearlyInvariantBlock) {
  const int64_t n = 40, l = 10, k = 5;
  const auto g = GramWithSpectrum(n, Cases()[2].sigma, 4);  // power law: a slow spectrum
  const auto exact = ExactPrefixSums(g, n);
  std::vector<double> v(static_cast<size_t>(n * l));
  FillGaussian(5, &v);
  ASSERT_TRUE(Orthonormalize(n, l, v.data(), "v0").ok());
  for (int iteration = 0; iteration < 8; ++iteration) {
    v = Apply(g, v, n, l);
    ASSERT_TRUE(Orthonormalize(n, l, v.data(), "v").ok());
  }
  const auto z = Apply(g, v, n, l);
  auto block = MakeRitzBlock(v.data(), z.data(), n, l, "test block");
  ASSERT_TRUE(block.ok());
  const double gamma = ComplementNorm(g, v, n, l);
  auto sums = SchurEigenvalueBounds(*block, l, gamma, 0.0, "test");
  ASSERT_TRUE(sums.ok());
  double ky_fan = static_cast<double>(k) * gamma;
  for (int64_t i = 0; i < k; ++i) ky_fan += block->theta[static_cast<size_t>(i)];
  EXPECT_LE((*sums)[k], exact[k] * (1 + 1e-4));
  EXPECT_LT((*sums)[k] - exact[k], 1e-3 * (ky_fan - exact[k]));
}

// One sweep over A computes what the two plain float32 products compute (A'^T A' x for A' = A and
// A' = A^T), over several blocks of rows, and the Gram matrix of the first g
// columns of A' x, checked against a double-precision reference.
TEST(MultiplyGramTest, MatchesTwoProductsAndTheGramOfY) {
  for (const auto& [m, n] : {std::pair<int64_t, int64_t>{9000, 37}, {37, 1000}, {300, 300}}) {
    std::vector<double> a_d(static_cast<size_t>(m * n));
    FillGaussian(7, &a_d);
    const std::vector<float> a(a_d.begin(), a_d.end());
    for (const bool transpose : {false, true}) {
      const int64_t sh = transpose ? m : n, lo = transpose ? n : m, l = 9, g = 4;
      std::vector<double> x(static_cast<size_t>(sh * l)), y(static_cast<size_t>(lo * l), 0.0),
          z(static_cast<size_t>(sh * l), 0.0), fused(z.size()), gram;
      FillGaussian(11, &x);
      auto at = [&](int64_t i, int64_t j) {  // A'[i, j], in double
        return static_cast<double>(transpose ? a[j * n + i] : a[i * n + j]);
      };
      for (int64_t c = 0; c < l; ++c) {
        for (int64_t i = 0; i < lo; ++i)
          for (int64_t k = 0; k < sh; ++k) y[c * lo + i] += at(i, k) * x[c * sh + k];
        for (int64_t k = 0; k < sh; ++k)
          for (int64_t i = 0; i < lo; ++i) z[c * sh + k] += at(i, k) * y[c * lo + i];
      }
      MultiplyGram(a.data(), m, n, transpose, x.data(), l, fused.data(), g, &gram);
      double z_norm = 0.0, z_err = 0.0;
      for (size_t k = 0; k < z.size(); ++k) {
        z_norm = std::max(z_norm, std::abs(z[k]));
        z_err = std::max(z_err, std::abs(z[k] - fused[k]));
      }
      EXPECT_LT(z_err, 1e-5 * z_norm) << m << "x" << n << " transpose " << transpose;
      ASSERT_EQ(gram.size(), static_cast<size_t>(g * g));
      for (int64_t j = 0; j < g; ++j) {
        for (int64_t i = 0; i <= j; ++i) {
          double expected = 0.0;
          for (int64_t k = 0; k < lo; ++k) expected += y[i * lo + k] * y[j * lo + k];
          EXPECT_NEAR(gram[j * g + i], expected, 1e-5 * std::abs(expected) + 1e-9)
              << m << "x" << n << " transpose " << transpose << " (" << i << ", " << j << ")";
        }
      }
    }
  }
}

// The double-accumulation A^T y (the randomized SVD's last pass; on AVX-512 CPUs the float-input
// kernel of simd_kernels.h) against a long double reference: as accurate as a double matrix, for
// sizes on and off its tiles (n % 32, l % 6, rows per block % 32 and a single short block) and
// the same bits on a second call.
TEST(MultiplyAtTest, DoubleAccumulationIsAccurateToDoubleRounding) {
  for (const auto& [m, n, l] : {std::tuple<int64_t, int64_t, int64_t>{2048, 2048, 18},
                                {700, 100, 7},
                                {30, 37, 1},
                                {1000, 64, 13}}) {
    std::vector<double> a_d(static_cast<size_t>(m * n)), y(static_cast<size_t>(m * l));
    FillGaussian(21, &a_d);
    FillGaussian(22, &y);
    const std::vector<float> a(a_d.begin(), a_d.end());
    std::vector<double> z(static_cast<size_t>(n * l)), again(z.size());
    MultiplyAt(a.data(), m, n, y.data(), l, z.data(), PassPrecision::kFloat64);
    MultiplyAt(a.data(), m, n, y.data(), l, again.data(), PassPrecision::kFloat64);
    EXPECT_EQ(std::memcmp(z.data(), again.data(), z.size() * sizeof(double)), 0);
    double worst = 0.0;  // |error| / (sum of |terms|), the bound dgemm's accumulation obeys
    for (int64_t c = 0; c < l; ++c) {
      for (int64_t j = 0; j < n; ++j) {
        long double exact = 0.0L, magnitude = 0.0L;
        for (int64_t i = 0; i < m; ++i) {
          const long double t = static_cast<long double>(a[static_cast<size_t>(i * n + j)]) *
                                static_cast<long double>(y[static_cast<size_t>(c * m + i)]);
          exact += t;
          magnitude += std::fabs(t);
        }
        const double err =
            static_cast<double>(std::fabs(static_cast<long double>(z[c * n + j]) - exact));
        worst = std::max(worst, err / static_cast<double>(magnitude));
      }
    }
    // Far below float rounding (6e-8): double accumulation of exact float-times-double products.
    EXPECT_LT(worst, 4.0 * static_cast<double>(m) * 1.2e-16) << m << "x" << n << " l " << l;
  }
}

// The one-pass y = A x, w = A^T y (the randomized SVD's power iterations) against references
// for sizes on and off its kernels' tiles (n % 16, n % 64, rows % 4, l % 6, one short block and
// many groups): y within float rounding of A x (x rounded to float), w within float rounding
// (kFloat32) or double rounding (kFloat64) of A^T y for the returned y; the same bits on a second
// call and when the row groups run on two threads.
TEST(MultiplyAAndAtTest, MatchesReferencesInBothPrecisionsOnAndOffTheTiles) {
  for (const auto& [m, n, l] : {std::tuple<int64_t, int64_t, int64_t>{2048, 2048, 18},
                                {700, 100, 7},
                                {30, 37, 1},
                                {1001, 130, 13},
                                {5, 3, 2}}) {
    std::vector<double> a_d(static_cast<size_t>(m * n)), x(static_cast<size_t>(n * l));
    FillGaussian(31, &a_d);
    FillGaussian(32, &x);
    const std::vector<float> a(a_d.begin(), a_d.end());
    for (const PassPrecision p : {PassPrecision::kFloat32, PassPrecision::kFloat64}) {
      SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(n) + " l " + std::to_string(l) +
                   (p == PassPrecision::kFloat32 ? " float" : " double"));
      std::vector<double> y(static_cast<size_t>(m * l)), w(static_cast<size_t>(n * l));
      MultiplyAAndAt(a.data(), m, n, x.data(), l, y.data(), w.data(), p);
      double y_worst = 0.0, w_worst = 0.0;
      for (int64_t c = 0; c < l; ++c) {
        for (int64_t i = 0; i < m; ++i) {
          long double exact = 0.0L, magnitude = 0.0L;
          for (int64_t j = 0; j < n; ++j) {
            const long double t = static_cast<long double>(a[i * n + j]) *
                                  static_cast<float>(x[static_cast<size_t>(c * n + j)]);
            exact += t;
            magnitude += std::fabs(t);
          }
          const long double err = std::fabs(static_cast<long double>(y[c * m + i]) - exact);
          y_worst = std::max(y_worst, static_cast<double>(err / magnitude));
          EXPECT_EQ(static_cast<double>(static_cast<float>(y[c * m + i])), y[c * m + i]);
        }
        for (int64_t j = 0; j < n; ++j) {
          long double exact = 0.0L, magnitude = 0.0L;
          for (int64_t i = 0; i < m; ++i) {
            const long double t =
                static_cast<long double>(a[i * n + j]) * static_cast<long double>(y[c * m + i]);
            exact += t;
            magnitude += std::fabs(t);
          }
          const long double err = std::fabs(static_cast<long double>(w[c * n + j]) - exact);
          w_worst = std::max(w_worst, static_cast<double>(err / magnitude));
        }
      }
      EXPECT_LT(y_worst, static_cast<double>(n) * 6e-8);
      EXPECT_LT(w_worst, p == PassPrecision::kFloat32 ? static_cast<double>(m) * 6e-8
                                                      : static_cast<double>(m) * 4.8e-16);
      std::vector<double> y2(y.size()), w2(w.size()), y3(y.size()), w3(w.size());
      MultiplyAAndAt(a.data(), m, n, x.data(), l, y2.data(), w2.data(), p);
      EXPECT_EQ(std::memcmp(y.data(), y2.data(), y.size() * sizeof(double)), 0);
      EXPECT_EQ(std::memcmp(w.data(), w2.data(), w.size() * sizeof(double)), 0);
      // Inside a two-thread ParallelFor the other thread helps with the row groups.
      ASSERT_TRUE(ParallelFor(1, 2, [&](int64_t) {
                    MultiplyAAndAt(a.data(), m, n, x.data(), l, y3.data(), w3.data(), p);
                    return Status::Ok();
                  }).ok());
      EXPECT_EQ(std::memcmp(y.data(), y3.data(), y.size() * sizeof(double)), 0);
      EXPECT_EQ(std::memcmp(w.data(), w3.data(), w.size() * sizeof(double)), 0);
    }
  }
}

// Orthonormalize's triangular factor: q_before = q R, R upper triangular.
TEST(OrthonormalizeTest, ReturnsTheTriangularFactor) {
  const int64_t rows = 50, l = 6;
  std::vector<double> before(static_cast<size_t>(rows * l));
  FillGaussian(41, &before);
  std::vector<double> q = before, r;
  ASSERT_TRUE(Orthonormalize(rows, l, q.data(), "block", &r).ok());
  ASSERT_EQ(r.size(), static_cast<size_t>(l * l));
  for (int64_t c = 0; c < l; ++c) {
    for (int64_t k = c + 1; k < l; ++k) EXPECT_EQ(r[c * l + k], 0.0);
    for (int64_t i = 0; i < rows; ++i) {
      double sum = 0.0;
      for (int64_t k = 0; k <= c; ++k) sum += q[k * rows + i] * r[c * l + k];
      EXPECT_NEAR(sum, before[c * rows + i], 1e-12);
    }
  }
}

}  // namespace
}  // namespace kfc::kron
