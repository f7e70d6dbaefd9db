// SPDX-License-Identifier: Apache-2.0
// Error compensation (kron/compensate.h): the streamed statistics and objective against direct
// computations on the rows, the full-rank optimum against a direct least-squares solve, and the
// never-worse rule against the plain calibrated factors.
#include "kfc/kron/compensate.h"

#include <gtest/gtest.h>
#include <lapacke.h>

#include <cmath>
#include <random>

namespace kfc::kron {
namespace {

struct Data {
  int64_t n = 0, K = 0, N = 0;
  std::vector<float> x, xt, w;
};

// x: correlated rows with a few dominant directions; x~ = x P + noise + shift, a distorted copy
// (what an earlier compressed layer makes of it); W random K x N.
Data MakeData(int64_t n, int64_t K, int64_t N, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, 1.0);
  Data d;
  d.n = n;
  d.K = K;
  d.N = N;
  std::vector<double> m(static_cast<size_t>(K * K)), p(static_cast<size_t>(K * K));
  for (int64_t i = 0; i < K; ++i) {
    const double scale = std::pow(0.8, static_cast<double>(i));
    for (int64_t j = 0; j < K; ++j) {
      m[static_cast<size_t>(i * K + j)] = scale * g(rng);
      p[static_cast<size_t>(i * K + j)] = (i == j ? 1.0 : 0.0) + 0.15 * g(rng);
    }
  }
  d.x.resize(static_cast<size_t>(n * K));
  d.xt.resize(static_cast<size_t>(n * K));
  for (int64_t r = 0; r < n; ++r) {
    std::vector<double> z(static_cast<size_t>(K));
    for (auto& v : z) v = g(rng);
    std::vector<double> row(static_cast<size_t>(K));
    for (int64_t j = 0; j < K; ++j) {
      double s = 0.3 + 0.01 * static_cast<double>(j);
      for (int64_t i = 0; i < K; ++i) s += z[i] * m[static_cast<size_t>(i * K + j)];
      row[static_cast<size_t>(j)] = s;
      d.x[static_cast<size_t>(r * K + j)] = static_cast<float>(s);
    }
    for (int64_t j = 0; j < K; ++j) {
      double s = 0.05 + 0.1 * g(rng);
      for (int64_t i = 0; i < K; ++i) s += row[i] * p[static_cast<size_t>(i * K + j)];
      d.xt[static_cast<size_t>(r * K + j)] = static_cast<float>(s);
    }
  }
  d.w.resize(static_cast<size_t>(K * N));
  for (auto& v : d.w) v = static_cast<float>(g(rng));
  return d;
}

CompensationStats StatsOf(const Data& d) {
  CompensationAccumulator acc(d.K);
  const int64_t first = d.n / 3;  // in two pieces: streaming must not matter
  EXPECT_TRUE(acc.Add(d.xt.data(), d.x.data(), first).ok());
  EXPECT_TRUE(acc.Add(d.xt.data() + first * d.K, d.x.data() + first * d.K, d.n - first).ok());
  auto st = acc.Finish();
  EXPECT_TRUE(st.ok()) << st.status().message();
  return *st;
}

// sqrt(sum ||x~ W_hat + c - x W||^2 / sum ||(x - mu) W||^2), directly on the rows.
double DirectError(const Data& d, const std::vector<float>& w_hat, const std::vector<float>& c) {
  std::vector<double> mu(static_cast<size_t>(d.K), 0.0);
  for (int64_t r = 0; r < d.n; ++r)
    for (int64_t i = 0; i < d.K; ++i) mu[i] += d.x[static_cast<size_t>(r * d.K + i)];
  for (auto& v : mu) v /= static_cast<double>(d.n);
  double num = 0, den = 0;
  for (int64_t r = 0; r < d.n; ++r) {
    for (int64_t j = 0; j < d.N; ++j) {
      double y = 0, yc = 0, yt = c.empty() ? 0.0 : c[static_cast<size_t>(j)];
      for (int64_t i = 0; i < d.K; ++i) {
        const double wij = d.w[static_cast<size_t>(i * d.N + j)];
        y += d.x[static_cast<size_t>(r * d.K + i)] * wij;
        yc += (d.x[static_cast<size_t>(r * d.K + i)] - mu[i]) * wij;
        yt += d.xt[static_cast<size_t>(r * d.K + i)] * w_hat[static_cast<size_t>(i * d.N + j)];
      }
      num += (yt - y) * (yt - y);
      den += yc * yc;
    }
  }
  return std::sqrt(num / den);
}

TEST(Compensate, ErrorMatchesTheRows) {
  const Data d = MakeData(300, 12, 7, 1);
  const CompensationStats st = StatsOf(d);
  std::vector<float> c(static_cast<size_t>(d.N));
  for (int64_t j = 0; j < d.N; ++j) c[j] = 0.1f * static_cast<float>(j) - 0.2f;
  EXPECT_NEAR(CompensationError(d.w.data(), d.w, c, d.K, d.N, st), DirectError(d, d.w, c), 1e-6);
  std::vector<float> w_hat = d.w;
  for (size_t i = 0; i < w_hat.size(); i += 3) w_hat[i] *= 0.5f;
  EXPECT_NEAR(CompensationError(d.w.data(), w_hat, {}, d.K, d.N, st), DirectError(d, w_hat, {}),
              1e-6);
}

// At full rank, the fit is the ridge least-squares solution
//   min ||X~c W_hat - Xc W||^2 + n rho ||W_hat - W||^2,
// solved here directly on the stacked rows [X~c; sqrt(n rho) I] with LAPACK's dgels.
TEST(Compensate, FullRankMatchesDirectLeastSquares) {
  const Data d = MakeData(400, 10, 6, 2);
  const CompensationStats st = StatsOf(d);
  const int64_t K = d.K, N = d.N, n = d.n;
  double mean_diag = 0;
  for (int64_t i = 0; i < K; ++i) mean_diag += st.cov_tilde[static_cast<size_t>(i * K + i)];
  const double rho = st.lambda * mean_diag / static_cast<double>(K);
  const double s = std::sqrt(static_cast<double>(n) * rho);
  std::vector<double> a(static_cast<size_t>((n + K) * K), 0.0), b(static_cast<size_t>((n + K) * N));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < K; ++i)
      a[static_cast<size_t>(r * K + i)] = d.xt[static_cast<size_t>(r * K + i)] - st.mean_tilde[i];
    for (int64_t j = 0; j < N; ++j) {
      double y = 0;
      for (int64_t i = 0; i < K; ++i)
        y += (d.x[static_cast<size_t>(r * K + i)] - st.mean[i]) *
             d.w[static_cast<size_t>(i * N + j)];
      b[static_cast<size_t>(r * N + j)] = y;
    }
  }
  for (int64_t i = 0; i < K; ++i) {
    a[static_cast<size_t>((n + i) * K + i)] = s;
    for (int64_t j = 0; j < N; ++j)
      b[static_cast<size_t>((n + i) * N + j)] = s * d.w[static_cast<size_t>(i * N + j)];
  }
  ASSERT_EQ(LAPACKE_dgels(LAPACK_ROW_MAJOR, 'N', static_cast<int>(n + K), static_cast<int>(K),
                          static_cast<int>(N), a.data(), static_cast<int>(K), b.data(),
                          static_cast<int>(N)),
            0);
  auto target = CompensationTarget(d.w.data(), K, N, st);
  ASSERT_TRUE(target.ok());
  double scale = 0;
  for (int64_t i = 0; i < K * N; ++i) scale = std::max(scale, std::abs(b[static_cast<size_t>(i)]));
  for (int64_t i = 0; i < K * N; ++i)
    EXPECT_NEAR((*target)[static_cast<size_t>(i)], b[static_cast<size_t>(i)], 1e-4 * scale) << i;

  // The low-rank shape at full rank reproduces it (closed form: whitened truncated SVD).
  const KronShape lowrank{K, 1, 1, N};
  auto plain = Factorize(d.w.data(), K, N, lowrank, std::min(K, N));
  ASSERT_TRUE(plain.ok());
  auto cf = FactorizeCompensated(d.w.data(), K, N, lowrank, std::min(K, N), st, *plain, {});
  ASSERT_TRUE(cf.ok()) << cf.status().message();
  EXPECT_FALSE(cf->used_plain);
  const std::vector<float> w_hat = Reconstruct(cf->factors);
  for (int64_t i = 0; i < K * N; ++i)
    EXPECT_NEAR(w_hat[static_cast<size_t>(i)], b[static_cast<size_t>(i)], 1e-3 * scale) << i;
  EXPECT_NEAR(cf->error, DirectError(d, w_hat, cf->bias_correction), 1e-5);
  EXPECT_LT(cf->error, cf->plain_error);
}

