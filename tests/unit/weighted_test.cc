// SPDX-License-Identifier: Apache-2.0
// Calibrated factorization (kron/weighted.h): statistics, exact whitening for low-rank shapes,
// Kronecker-factored whitening plus ALS for the others, and the never-worse guarantee.
#include "kfc/kron/weighted.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tests/support/test_util.h"

namespace kfc::kron {
namespace {

// n rows of K correlated inputs: x = z M + offset, z standard normal, M random (K x K) scaled so
// that a few directions dominate (like real activations).
std::vector<float> CorrelatedRows(int64_t n, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, 1.0);
  std::vector<double> m(static_cast<size_t>(K * K));
  for (int64_t i = 0; i < K; ++i) {
    const double scale = std::pow(0.8, static_cast<double>(i));
    for (int64_t j = 0; j < K; ++j) m[static_cast<size_t>(i * K + j)] = scale * g(rng);
  }
  std::vector<float> x(static_cast<size_t>(n * K));
  for (int64_t r = 0; r < n; ++r) {
    std::vector<double> z(static_cast<size_t>(K));
    for (auto& v : z) v = g(rng);
    for (int64_t j = 0; j < K; ++j) {
      double s = 0.3 + 0.01 * static_cast<double>(j);
      for (int64_t i = 0; i < K; ++i) s += z[i] * m[static_cast<size_t>(i * K + j)];
      x[static_cast<size_t>(r * K + j)] = static_cast<float>(s);
    }
  }
  return x;
}

InputStats StatsOf(const std::vector<float>& x, int64_t K) {
  StatsAccumulator acc(K);
  const int64_t n = static_cast<int64_t>(x.size()) / K;
  EXPECT_TRUE(acc.Add(x.data(), n / 3).ok());  // in two pieces: streaming must not matter
  EXPECT_TRUE(acc.Add(x.data() + (n / 3) * K, n - n / 3).ok());
  auto st = acc.Finish();
  EXPECT_TRUE(st.ok()) << st.status().message();
  return *st;
}

// ||Xc (W - W_hat)||_F / ||Xc W||_F computed directly on the rows, centered (bias corrected).
double DirectDataError(const std::vector<float>& x, const InputStats& st,
                       const std::vector<float>& w, const std::vector<float>& w_hat, int64_t K,
                       int64_t N) {
  const int64_t n = static_cast<int64_t>(x.size()) / K;
  double num = 0, den = 0;
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < N; ++j) {
      double yd = 0, y = 0;
      for (int64_t i = 0; i < K; ++i) {
        const double xc = x[static_cast<size_t>(r * K + i)] - st.mean[static_cast<size_t>(i)];
        y += xc * w[static_cast<size_t>(i * N + j)];
        yd += xc * (w[static_cast<size_t>(i * N + j)] - w_hat[static_cast<size_t>(i * N + j)]);
      }
      num += yd * yd;
      den += y * y;
    }
  }
  return std::sqrt(num / den);
}

TEST(WeightedTest, StatisticsMatchADirectComputation) {
  const int64_t K = 6;
  const auto x = CorrelatedRows(50, K, 1);
  const InputStats st = StatsOf(x, K);
  EXPECT_EQ(st.count, 50);
  for (int64_t i = 0; i < K; ++i) {
    double mean = 0;
    for (int64_t r = 0; r < 50; ++r) mean += x[static_cast<size_t>(r * K + i)];
    mean /= 50;
    EXPECT_NEAR(st.mean[i], mean, 1e-9);
    for (int64_t j = 0; j < K; ++j) {
      double c = 0, mj = 0;
      for (int64_t r = 0; r < 50; ++r) mj += x[static_cast<size_t>(r * K + j)];
      mj /= 50;
      for (int64_t r = 0; r < 50; ++r) {
        c += (x[static_cast<size_t>(r * K + i)] - mean) * (x[static_cast<size_t>(r * K + j)] - mj);
      }
      EXPECT_NEAR(st.covariance[static_cast<size_t>(i * K + j)], c / 50, 1e-9);
    }
  }
}

TEST(WeightedTest, BadRowsAreErrors) {
  StatsAccumulator acc(3);
  const float bad[] = {1.0f, NAN, 2.0f};
  auto s = acc.Add(bad, 1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("NaN at row 0, column 1"), std::string::npos) << s.message();
  StatsAccumulator one(3);
  const float row[] = {1, 2, 3};
  ASSERT_TRUE(one.Add(row, 1).ok());
  EXPECT_FALSE(one.Finish().ok());
}

