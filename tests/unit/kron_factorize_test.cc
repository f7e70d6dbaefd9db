// SPDX-License-Identifier: Apache-2.0
// Unit tests for kfc/kron/factorize: rearrangement, factorization, error accounting, shape search.
#include <gtest/gtest.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kfc/kron/factorize.h"
#include "kfc/kron/rearrange.h"

namespace kfc::kron {
namespace {

std::vector<float> RandomVector(size_t size, std::mt19937* rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(size);
  for (float& x : v) x = dist(*rng);
  return v;
}

// W = sum_t A_t (x) B_t straight from the primer's index formula, accumulated in double and
// returned as Out; independent of Reconstruct. a and b use KronFactors' layout (float or double).
template <typename Out = float, typename V>
std::vector<Out> KronSum(const KronShape& s, int64_t rank, const std::vector<V>& a,
                         const std::vector<V>& b) {
  const int64_t K = s.K(), N = s.N();
  std::vector<double> w(static_cast<size_t>(K * N), 0.0);
  for (int64_t t = 0; t < rank; ++t) {
    for (int64_t i1 = 0; i1 < s.k1; ++i1) {
      for (int64_t j1 = 0; j1 < s.n1; ++j1) {
        for (int64_t i2 = 0; i2 < s.k2; ++i2) {
          for (int64_t j2 = 0; j2 < s.n2; ++j2) {
            w[(i1 * s.k2 + i2) * N + j1 * s.n2 + j2] +=
                static_cast<double>(a[t * s.k1 * s.n1 + i1 * s.n1 + j1]) *
                static_cast<double>(b[t * s.k2 * s.n2 + i2 * s.n2 + j2]);
          }
        }
      }
    }
  }
  return std::vector<Out>(w.begin(), w.end());
}

template <typename T>
double FrobeniusNorm(const std::vector<T>& w) {
  double sum = 0.0;
  for (T x : w) sum += static_cast<double>(x) * x;
  return std::sqrt(sum);
}

// ||W - W_hat||_F / ||W||_F in double.
template <typename T>
double DenseRelativeError(const std::vector<T>& w, const std::vector<T>& w_hat) {
  EXPECT_EQ(w.size(), w_hat.size());
  double diff = 0.0;
  for (size_t i = 0; i < w.size() && i < w_hat.size(); ++i) {
    const double d = static_cast<double>(w[i]) - static_cast<double>(w_hat[i]);
    diff += d * d;
  }
  return std::sqrt(diff) / FrobeniusNorm(w);
}

std::string ToString(const KronShape& s) {
  return std::to_string(s.k1) + "x" + std::to_string(s.n1) + " (x) " + std::to_string(s.k2) + "x" +
         std::to_string(s.n2);
}

TEST(KronMacsTest, MatchesPrimerFormulas) {
  const KronShape s{2, 3, 4, 5};                                             // K = 8, N = 15
  EXPECT_EQ(Macs(s, 2, ContractionOrder::kBFirst), 2 * 8 * 5 + 2 * 2 * 15);  // 140
  EXPECT_EQ(Macs(s, 2, ContractionOrder::kAFirst), 2 * 8 * 3 + 2 * 4 * 15);  // 168
  EXPECT_EQ(CheaperOrder(s, 2), ContractionOrder::kBFirst);

  const KronShape swapped{4, 5, 2, 3};  // K = 8, N = 15
  EXPECT_EQ(Macs(swapped, 2, ContractionOrder::kBFirst), 168);
  EXPECT_EQ(Macs(swapped, 2, ContractionOrder::kAFirst), 140);
  EXPECT_EQ(CheaperOrder(swapped, 2), ContractionOrder::kAFirst);

  // Primer example: K = N = 4096, all factors 64 x 64, r = 4: about 8x fewer MACs than dense.
  const KronShape big{64, 64, 64, 64};
  EXPECT_EQ(Macs(big, 4, ContractionOrder::kBFirst), 2097152);
  EXPECT_EQ(Macs(big, 4, ContractionOrder::kAFirst), 2097152);
  EXPECT_EQ(CheaperOrder(big, 4), ContractionOrder::kBFirst);  // tie
  EXPECT_EQ(big.K() * big.N() / Macs(big, 4, ContractionOrder::kBFirst), 8);
}

TEST(KronEnumerateShapesTest, SmallCaseContents) {
  const std::vector<KronShape> shapes = EnumerateShapes(4, 6);
  // 3 divisors of 4 times 4 divisors of 6, minus the two trivial shapes.
  ASSERT_EQ(shapes.size(), 10u);
  const std::vector<KronShape> expected = {
      {1, 2, 4, 3}, {1, 3, 4, 2}, {1, 6, 4, 1},                // k1 = 1 (no 1x1 A)
      {2, 1, 2, 6}, {2, 2, 2, 3}, {2, 3, 2, 2}, {2, 6, 2, 1},  // k1 = 2
      {4, 1, 1, 6}, {4, 2, 1, 3}, {4, 3, 1, 2},                // k1 = 4 (no 1x1 B)
  };
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(shapes[i], expected[i]) << "index " << i << ": got " << ToString(shapes[i]);
  }
  auto contains = [&](const KronShape& s) {
    return std::find(shapes.begin(), shapes.end(), s) != shapes.end();
  };
  EXPECT_TRUE(contains({4, 1, 1, 6}));   // low rank: A is a column, B a row
  EXPECT_TRUE(contains({1, 6, 4, 1}));   // low rank, the other way
  EXPECT_FALSE(contains({1, 1, 4, 6}));  // trivial: A is a scalar
  EXPECT_FALSE(contains({4, 6, 1, 1}));  // trivial: B is a scalar
  for (const KronShape& s : shapes) {
    EXPECT_EQ(s.K(), 4);
    EXPECT_EQ(s.N(), 6);
  }
}

TEST(KronEnumerateShapesTest, DegenerateInputs) {
  EXPECT_TRUE(EnumerateShapes(1, 1).empty());
  EXPECT_TRUE(EnumerateShapes(0, 5).empty());
  EXPECT_TRUE(EnumerateShapes(5, -1).empty());
  EXPECT_TRUE(EnumerateShapes(7, 1).empty());  // a column vector has only the trivial shapes
  const std::vector<KronShape> row = EnumerateShapes(1, 6);
  ASSERT_EQ(row.size(), 2u);
  EXPECT_EQ(row[0], (KronShape{1, 2, 1, 3}));
  EXPECT_EQ(row[1], (KronShape{1, 3, 1, 2}));
  const std::vector<KronShape> primes = EnumerateShapes(7, 5);
  ASSERT_EQ(primes.size(), 2u);
  EXPECT_EQ(primes[0], (KronShape{1, 5, 7, 1}));
  EXPECT_EQ(primes[1], (KronShape{7, 1, 1, 5}));
}

TEST(KronDefaultShapeTest, FewestParametersWithDocumentedTieBreaks) {
  // K = 8, N = 32: params k1*n1 + 256/(k1*n1) is least (32) at k1*n1 = 16, reached by
  // 1x16, 2x8, 4x4 and 8x2; 2x8 (x) 4x4 and 4x4 (x) 2x8 are the squarest (aspect 8), and the
  // smaller k1 wins.
  StatusOr<KronShape> s = DefaultShape(8, 32);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(*s, (KronShape{2, 8, 4, 4}));
  EXPECT_EQ(s->ParamsPerTerm(), 32);

  // K = N = 64: every k1*n1 = 64 costs 128 parameters; the squarest, 8x8 (x) 8x8, wins over the
  // low-rank 1x64 (x) 64x1.
  s = DefaultShape(64, 64);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->ParamsPerTerm(), 128);
  EXPECT_EQ(s->ParamsPerTerm(), (KronShape{8, 8, 8, 8}).ParamsPerTerm());
  EXPECT_EQ(*s, (KronShape{8, 8, 8, 8}));

