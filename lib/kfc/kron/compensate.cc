// SPDX-License-Identifier: Apache-2.0
// Error compensation; see compensate.h for the method. Matrices are row-major.
#include "kfc/kron/compensate.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

namespace kfc::kron {
namespace {

int I(int64_t v) { return static_cast<int>(v); }

constexpr int64_t kChunk = 256;

// Copies rows of x to double, adding them into sum; InvalidArgument naming the first non-finite.
Status Take(const float* x, int64_t rows, int64_t k, int64_t first_row, const char* which,
            double* out, std::vector<double>* sum) {
  for (int64_t i = 0; i < rows * k; ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) {
      return InvalidArgument(
          std::string(which) + " has " + (std::isnan(v) ? "a NaN" : "an infinity") + " at row " +
          std::to_string(first_row + i / k) + ", column " + std::to_string(i % k));
    }
    out[i] = v;
    (*sum)[static_cast<size_t>(i % k)] += v;
  }
  return Status::Ok();
}

// rho = lambda * mean(diag C~), as weighted.cc's Regularized.
double Rho(const CompensationStats& st) {
  double mean_diag = 0.0;
  for (int64_t i = 0; i < st.k; ++i) mean_diag += st.cov_tilde[static_cast<size_t>(i * st.k + i)];
  mean_diag /= static_cast<double>(st.k);
  if (!(mean_diag > 0.0)) mean_diag = 1.0;
  return st.lambda * mean_diag;
}

// A * B for A K x K (double) and B K x N (float or double).
std::vector<double> Times(const std::vector<double>& a, const std::vector<double>& b, int64_t K,
                          int64_t N) {
  std::vector<double> out(static_cast<size_t>(K * N));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, I(K), I(N), I(K), 1.0, a.data(), I(K),
              b.data(), I(N), 0.0, out.data(), I(N));
  return out;
}

// mu^T W - mu~^T W_hat.
std::vector<float> BiasFor(const float* w, const std::vector<float>& w_hat, int64_t K, int64_t N,
                           const CompensationStats& st) {
  std::vector<double> c(static_cast<size_t>(N), 0.0);
  for (int64_t i = 0; i < K; ++i) {
    const double m = st.mean[static_cast<size_t>(i)], mt = st.mean_tilde[static_cast<size_t>(i)];
    for (int64_t j = 0; j < N; ++j) {
      c[static_cast<size_t>(j)] +=
          m * double(w[i * N + j]) - mt * double(w_hat[static_cast<size_t>(i * N + j)]);
    }
  }
  return std::vector<float>(c.begin(), c.end());
}

}  // namespace

CompensationAccumulator::CompensationAccumulator(int64_t k)
    : k_(k),
      sum_t_(static_cast<size_t>(k), 0.0),
      sum_(static_cast<size_t>(k), 0.0),
      stt_(static_cast<size_t>(k * k), 0.0),
      sxx_(static_cast<size_t>(k * k), 0.0),
      stx_(static_cast<size_t>(k * k), 0.0) {}

Status CompensationAccumulator::Add(const float* x_tilde, const float* x, int64_t rows) {
  std::vector<double> t, u;
  for (int64_t first = 0; first < rows; first += kChunk) {
    const int64_t n = std::min(kChunk, rows - first);
    t.resize(static_cast<size_t>(n * k_));
    u.resize(static_cast<size_t>(n * k_));
    KFC_RETURN_IF_ERROR(Take(x_tilde + first * k_, n, k_, count_ + first,
                             "the compressed model's activation", t.data(), &sum_t_));
    KFC_RETURN_IF_ERROR(
        Take(x + first * k_, n, k_, count_ + first, "the original activation", u.data(), &sum_));
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, I(k_), I(n), 1.0, t.data(), I(k_), 1.0,
                stt_.data(), I(k_));
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, I(k_), I(n), 1.0, u.data(), I(k_), 1.0,
                sxx_.data(), I(k_));
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, I(k_), I(k_), I(n), 1.0, t.data(), I(k_),
                u.data(), I(k_), 1.0, stx_.data(), I(k_));
  }
  count_ += rows;
  return Status::Ok();
}

StatusOr<CompensationStats> CompensationAccumulator::Finish() const {
  if (count_ < 2) {
    return InvalidArgument("compensation needs at least 2 rows, got " + std::to_string(count_));
  }
  const double n = static_cast<double>(count_);
  const auto K = static_cast<size_t>(k_);
  CompensationStats st;
  st.k = k_;
  st.count = count_;
  st.mean_tilde.resize(K);
  st.mean.resize(K);
  for (size_t i = 0; i < K; ++i) {
    st.mean_tilde[i] = sum_t_[i] / n;
    st.mean[i] = sum_[i] / n;
  }
  st.cov_tilde.resize(K * K);
  st.cov.resize(K * K);
  st.cross.resize(K * K);
  for (size_t i = 0; i < K; ++i) {
    for (size_t j = 0; j < K; ++j) {
      st.cross[i * K + j] = stx_[i * K + j] / n - st.mean_tilde[i] * st.mean[j];
      if (j < i) continue;
      const double vt = stt_[i * K + j] / n - st.mean_tilde[i] * st.mean_tilde[j];
      const double v = sxx_[i * K + j] / n - st.mean[i] * st.mean[j];
      st.cov_tilde[i * K + j] = st.cov_tilde[j * K + i] = vt;
      st.cov[i * K + j] = st.cov[j * K + i] = v;
    }
  }
  return st;
}