// X~ = X: the target is W itself (the regularizer pulls toward W), so compensation is plain
// calibration.
TEST(Compensate, SameInputsGiveTheWeightBack) {
  Data d = MakeData(200, 8, 5, 3);
  d.xt = d.x;
  const CompensationStats st = StatsOf(d);
  auto target = CompensationTarget(d.w.data(), d.K, d.N, st);
  ASSERT_TRUE(target.ok());
  for (size_t i = 0; i < d.w.size(); ++i) EXPECT_NEAR((*target)[i], d.w[i], 1e-4);
}

// Low rank and Kronecker shapes: never worse than the plain calibrated factors on the X~ rows,
// better here, and the reported errors are those measured on the rows.
TEST(Compensate, BeatsPlainCalibrationOnShiftedInputs) {
  const Data d = MakeData(500, 16, 12, 4);
  const CompensationStats st = StatsOf(d);
  InputStats orig;
  {
    StatsAccumulator acc(d.K);
    ASSERT_TRUE(acc.Add(d.x.data(), d.n).ok());
    auto s = acc.Finish();
    ASSERT_TRUE(s.ok());
    orig = *s;
  }
  for (const KronShape& shape : {KronShape{16, 1, 1, 12}, KronShape{4, 3, 4, 4}}) {
    for (int64_t rank : {2, 4}) {
      auto wf = FactorizeWeighted(d.w.data(), d.K, d.N, shape, rank, orig);
      ASSERT_TRUE(wf.ok());
      auto cf = FactorizeCompensated(d.w.data(), d.K, d.N, shape, rank, st, wf->factors,
                                     wf->bias_correction);
      ASSERT_TRUE(cf.ok()) << cf.status().message();
      const double plain_direct = DirectError(d, Reconstruct(wf->factors), wf->bias_correction);
      EXPECT_NEAR(cf->plain_error, plain_direct, 1e-5);
      const double direct = DirectError(d, Reconstruct(cf->factors), cf->bias_correction);
      EXPECT_NEAR(cf->error, direct, 1e-5);
      EXPECT_LE(cf->error, cf->plain_error);
      EXPECT_LT(cf->error, 0.95 * cf->plain_error) << shape.k1 << "x" << shape.n1 << " r" << rank;
    }
  }
}

TEST(Compensate, RejectsNonFiniteAndTooFewRows) {
  CompensationAccumulator acc(2);
  const float good[] = {1, 2}, bad[] = {1, NAN};
  Status s = acc.Add(bad, good, 1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("compressed model's activation has a NaN at row 0, column 1"),
            std::string::npos)
      << s.message();
  CompensationAccumulator one(2);
  ASSERT_TRUE(one.Add(good, good, 1).ok());
  EXPECT_FALSE(one.Finish().ok());
}

}  // namespace
}  // namespace kfc::kron