  // Primes: only the low-rank shapes exist; both cost 12 and are equally balanced.
  s = DefaultShape(7, 5);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(*s, (KronShape{1, 5, 7, 1}));

  // 784 x 512 (a Fashion-MNIST layer): low rank costs 784 + 512 = 1296 per term, and so does
  // 49x16 (x) 16x32; balanced is the Kronecker one.
  s = DefaultShape(784, 512);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_FALSE(IsLowRankShape(*s, 784, 512));
  EXPECT_EQ(s->ParamsPerTerm(), 1296);

  // K = 2, N = 50: 1x10 (x) 2x5 and 2x5 (x) 1x10 both cost 20 (low rank would cost 52).
  s = DefaultShape(2, 50);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(*s, (KronShape{1, 10, 2, 5}));

  EXPECT_EQ(DefaultShape(1, 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DefaultShape(0, 4).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DefaultShape(7, 1).status().code(), StatusCode::kInvalidArgument);
}

TEST(KronDefaultShapeTest, AgreesWithBruteForceOverSmallDims) {
  for (int64_t K = 1; K <= 36; ++K) {
    for (int64_t N = 1; N <= 36; ++N) {
      std::vector<KronShape> shapes = EnumerateShapes(K, N);
      // Low-rank shapes only count where nothing else divides the layer.
      std::vector<KronShape> kron_only;
      for (const KronShape& s : shapes) {
        if (!IsLowRankShape(s, K, N)) kron_only.push_back(s);
      }
      if (!kron_only.empty()) shapes = kron_only;
      StatusOr<KronShape> got = DefaultShape(K, N);
      if (shapes.empty()) {
        EXPECT_FALSE(got.ok()) << K << "x" << N;
        continue;
      }
      ASSERT_TRUE(got.ok()) << K << "x" << N << ": " << got.status().message();
      KronShape best = shapes[0];
      for (const KronShape& s : shapes) {
        const int64_t p = s.ParamsPerTerm(), bp = best.ParamsPerTerm();
        const int64_t gap = std::abs(s.k1 * s.n1 - s.k2 * s.n2);
        const int64_t bgap = std::abs(best.k1 * best.n1 - best.k2 * best.n2);
        // Aspect max(k1,k2)*max(n1,n2) / (min(k1,k2)*min(n1,n2)), compared by cross-multiplying.
        const int64_t asp = std::max(s.k1, s.k2) * std::max(s.n1, s.n2) *
                            std::min(best.k1, best.k2) * std::min(best.n1, best.n2);
        const int64_t basp = std::max(best.k1, best.k2) * std::max(best.n1, best.n2) *
                             std::min(s.k1, s.k2) * std::min(s.n1, s.n2);
        if (p < bp || (p == bp && gap < bgap) || (p == bp && gap == bgap && asp < basp) ||
            (p == bp && gap == bgap && asp == basp &&
             (s.k1 < best.k1 || (s.k1 == best.k1 && s.n1 < best.n1)))) {
          best = s;
        }
      }
      EXPECT_EQ(*got, best) << K << "x" << N << ": got " << ToString(*got) << ", want "
                            << ToString(best);
    }
  }
}

TEST(KronRearrangeTest, HandExampleMatchesIndexFormula) {
  // W is 4 x 6 with W[i, j] = 10*i + j; shape 2x3 (x) 2x2, so R is 6 x 4.
  const KronShape s{2, 3, 2, 2};
  std::vector<float> w(24);
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 6; ++j) w[i * 6 + j] = static_cast<float>(10 * i + j);
  }
  StatusOr<std::vector<double>> r = Rearrange(w.data(), 4, 6, s);
  ASSERT_TRUE(r.ok()) << r.status().message();
  // Row i1*n1 + j1 holds block (i1, j1) of W (a k2 x n2 block), flattened row-major.
  const std::vector<double> expected = {
      0,  1,  10, 11,  // i1 = 0, j1 = 0
      2,  3,  12, 13,  // i1 = 0, j1 = 1
      4,  5,  14, 15,  // i1 = 0, j1 = 2
      20, 21, 30, 31,  // i1 = 1, j1 = 0
      22, 23, 32, 33,  // i1 = 1, j1 = 1
      24, 25, 34, 35,  // i1 = 1, j1 = 2
  };
  EXPECT_EQ(*r, expected);
  for (int64_t i1 = 0; i1 < s.k1; ++i1) {
    for (int64_t j1 = 0; j1 < s.n1; ++j1) {
      for (int64_t i2 = 0; i2 < s.k2; ++i2) {
        for (int64_t j2 = 0; j2 < s.n2; ++j2) {
          EXPECT_EQ((*r)[(i1 * s.n1 + j1) * 4 + i2 * s.n2 + j2],
                    w[(i1 * s.k2 + i2) * 6 + j1 * s.n2 + j2]);
        }
      }
    }
  }
}