double CompensationError(const float* w, const std::vector<float>& w_hat,
                         const std::vector<float>& c, int64_t K, int64_t N,
                         const CompensationStats& st) {
  const std::vector<double> wd(w, w + K * N), hd(w_hat.begin(), w_hat.end());
  const std::vector<double> cw = Times(st.cov, wd, K, N);
  const double energy = cblas_ddot(I(K * N), wd.data(), 1, cw.data(), 1);
  if (!(energy > 0.0)) return 0.0;
  const std::vector<double> ch = Times(st.cov_tilde, hd, K, N);
  const std::vector<double> mw = Times(st.cross, wd, K, N);
  double e = cblas_ddot(I(K * N), hd.data(), 1, ch.data(), 1) -
             2.0 * cblas_ddot(I(K * N), hd.data(), 1, mw.data(), 1) + energy;
  // The mean output's offset: mu~^T W_hat + c - mu^T W.
  std::vector<float> zero = BiasFor(w, w_hat, K, N, st);  // mu^T W - mu~^T W_hat
  for (int64_t j = 0; j < N; ++j) {
    const double off = (c.empty() ? 0.0 : double(c[static_cast<size_t>(j)])) -
                       double(zero[static_cast<size_t>(j)]);
    e += off * off;
  }
  return std::sqrt(std::max(e, 0.0) / energy);
}

StatusOr<std::vector<float>> CompensationTarget(const float* w, int64_t K, int64_t N,
                                                const CompensationStats& st) {
  const double rho = Rho(st);
  const std::vector<double> wd(w, w + K * N);
  std::vector<double> rhs = Times(st.cross, wd, K, N);  // (M + rho I) W
  for (int64_t i = 0; i < K * N; ++i) rhs[static_cast<size_t>(i)] += rho * wd[i];
  std::vector<double> a = st.cov_tilde;  // C~_reg, SPD since rho > 0
  for (int64_t i = 0; i < K; ++i) a[static_cast<size_t>(i * K + i)] += rho;
  if (LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', I(K), I(N), a.data(), I(K), rhs.data(), I(N)) != 0) {
    return Internal(
        "compensation: the regularized covariance of the compressed model's "
        "activation is not positive definite");
  }
  return std::vector<float>(rhs.begin(), rhs.end());
}

StatusOr<CompensatedFactors> FactorizeCompensated(const float* w, int64_t K, int64_t N,
                                                  const KronShape& shape, int64_t rank,
                                                  const CompensationStats& st,
                                                  const KronFactors& plain,
                                                  const std::vector<float>& plain_bias) {
  CompensatedFactors out;
  const std::vector<float> plain_hat = Reconstruct(plain);
  out.plain_error = CompensationError(w, plain_hat, plain_bias, K, N, st);

  KFC_ASSIGN_OR_RETURN(const std::vector<float> target, CompensationTarget(w, K, N, st));
  InputStats tilde;
  tilde.k = K;
  tilde.count = st.count;
  tilde.mean = st.mean_tilde;
  tilde.covariance = st.cov_tilde;
  tilde.lambda = st.lambda;
  KFC_ASSIGN_OR_RETURN(WeightedFactors wf,
                       FactorizeWeighted(target.data(), K, N, shape, rank, tilde));
  out.als_iterations = wf.als_iterations;
  std::vector<float> w_hat = Reconstruct(wf.factors);
  std::vector<float> bias = BiasFor(w, w_hat, K, N, st);
  const double error = CompensationError(w, w_hat, bias, K, N, st);
  std::vector<float> plain_rebiased = BiasFor(w, plain_hat, K, N, st);
  const double plain_rebiased_error = CompensationError(w, plain_hat, plain_rebiased, K, N, st);
  if (error <= plain_rebiased_error) {
    out.factors = std::move(wf.factors);
    out.bias_correction = std::move(bias);
    out.error = error;
  } else {
    out.used_plain = true;
    out.factors = plain;
    w_hat = plain_hat;
    out.bias_correction = std::move(plain_rebiased);
    out.error = plain_rebiased_error;
  }
  // The plain weight error of the factors kept, against W.
  double diff2 = 0.0, norm2 = 0.0;
  for (int64_t i = 0; i < K * N; ++i) {
    const double d = double(w[i]) - double(w_hat[static_cast<size_t>(i)]);
    diff2 += d * d;
    norm2 += double(w[i]) * double(w[i]);
  }
  out.factors.frobenius_norm = std::sqrt(norm2);
  out.factors.relative_error = norm2 > 0 ? std::sqrt(diff2 / norm2) : 0.0;
  return out;
}

}  // namespace kfc::kron