TEST(WeightedTest, CalibratedErrorIsNoWorseThanWeightOnlyForEveryShapeFamily) {
  const int64_t K = 24, N = 20;
  const auto x = CorrelatedRows(400, K, 2);
  const InputStats st = StatsOf(x, K);
  const auto w = testing::RandomVector(static_cast<size_t>(K * N), 3);
  const KronShape shapes[] = {
      {K, 1, 1, N}, {1, N, K, 1}, {4, 4, 6, 5}, {6, 2, 4, 10}, {2, 10, 12, 2}};
  for (const auto& shape : shapes) {
    for (int64_t rank : {1, 3}) {
      auto f = FactorizeWeighted(w.data(), K, N, shape, rank, st);
      ASSERT_TRUE(f.ok()) << f.status().message();
      SCOPED_TRACE(std::to_string(shape.k1) + "x" + std::to_string(shape.n1) + " rank " +
                   std::to_string(rank));
      EXPECT_LE(f->data_error, f->weight_only_data_error + 1e-12);
      const auto w_hat = Reconstruct(f->factors);
      // The reported data error is the output error on the calibration rows, bias corrected.
      EXPECT_NEAR(f->data_error, DirectDataError(x, st, w, w_hat, K, N), 1e-6);
      // The reported weight error is exact for the factors returned.
      double d2 = 0, n2 = 0;
      for (size_t i = 0; i < w.size(); ++i) {
        d2 += (double(w[i]) - w_hat[i]) * (double(w[i]) - w_hat[i]);
        n2 += double(w[i]) * w[i];
      }
      EXPECT_NEAR(f->factors.relative_error, std::sqrt(d2 / n2), 1e-9);
      ASSERT_EQ(f->bias_correction.size(), static_cast<size_t>(N));
    }
  }
  // On correlated inputs calibration helps clearly for the low-rank shape.
  auto lr = FactorizeWeighted(w.data(), K, N, {K, 1, 1, N}, 3, st);
  ASSERT_TRUE(lr.ok());
  EXPECT_LT(lr->data_error, 0.9 * lr->weight_only_data_error);
  EXPECT_FALSE(lr->used_weight_only);
}

// Two planted terms of 4x4 (x) 6x5: a 24 x 20 weight of Kronecker rank 2.
KronFactors PlantedTwoTerms(uint32_t seed) {
  KronFactors planted;
  planted.shape = {4, 4, 6, 5};
  planted.rank = 2;
  const std::vector<float> a = testing::RandomVector(2 * 16, seed);
  const std::vector<float> b = testing::RandomVector(2 * 30, seed + 1);
  planted.a.assign(a.begin(), a.end());
  planted.b.assign(b.begin(), b.end());
  return planted;
}

TEST(WeightedTest, PlantedKroneckerSumIsStillRecoveredExactly) {
  const int64_t K = 24, N = 20;
  const KronFactors planted = PlantedTwoTerms(4);
  const auto w = Reconstruct(planted);
  const InputStats st = StatsOf(CorrelatedRows(300, K, 6), K);
  auto f = FactorizeWeighted(w.data(), K, N, planted.shape, 2, st);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_LT(f->data_error, 1e-5);
  EXPECT_LT(f->factors.relative_error, 1e-5);
}

TEST(WeightedTest, AlsNeverIncreasesTheDataError) {
  const int64_t K = 24, N = 20;
  const InputStats st = StatsOf(CorrelatedRows(400, K, 7), K);
  const auto w = testing::RandomVector(static_cast<size_t>(K * N), 8);
  const KronShape shape{4, 4, 6, 5};
  auto start = FactorizeWeighted(w.data(), K, N, shape, 2, st, /*max_als_iterations=*/0);
  auto refined = FactorizeWeighted(w.data(), K, N, shape, 2, st, /*max_als_iterations=*/8);
  ASSERT_TRUE(start.ok() && refined.ok());
  EXPECT_EQ(start->als_iterations, 0);
  EXPECT_GE(refined->als_iterations, 1);
  EXPECT_LE(refined->data_error, start->data_error + 1e-12);
}

TEST(WeightedTest, MismatchedStatisticsAreAnError) {
  const InputStats st = StatsOf(CorrelatedRows(50, 6, 9), 6);
  const auto w = testing::RandomVector(8 * 4, 10);
  auto f = FactorizeWeighted(w.data(), 8, 4, {2, 2, 4, 2}, 1, st);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("K = 6"), std::string::npos) << f.status().message();
}

// --- Kronecker-factored statistics (K too large for K x K) ---

InputStats FactoredOf(const std::vector<float>& x, int64_t k1, int64_t k2) {
  FactoredStatsAccumulator acc(k1, k2);
  const int64_t K = k1 * k2, n = static_cast<int64_t>(x.size()) / K;
  EXPECT_TRUE(acc.Add(x.data(), n / 2).ok());
  EXPECT_TRUE(acc.Add(x.data() + (n / 2) * K, n - n / 2).ok());
  auto st = acc.Finish();
  EXPECT_TRUE(st.ok()) << st.status().message();
  return *st;
}