TEST(KronRearrangeTest, KroneckerProductBecomesOuterProduct) {
  const KronShape s{3, 2, 2, 4};
  std::mt19937 rng(7);
  const std::vector<float> a = RandomVector(6, &rng), b = RandomVector(8, &rng);
  const std::vector<float> w = KronSum(s, 1, a, b);
  StatusOr<std::vector<double>> r = Rearrange(w.data(), s.K(), s.N(), s);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 48u);
  for (int p = 0; p < 6; ++p) {
    for (int q = 0; q < 8; ++q) {
      EXPECT_NEAR((*r)[p * 8 + q], static_cast<double>(a[p]) * b[q], 1e-6);
    }
  }
}

TEST(KronRearrangeTest, RejectsBadInput) {
  std::vector<float> w(24, 1.0f);
  EXPECT_EQ(Rearrange(w.data(), 4, 6, {2, 3, 3, 2}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Rearrange(w.data(), 4, 6, {0, 3, 2, 2}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Rearrange(static_cast<const float*>(nullptr), 4, 6, {2, 3, 2, 2}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Rearrange(w.data(), 0, 6, {0, 3, 2, 2}).status().code(), StatusCode::kInvalidArgument);
}

TEST(KronReconstructTest, HandExample) {
  KronFactors f;
  f.shape = {1, 2, 2, 1};  // A = [1 2], B = [1; 10]: W = [[1, 2], [10, 20]]
  f.rank = 1;
  f.a = {1.0f, 2.0f};
  f.b = {1.0f, 10.0f};
  EXPECT_EQ(Reconstruct(f), (std::vector<float>{1, 2, 10, 20}));

  // [[1, 2], [3, 4]] (x) [1 -1]  +  [[1, 0], [0, 0]] (x) [0 5]
  f.shape = {2, 2, 1, 2};
  f.rank = 2;
  f.a = {1, 2, 3, 4, 1, 0, 0, 0};
  f.b = {1, -1, 0, 5};
  EXPECT_EQ(Reconstruct(f), (std::vector<float>{1, 4, 2, -2, 3, -3, 4, -4}));

  f.b.pop_back();  // inconsistent sizes
  EXPECT_TRUE(Reconstruct(f).empty());
}

struct PlantedCase {
  KronShape shape;
  int64_t rank;
};

TEST(KronFactorizeTest, RecoversPlantedSumOfKroneckerProducts) {
  const std::vector<PlantedCase> cases = {
      {{2, 3, 4, 5}, 1}, {{3, 2, 2, 4}, 2},     {{4, 4, 4, 4}, 3},
      {{5, 2, 3, 7}, 4}, {{7, 3, 2, 5}, 3},     {{1, 6, 5, 1}, 2},
      {{6, 1, 1, 6}, 1}, {{16, 16, 16, 16}, 8}, {{3, 8, 9, 2}, 5},
  };
  std::mt19937 rng(20240611);
  for (const PlantedCase& c : cases) {
    SCOPED_TRACE(ToString(c.shape) + " rank " + std::to_string(c.rank));
    const KronShape& s = c.shape;
    const std::vector<float> a = RandomVector(c.rank * s.k1 * s.n1, &rng);
    const std::vector<float> b = RandomVector(c.rank * s.k2 * s.n2, &rng);
    const std::vector<float> w = KronSum(s, c.rank, a, b);

    StatusOr<KronFactors> f = Factorize(w.data(), s.K(), s.N(), s, c.rank);
    ASSERT_TRUE(f.ok()) << f.status().message();
    EXPECT_EQ(f->shape, s);
    EXPECT_EQ(f->rank, c.rank);
    ASSERT_EQ(f->a.size(), static_cast<size_t>(c.rank * s.k1 * s.n1));
    ASSERT_EQ(f->b.size(), static_cast<size_t>(c.rank * s.k2 * s.n2));
    ASSERT_EQ(f->singular_values.size(), static_cast<size_t>(s.MaxRank()));
    EXPECT_NEAR(f->frobenius_norm, FrobeniusNorm(w), 1e-12 * FrobeniusNorm(w));
    EXPECT_LT(f->relative_error, 1e-6);
    EXPECT_LT(DenseRelativeError(w, Reconstruct(*f)), 1e-6);
    // Independent of Reconstruct: the factors through the primer's formula give W back.
    EXPECT_LT(DenseRelativeError(w, KronSum(s, c.rank, f->a, f->b)), 1e-6);
    // The spectrum has exactly `rank` significant values.
    const std::vector<double>& sv = f->singular_values;
    EXPECT_GT(sv[c.rank - 1], 1e-3 * sv[0]);
    for (size_t t = c.rank; t < sv.size(); ++t) EXPECT_LT(sv[t], 1e-6 * sv[0]) << "t=" << t;
  }
}

TEST(KronFactorizeTest, FullRankReproducesW) {
  const std::vector<KronShape> shapes = {{2, 3, 4, 5}, {3, 3, 3, 3}, {1, 2, 1, 3},
                                         {5, 1, 1, 7}, {4, 2, 2, 8}, {8, 8, 4, 2}};
  std::mt19937 rng(42);
  for (const KronShape& s : shapes) {
    SCOPED_TRACE(ToString(s));
    const std::vector<float> w = RandomVector(s.K() * s.N(), &rng);
    StatusOr<KronFactors> f = Factorize(w.data(), s.K(), s.N(), s, s.MaxRank());
    ASSERT_TRUE(f.ok()) << f.status().message();
    EXPECT_EQ(f->relative_error, 0.0);  // nothing discarded
    const std::vector<float> w_hat = Reconstruct(*f);
    ASSERT_EQ(w_hat.size(), w.size());
    float max_abs = 0.0f, max_diff = 0.0f;
    for (size_t i = 0; i < w.size(); ++i) {
      max_abs = std::max(max_abs, std::fabs(w[i]));
      max_diff = std::max(max_diff, std::fabs(w[i] - w_hat[i]));
    }
    EXPECT_LT(max_diff, 1e-5f * max_abs);
    EXPECT_LT(DenseRelativeError(w, w_hat), 1e-6);
  }
}

TEST(KronFactorizeTest, ReportedErrorEqualsDenseError) {
  const std::vector<KronShape> shapes = {{3, 4, 4, 5}, {8, 4, 4, 8}, {2, 16, 16, 2}, {6, 5, 3, 3}};
  std::mt19937 rng(1234);
  for (const KronShape& s : shapes) {
    const std::vector<float> w = RandomVector(s.K() * s.N(), &rng);
    const double norm = FrobeniusNorm(w);
    double previous_error = std::numeric_limits<double>::infinity();
    for (int64_t rank : {int64_t{1}, int64_t{2}, s.MaxRank() / 2, s.MaxRank() - 1}) {
      SCOPED_TRACE(ToString(s) + " rank " + std::to_string(rank));
      StatusOr<KronFactors> f = Factorize(w.data(), s.K(), s.N(), s, rank);
      ASSERT_TRUE(f.ok()) << f.status().message();
      const double dense = DenseRelativeError(w, Reconstruct(*f));
      EXPECT_NEAR(f->relative_error, dense, 1e-5 * dense);
      EXPECT_GT(f->relative_error, 1e-3);  // random W is far from low Kronecker rank
      EXPECT_LE(f->relative_error, previous_error);
      previous_error = f->relative_error;

      // ||W - W_hat||^2 = ||W||^2 - sum of kept sigma^2; the whole spectrum carries ||W||^2.
      const std::vector<double>& sv = f->singular_values;
      ASSERT_EQ(sv.size(), static_cast<size_t>(s.MaxRank()));
      EXPECT_TRUE(std::is_sorted(sv.rbegin(), sv.rend()));
      double kept = 0.0, total = 0.0;
      for (size_t t = 0; t < sv.size(); ++t) {
        total += sv[t] * sv[t];
        if (static_cast<int64_t>(t) < rank) kept += sv[t] * sv[t];
      }
      EXPECT_NEAR(total, norm * norm, 1e-10 * norm * norm);
      EXPECT_NEAR(f->relative_error * f->relative_error, (total - kept) / total, 1e-10);
    }
  }
}

// The randomized path with float32 subspace passes: its reported error is the exact error of the
// factors it returns (a dense reconstruction's, in double), for a weight far from low Kronecker
// rank and for one close to it; float64 passes give the same error to float32 accuracy.
// The reported error of the randomized path against a direct reconstruction from the factors as
// stored (float values, summed in double), from errors near 1 down past kIdentityMinRelativeError
// (where Factorize measures the residual itself instead of using the identity): equal to 2e-9 of
// the error (the identity's rounding, docs/performance.md) or 1e-14 of ||W||, whichever is larger.
TEST(KronFactorizeTest, RandomizedErrorIsExactAboveAndBelowTheIdentityThreshold) {
  const KronShape s{24, 32, 32, 24};  // R is 768 x 768: randomized under kAuto
  std::mt19937 rng(99);
  const std::vector<float> noise = RandomVector(s.K() * s.N(), &rng);
  const std::vector<float> a = RandomVector(6 * s.k1 * s.n1, &rng);
  const std::vector<float> b = RandomVector(6 * s.k2 * s.n2, &rng);
  const std::vector<float> planted = KronSum(s, 6, a, b);
  const double ratio = FrobeniusNorm(planted) / FrobeniusNorm(noise);
  bool below = false, above = false;
  for (double level : {10.0, 0.3, 0.03, 3e-3, 3e-4, 3e-5, 3e-6}) {
    std::vector<float> w(planted);
    for (size_t i = 0; i < w.size(); ++i) w[i] += static_cast<float>(level * ratio * noise[i]);
    const std::vector<double> wd(w.begin(), w.end());
    SCOPED_TRACE("noise " + std::to_string(level));
    StatusOr<KronFactors> f = Factorize(w.data(), s.K(), s.N(), s, 6);
    ASSERT_TRUE(f.ok()) << f.status().message();
    EXPECT_EQ(f->method, SvdMethod::kRandomized);
    const double dense = DenseRelativeError(wd, KronSum<double>(s, 6, f->a, f->b));
    EXPECT_NEAR(f->relative_error, dense, std::max(2e-9 * dense, 1e-14));
    (dense < kIdentityMinRelativeError ? below : above) = true;
  }
  EXPECT_TRUE(below && above);
}

TEST(KronFactorizeTest, RandomizedFloat32ErrorEqualsDenseErrorAndMatchesFloat64) {
  const KronShape s{24, 32, 32, 24};  // R is 768 x 768: randomized under kAuto
  std::mt19937 rng(4321);
  const std::vector<float> noise = RandomVector(s.K() * s.N(), &rng);
  const std::vector<float> a = RandomVector(6 * s.k1 * s.n1, &rng);
  const std::vector<float> b = RandomVector(6 * s.k2 * s.n2, &rng);
  const std::vector<float> planted = KronSum(s, 6, a, b);
  const double ratio = FrobeniusNorm(planted) / FrobeniusNorm(noise);
  for (double level : {10.0, 0.01}) {  // noise / planted
    std::vector<float> w(planted);
    for (size_t i = 0; i < w.size(); ++i) w[i] += static_cast<float>(level * ratio * noise[i]);
    for (int64_t rank : {int64_t{1}, int64_t{6}}) {
      SCOPED_TRACE("noise " + std::to_string(level) + " rank " + std::to_string(rank));
      FactorizeOptions f32_options, f64_options;
      f64_options.svd.precision = SvdPrecision::kFloat64;
      StatusOr<KronFactors> f32 = Factorize(w.data(), s.K(), s.N(), s, rank, f32_options);
      StatusOr<KronFactors> f64 = Factorize(w.data(), s.K(), s.N(), s, rank, f64_options);
      ASSERT_TRUE(f32.ok() && f64.ok());
      EXPECT_EQ(f32->method, SvdMethod::kRandomized);
      EXPECT_TRUE(f32->float32_passes);
      EXPECT_FALSE(f64->float32_passes);
      for (const KronFactors* f : {&*f32, &*f64}) {
        const double dense = DenseRelativeError(w, KronSum(s, rank, f->a, f->b));
        // Float factors add at most about 6e-8 relative; the identity itself holds to 1e-8.
        EXPECT_NEAR(f->relative_error, dense, 2e-7);
      }
      EXPECT_NEAR(f32->relative_error, f64->relative_error, 1e-6 * f64->relative_error);
    }
  }
}

std::vector<double> RandomDoubles(size_t size, std::mt19937* rng) {
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<double> v(size);
  for (double& x : v) x = dist(*rng);
  return v;
}

// A float64 W = sum_{t < rank} A_t (x) B_t + 1e-9 * A_rank (x) B_rank: its last term is below
// what float32 can resolve (rounding W to float32 alone costs about 3e-8 relative).
std::vector<double> PlantedWithTinyTerm(const KronShape& s, int64_t rank, std::mt19937* rng) {
  std::vector<double> a = RandomDoubles((rank + 1) * s.k1 * s.n1, rng);
  const std::vector<double> b = RandomDoubles((rank + 1) * s.k2 * s.n2, rng);
  for (int64_t p = rank * s.k1 * s.n1; p < (rank + 1) * s.k1 * s.n1; ++p) a[p] *= 1e-9;
  return KronSum<double>(s, rank + 1, a, b);
}

// Exact path, float64 W: factorized in double, factors kept in double, the error the exact one.
TEST(KronFactorizeTest, Float64TinyTermIsRecoveredToDoublePrecision) {
  const KronShape s{4, 5, 6, 3};  // R is 20 x 18
  std::mt19937 rng(64);
  const std::vector<double> w = PlantedWithTinyTerm(s, 2, &rng);

  StatusOr<KronFactors> full = Factorize(w.data(), s.K(), s.N(), s, 3);
  ASSERT_TRUE(full.ok()) << full.status().message();
  EXPECT_EQ(full->method, SvdMethod::kExact);
  EXPECT_LT(full->relative_error, 1e-13);
  EXPECT_LT(DenseRelativeError(w, Reconstruct<double>(*full)), 1e-13);
  EXPECT_LT(DenseRelativeError(w, KronSum<double>(s, 3, full->a, full->b)), 1e-13);
  EXPECT_LT(FactorsError(*full, w.data()), 1e-13);
  // The factors are full doubles, not float32 values.
  EXPECT_TRUE(std::any_of(full->a.begin(), full->a.end(),
                          [](double v) { return v != static_cast<float>(v); }));

  // Without the tiny term: the error is its share, about 1e-9, and exact to about 1e-16.
  StatusOr<KronFactors> two = Factorize(w.data(), s.K(), s.N(), s, 2);
  ASSERT_TRUE(two.ok()) << two.status().message();
  const double dense = DenseRelativeError(w, Reconstruct<double>(*two));
  EXPECT_GT(dense, 1e-11);
  EXPECT_LT(dense, 1e-8);
  EXPECT_NEAR(two->relative_error, dense, 1e-14);
  EXPECT_NEAR(FactorsError(*two, w.data()), dense, 1e-14);

  // Rounding W to float32 first (what the float overload gets) cannot resolve the tiny term.
  const std::vector<float> rounded(w.begin(), w.end());
  StatusOr<KronFactors> f32 = Factorize(rounded.data(), s.K(), s.N(), s, 3);
  ASSERT_TRUE(f32.ok()) << f32.status().message();
  EXPECT_GT(FactorsError(*f32, w.data()), 1e-9);
  // Its factors are float32 values (stored in double).
  for (double v : f32->a) ASSERT_EQ(v, static_cast<float>(v));
  for (double v : f32->b) ASSERT_EQ(v, static_cast<float>(v));
}

// Randomized path, float64 W: every pass in double, and the error measured from the factors, where
// sqrt(||W||^2 - sum s_t^2) would have cancelled to nothing.
TEST(KronFactorizeTest, Float64RandomizedErrorEqualsDenseErrorBelowFloat32Reach) {
  const KronShape s{24, 32, 32, 24};  // R is 768 x 768: randomized under kAuto
  std::mt19937 rng(6464);
  const std::vector<double> w = PlantedWithTinyTerm(s, 4, &rng);
  for (int64_t rank : {int64_t{4}, int64_t{5}}) {
    SCOPED_TRACE("rank " + std::to_string(rank));
    StatusOr<KronFactors> f = Factorize(w.data(), s.K(), s.N(), s, rank);
    ASSERT_TRUE(f.ok()) << f.status().message();
    EXPECT_EQ(f->method, SvdMethod::kRandomized);
    EXPECT_FALSE(f->float32_passes);
    const double dense = DenseRelativeError(w, KronSum<double>(s, rank, f->a, f->b));
    EXPECT_NEAR(f->relative_error, dense, 1e-14);
    if (rank == 4) {
      EXPECT_GT(f->relative_error, 1e-11);
      EXPECT_LT(f->relative_error, 1e-8);
    } else {
      EXPECT_LT(f->relative_error, 1e-12);
    }
  }
}

TEST(KronFactorizeTest, SignsAndBitsAreDeterministic) {
  const KronShape s{4, 6, 5, 3};
  std::mt19937 rng(99);
  const std::vector<float> w = RandomVector(s.K() * s.N(), &rng);
  StatusOr<KronFactors> f1 = Factorize(w.data(), s.K(), s.N(), s, 5);
  StatusOr<KronFactors> f2 = Factorize(w.data(), s.K(), s.N(), s, 5);
  ASSERT_TRUE(f1.ok() && f2.ok());
  ASSERT_EQ(f1->a.size(), f2->a.size());
  ASSERT_EQ(f1->b.size(), f2->b.size());
  EXPECT_EQ(std::memcmp(f1->a.data(), f2->a.data(), f1->a.size() * sizeof(f1->a[0])), 0);
  EXPECT_EQ(std::memcmp(f1->b.data(), f2->b.data(), f1->b.size() * sizeof(f1->b[0])), 0);
  EXPECT_EQ(f1->singular_values, f2->singular_values);
  EXPECT_EQ(f1->relative_error, f2->relative_error);

  // Sign rule: in each A_t the entry of largest magnitude (lowest index on ties) is positive.
  const int64_t m = s.k1 * s.n1, n = s.k2 * s.n2;
  for (int64_t t = 0; t < 5; ++t) {
    const double* a_t = f1->a.data() + t * m;
    const int64_t arg =
        std::max_element(a_t, a_t + m,
                         [](double x, double y) { return std::fabs(x) < std::fabs(y); }) -
        a_t;
    EXPECT_GT(a_t[arg], 0.0) << "term " << t;
  }

  // Negating W keeps A_t and negates B_t: the sign is fixed by A, not by LAPACK's choice.
  std::vector<float> neg = w;
  for (float& x : neg) x = -x;
  StatusOr<KronFactors> fn = Factorize(neg.data(), s.K(), s.N(), s, 5);
  ASSERT_TRUE(fn.ok());
  for (int64_t i = 0; i < 5 * m; ++i) EXPECT_NEAR(fn->a[i], f1->a[i], 1e-5) << "a[" << i << "]";
  for (int64_t i = 0; i < 5 * n; ++i) EXPECT_NEAR(fn->b[i], -f1->b[i], 1e-5) << "b[" << i << "]";
}

TEST(KronFactorizeTest, ZeroMatrixHasDefinedResult) {
  const KronShape s{2, 3, 3, 2};
  const std::vector<float> w(s.K() * s.N(), 0.0f);
  StatusOr<KronFactors> f = Factorize(w.data(), s.K(), s.N(), s, 2);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->frobenius_norm, 0.0);
  EXPECT_EQ(f->relative_error, 0.0);
  ASSERT_EQ(f->singular_values.size(), 6u);
  for (double sv : f->singular_values) EXPECT_EQ(sv, 0.0);
  for (float x : f->a) EXPECT_EQ(x, 0.0f);
  for (float x : f->b) EXPECT_EQ(x, 0.0f);
  for (float x : Reconstruct(*f)) EXPECT_EQ(x, 0.0f);
}

TEST(KronFactorizeTest, RejectsBadDimensionsShapesAndRanks) {
  const std::vector<float> w(36, 1.0f);
  auto code = [&](int64_t K, int64_t N, KronShape s, int64_t rank) {
    return Factorize(w.data(), K, N, s, rank).status().code();
  };
  EXPECT_EQ(code(0, 6, {1, 2, 0, 3}, 1), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(6, -6, {2, 2, 3, 3}, 1), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(6, 6, {0, 2, 3, 3}, 1), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(6, 6, {2, 2, -3, -3}, 1), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(6, 6, {2, 2, 3, 2}, 1), StatusCode::kInvalidArgument);   // N mismatch
  EXPECT_EQ(code(6, 6, {4, 2, 3, 3}, 1), StatusCode::kInvalidArgument);   // K mismatch
  EXPECT_EQ(code(6, 6, {2, 2, 3, 3}, 0), StatusCode::kInvalidArgument);   // rank 0
  EXPECT_EQ(code(6, 6, {2, 2, 3, 3}, -1), StatusCode::kInvalidArgument);  // negative rank
  EXPECT_EQ(code(6, 6, {2, 2, 3, 3}, 4), StatusCode::kOk);                // largest useful rank

  StatusOr<KronFactors> f = Factorize(w.data(), 6, 6, {2, 2, 3, 3}, 9);
  EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(
      f.status().message().find("rank 9 exceeds the largest useful rank 4 for shape 2x2 (x) 3x3"),
      std::string::npos)
      << f.status().message();

  f = Factorize(w.data(), 6, 6, {2, 3, 3, 3}, 1);
  EXPECT_NE(f.status().message().find("does not divide"), std::string::npos)
      << f.status().message();

  EXPECT_EQ(Factorize(static_cast<const double*>(nullptr), 6, 6, {2, 2, 3, 3}, 1).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(KronFactorizeTest, RejectsNonFiniteWeights) {
  const KronShape s{2, 4, 3, 2};  // K = 6, N = 8
  std::vector<float> w(48, 0.5f);
  w[3 * 8 + 7] = std::numeric_limits<float>::quiet_NaN();
  StatusOr<KronFactors> f = Factorize(w.data(), 6, 8, s, 1);
  EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(f.status().message().find("weight has a NaN at row 3, column 7"), std::string::npos)
      << f.status().message();

  w[3 * 8 + 7] = 0.5f;
  w[5 * 8 + 0] = -std::numeric_limits<float>::infinity();
  f = Factorize(w.data(), 6, 8, s, 1);
  EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(f.status().message().find("infinity at row 5, column 0"), std::string::npos)
      << f.status().message();

  w[5 * 8 + 0] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(Factorize(w.data(), 6, 8, s, 1).status().code(), StatusCode::kInvalidArgument);
}

TEST(KronFactorizeTest, RejectsSizesThatOverflowWithoutTouchingData) {
  // The weight pointer is never read: validation comes first.
  const float dummy = 1.0f;
  const int64_t big = int64_t{1} << 40;
  const int64_t half = int64_t{1} << 20;
  // K*N = 2^80 does not fit int64.
  StatusOr<KronFactors> f = Factorize(&dummy, big, big, {half, half, half, half}, 1);
  EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument);
  // k1*k2 overflows int64.
  f = Factorize(&dummy, 4, 4, {int64_t{1} << 62, 1, 4, 4}, 1);
  EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Rearrange(&dummy, big, big, {half, half, half, half}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(KronFactorizeTest, RejectsMatricesBeyondLapackInt) {
  if (sizeof(lapack_int) > 4) GTEST_SKIP() << "LAPACK uses 64-bit integers";
  const float dummy = 1.0f;
  // K*N = 2^32 fits int64, but R (2^24 x 2^8) has more elements than a 32-bit lapack_int indexes.
  const KronShape s{int64_t{1} << 16, int64_t{1} << 8, 1, int64_t{1} << 8};
  StatusOr<KronFactors> f = Factorize(&dummy, s.K(), s.N(), s, 1);
  EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(f.status().message().find("LAPACK"), std::string::npos) << f.status().message();
}

}  // namespace
}  // namespace kfc::kron