TEST(WeightedFactoredTest, FactorsAreThePartialTracesOfTheCovariance) {
  const int64_t k1 = 4, k2 = 6, K = k1 * k2;
  const auto x = CorrelatedRows(300, K, 21);
  const InputStats full = StatsOf(x, K);
  const InputStats kf = FactoredOf(x, k1, k2);
  ASSERT_TRUE(kf.factored());
  EXPECT_TRUE(kf.covariance.empty());
  EXPECT_EQ(kf.count, 300);
  for (int64_t i = 0; i < K; ++i) EXPECT_NEAR(kf.mean[i], full.mean[i], 1e-12);
  // c1[a][b] = sum_j C[(a, j), (b, j)], c2[a][b] = sum_i C[(i, a), (i, b)].
  for (int64_t a = 0; a < k1; ++a) {
    for (int64_t b = 0; b < k1; ++b) {
      double want = 0;
      for (int64_t j = 0; j < k2; ++j) want += full.covariance[(a * k2 + j) * K + b * k2 + j];
      EXPECT_NEAR(kf.c1[a * k1 + b], want, 1e-9 * (1 + std::fabs(want)));
    }
  }
  for (int64_t a = 0; a < k2; ++a) {
    for (int64_t b = 0; b < k2; ++b) {
      double want = 0;
      for (int64_t i = 0; i < k1; ++i) want += full.covariance[(i * k2 + a) * K + i * k2 + b];
      EXPECT_NEAR(kf.c2[a * k2 + b], want, 1e-9 * (1 + std::fabs(want)));
    }
  }
  std::vector<float> bad(static_cast<size_t>(K), 1.0f);
  bad[7] = std::nanf("");
  FactoredStatsAccumulator acc(k1, k2);
  EXPECT_FALSE(acc.Add(bad.data(), 1).ok());
}

// Rows x = z (L1 (x) L2)^T: their covariance is exactly a Kronecker product, so the factored
// metric equals the true one and the calibrated error is the output error on the rows.
TEST(WeightedFactoredTest, OnKroneckerCovarianceTheFactoredErrorIsTheOutputError) {
  const int64_t k1 = 4, k2 = 6, K = k1 * k2, N = 20, n = 4000;
  std::mt19937 rng(31);
  std::normal_distribution<double> g(0.0, 1.0);
  std::vector<double> l1(k1 * k1), l2(k2 * k2);
  for (auto& v : l1) v = g(rng);
  for (auto& v : l2) v = g(rng);
  std::vector<float> x(static_cast<size_t>(n * K));
  for (int64_t r = 0; r < n; ++r) {
    std::vector<double> z(K);
    for (auto& v : z) v = g(rng);
    for (int64_t i1 = 0; i1 < k1; ++i1)
      for (int64_t i2 = 0; i2 < k2; ++i2) {
        double s = 0.5;
        for (int64_t j1 = 0; j1 < k1; ++j1)
          for (int64_t j2 = 0; j2 < k2; ++j2)
            s += l1[i1 * k1 + j1] * l2[i2 * k2 + j2] * z[j1 * k2 + j2];
        x[static_cast<size_t>(r * K + i1 * k2 + i2)] = static_cast<float>(s);
      }
  }
  const InputStats kf = FactoredOf(x, k1, k2);
  const InputStats full = StatsOf(x, K);
  const auto w = testing::RandomVector(static_cast<size_t>(K * N), 32);
  const KronShape shape{k1, 4, k2, 5};
  for (int64_t rank : {1, 3}) {
    auto f = FactorizeWeighted(w.data(), K, N, shape, rank, kf);
    ASSERT_TRUE(f.ok()) << f.status().message();
    EXPECT_LE(f->data_error, f->weight_only_data_error + 1e-12);
    const auto w_hat = Reconstruct(f->factors);
    // Sampling makes the covariance Kronecker only approximately: a few percent.
    const double direct = DirectDataError(x, full, w, w_hat, K, N);
    EXPECT_NEAR(f->data_error, direct, 0.05 * direct) << "rank " << rank;
    EXPECT_NEAR(f->data_error, DataRelativeError(w.data(), w_hat, K, N, kf), 1e-12);
    ASSERT_EQ(f->bias_correction.size(), static_cast<size_t>(N));
  }
  // Calibration helps on these strongly correlated inputs.
  auto f = FactorizeWeighted(w.data(), K, N, shape, 2, kf);
  ASSERT_TRUE(f.ok());
  EXPECT_LT(f->data_error, 0.9 * f->weight_only_data_error);
}

TEST(WeightedFactoredTest, PlantedSumIsRecoveredAndOtherSplitsAreRefused) {
  const int64_t K = 24, N = 20;
  const KronFactors planted = PlantedTwoTerms(33);
  const auto w = Reconstruct(planted);
  const InputStats kf = FactoredOf(CorrelatedRows(300, K, 35), 4, 6);
  auto f = FactorizeWeighted(w.data(), K, N, planted.shape, 2, kf);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_LT(f->data_error, 1e-5);
  EXPECT_LT(f->factors.relative_error, 1e-5);
  auto other = FactorizeWeighted(w.data(), K, N, {6, 5, 4, 4}, 1, kf);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("factored for k1 = 4"), std::string::npos)
      << other.status().message();
}

}  // namespace
}  // namespace kfc::kron
