// SPDX-License-Identifier: Apache-2.0
// Calibrated factorization; see weighted.h for the method. Matrices are row-major doubles unless
// named otherwise; the index conventions are factorize.h's.
#include "kfc/kron/weighted.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>

#include "kfc/kron/weighted_als.h"

namespace kfc::kron {
namespace {

int I(int64_t v) { return static_cast<int>(v); }

using als::RearrangeD;
using als::RefineAls;
using als::WeightedEnergy;

// C_reg for factored statistics, as its two factors: each gets the ridge sqrt(1 + lambda) - 1
// times its mean diagonal, so the product's diagonal grows by about lambda times C's mean.
void RegularizedFactors(const InputStats& st, std::vector<double>* c1, std::vector<double>* c2) {
  const double ridge = std::sqrt(1.0 + st.lambda) - 1.0;
  for (auto [f, d] : {std::pair{c1, st.kf_k1}, std::pair{c2, st.kf_k2}}) {
    *f = f == c1 ? st.c1 : st.c2;
    double mean_diag = 0.0;
    for (int64_t i = 0; i < d; ++i) mean_diag += (*f)[static_cast<size_t>(i * d + i)];
    mean_diag /= static_cast<double>(d);
    if (!(mean_diag > 0.0)) mean_diag = 1.0;
    for (int64_t i = 0; i < d; ++i) (*f)[static_cast<size_t>(i * d + i)] += ridge * mean_diag;
  }
}

// (c1 (x) c2) D / scale for D K x N (rows (i1, i2) of k1 x k2): c2 on each k1 slice, then c1.
std::vector<double> FactoredApply(const std::vector<double>& c1, const std::vector<double>& c2,
                                  int64_t k1, int64_t k2, int64_t N, const std::vector<double>& d,
                                  double scale) {
  std::vector<double> t(d.size()), out(d.size());
  for (int64_t i = 0; i < k1; ++i) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, I(k2), I(N), I(k2), 1.0, c2.data(),
                I(k2), &d[static_cast<size_t>(i * k2 * N)], I(N), 0.0,
                &t[static_cast<size_t>(i * k2 * N)], I(N));
  }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, I(k1), I(k2 * N), I(k1), 1.0 / scale,
              c1.data(), I(k1), t.data(), I(k2 * N), 0.0, out.data(), I(k2 * N));
  return out;
}

double Trace(const std::vector<double>& m, int64_t n) {
  double t = 0.0;
  for (int64_t i = 0; i < n; ++i) t += m[static_cast<size_t>(i * n + i)];
  return t;
}

std::vector<double> Regularized(const InputStats& st) {
  const int64_t K = st.k;
  double mean_diag = 0.0;
  for (int64_t i = 0; i < K; ++i) mean_diag += st.covariance[static_cast<size_t>(i * K + i)];
  mean_diag /= static_cast<double>(K);
  if (!(mean_diag > 0.0)) mean_diag = 1.0;
  std::vector<double> c = st.covariance;
  for (int64_t i = 0; i < K; ++i) c[static_cast<size_t>(i * K + i)] += st.lambda * mean_diag;
  return c;
}

// Lower Cholesky factor of the symmetric n x n matrix `a`; a ridge is added when it is not
// numerically positive definite.
StatusOr<std::vector<double>> Cholesky(std::vector<double> a, int64_t n, const char* what) {
  double mean_diag = 0.0;
  for (int64_t i = 0; i < n; ++i) mean_diag += a[static_cast<size_t>(i * n + i)];
  mean_diag = std::max(mean_diag / static_cast<double>(n), 1e-300);
  double ridge = 0.0;
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::vector<double> l = a;
    for (int64_t i = 0; i < n; ++i) l[static_cast<size_t>(i * n + i)] += ridge;
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', I(n), l.data(), I(n)) == 0) {
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = i + 1; j < n; ++j) l[static_cast<size_t>(i * n + j)] = 0.0;
      }
      return l;
    }
    ridge = ridge == 0.0 ? 1e-8 * mean_diag : ridge * 100.0;
  }
  return Internal(std::string("calibration: the ") + what +
                  " covariance factor is not positive definite even with a ridge");
}

// Nearest Kronecker product C ~= C1 (x) C2 of the SPD K x K matrix c (K = k1*k2): the top singular
// pair of its rearrangement, by power iteration.
void NearestKronecker(const std::vector<double>& c, int64_t k1, int64_t k2, std::vector<double>* c1,
                      std::vector<double>* c2) {
  const KronShape sq{k1, k1, k2, k2};
  const std::vector<double> r = RearrangeD(c, sq);  // (k1*k1) x (k2*k2)
  const int64_t m = k1 * k1, n = k2 * k2;
  std::vector<double> u(static_cast<size_t>(m)), v(static_cast<size_t>(n), 0.0);
  for (int64_t p = 0; p < k2; ++p) v[static_cast<size_t>(p * k2 + p)] = 1.0 / std::sqrt(double(k2));
  double sigma = 0.0;
  for (int it = 0; it < 100; ++it) {
    cblas_dgemv(CblasRowMajor, CblasNoTrans, I(m), I(n), 1.0, r.data(), I(n), v.data(), 1, 0.0,
                u.data(), 1);
    const double nu = cblas_dnrm2(I(m), u.data(), 1);
    if (nu == 0.0) break;
    cblas_dscal(I(m), 1.0 / nu, u.data(), 1);
    std::vector<double> next(static_cast<size_t>(n));
    cblas_dgemv(CblasRowMajor, CblasTrans, I(m), I(n), 1.0, r.data(), I(n), u.data(), 1, 0.0,
                next.data(), 1);
    const double s = cblas_dnrm2(I(n), next.data(), 1);
    if (s == 0.0) break;
    cblas_dscal(I(n), 1.0 / s, next.data(), 1);
    double change = 0.0;
    for (int64_t i = 0; i < n; ++i) change = std::max(change, std::fabs(next[i] - v[i]));
    v.swap(next);
    sigma = s;
    if (change < 1e-12) break;
  }
  const double scale = std::sqrt(std::max(sigma, 0.0));
  c1->assign(u.begin(), u.end());
  c2->assign(v.begin(), v.end());
  double trace1 = 0.0;
  for (int64_t i = 0; i < k1; ++i) trace1 += (*c1)[static_cast<size_t>(i * k1 + i)];
  const double sign = trace1 < 0 ? -1.0 : 1.0;
  for (auto* f : {c1, c2}) {
    const int64_t d = f == c1 ? k1 : k2;
    for (auto& x : *f) x *= sign * scale;
    for (int64_t i = 0; i < d; ++i) {  // symmetrize
      for (int64_t j = 0; j < i; ++j) {
        const double avg =
            0.5 * ((*f)[static_cast<size_t>(i * d + j)] + (*f)[static_cast<size_t>(j * d + i)]);
        (*f)[static_cast<size_t>(i * d + j)] = avg;
        (*f)[static_cast<size_t>(j * d + i)] = avg;
      }
    }
  }
}

// tr(D^T C D) in the statistics' own metric: the covariance, or its Kronecker-factored estimate.
double StatsEnergy(const std::vector<double>& d, const InputStats& st, int64_t K, int64_t N) {
  if (!st.factored()) return WeightedEnergy(d, st.covariance, K, N);
  const double trace = Trace(st.c1, st.kf_k1);
  if (!(trace > 0.0)) return 0.0;
  const std::vector<double> cd = FactoredApply(st.c1, st.c2, st.kf_k1, st.kf_k2, N, d, trace);
  return cblas_ddot(I(K * N), d.data(), 1, cd.data(), 1);
}

std::vector<double> Difference(const float* w, const std::vector<float>& w_hat, int64_t n) {
  std::vector<double> d(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) d[i] = double(w[i]) - double(w_hat[static_cast<size_t>(i)]);
  return d;
}

// Copies `rows` rows of length k from x into out (as double) and adds them into sum (k);
// InvalidArgument at the first NaN or infinity, naming its row (counted from `first_row`) and
// column.
Status TakeRows(const float* x, int64_t rows, int64_t k, int64_t first_row, double* out,
                std::vector<double>* sum) {
  for (int64_t i = 0; i < rows * k; ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) {
      return InvalidArgument(
          std::string("activation has ") + (std::isnan(v) ? "a NaN" : "an infinity") + " at row " +
          std::to_string(first_row + i / k) + ", column " + std::to_string(i % k));
    }
    out[i] = v;
    (*sum)[static_cast<size_t>(i % k)] += v;
  }
  return Status::Ok();
}

// The statistics' count and mean, after checking there are enough rows.
StatusOr<InputStats> CountAndMean(int64_t count, const std::vector<double>& sum) {
  if (count < 2) {
    return InvalidArgument("calibration needs at least 2 rows, got " + std::to_string(count));
  }
  InputStats st;
  st.k = static_cast<int64_t>(sum.size());
  st.count = count;
  st.mean.resize(sum.size());
  for (size_t i = 0; i < sum.size(); ++i) st.mean[i] = sum[i] / static_cast<double>(count);
  return st;
}

// Whitening factors and beta of one split of K (see Whitened).
struct Split {
  std::shared_ptr<const WhiteningFactors> factors;
  bool exact = false;
  double beta = 1.0;
};

// What Whiten computes once per statistics (id, lambda): C_reg (empty when factored), each split
// k1 it was asked for, and the energy tr(W^T C_reg W) of the last W (its bits in energy_w).
struct Whitening {
  uint64_t id = 0;
  double lambda = 0.0;
  std::vector<double> c_reg;
  std::shared_ptr<const std::vector<double>> full_l;  // Cholesky factor of C_reg (low-rank splits)
  std::map<int64_t, Split> splits;
  std::vector<float> energy_w;
  double energy = 0.0;
};

Whitening& ThreadWhitening() {
  thread_local Whitening cache;
  return cache;
}

// The calling thread's cache for `st`, emptied first when it held other statistics; `scratch`
// (emptied) for statistics that are never cached (id 0).
Whitening& WhiteningOf(const InputStats& st, Whitening* scratch) {
  if (st.id == 0) return *scratch;
  Whitening& cache = ThreadWhitening();
  if (cache.id != st.id || std::memcmp(&cache.lambda, &st.lambda, sizeof st.lambda) != 0) {
    cache = Whitening{};  // freed before the new statistics allocate
    cache.id = st.id;
    cache.lambda = st.lambda;
  }
  return cache;
}

// C_reg of full statistics, computed once per cache; empty for factored statistics.
const std::vector<double>& RegularizedOf(const InputStats& st, Whitening* cache) {
  if (!st.factored() && cache->c_reg.empty()) cache->c_reg = Regularized(st);
  return cache->c_reg;
}

// The lower Cholesky factor of the symmetric n x n matrix `a`, shared.
StatusOr<std::shared_ptr<const std::vector<double>>> SharedCholesky(std::vector<double> a,
                                                                    int64_t n, const char* what) {
  KFC_ASSIGN_OR_RETURN(std::vector<double> l, Cholesky(std::move(a), n, what));
  return std::make_shared<const std::vector<double>>(std::move(l));
}

// The whitening factors of the split k1 x k2 of K, with beta (C_reg `c` for full statistics). The
// K x K factor of the low-rank splits is computed once, into `cache`.
StatusOr<Split> SplitOf(const InputStats& stats, const std::vector<double>& c, int64_t k1,
                        int64_t k2, Whitening* cache) {
  const int64_t K = k1 * k2;
  Split out;
  auto factors = std::make_shared<WhiteningFactors>();
  if (!stats.factored() && (k1 == 1 || k2 == 1)) {
    out.exact = true;
    if (cache->full_l == nullptr) {
      KFC_ASSIGN_OR_RETURN(cache->full_l, SharedCholesky(c, K, k1 == 1 ? "second" : "first"));
    }
    KFC_ASSIGN_OR_RETURN(std::shared_ptr<const std::vector<double>> one,
                         SharedCholesky({1.0}, 1, k1 == 1 ? "first" : "second"));
    factors->l1 = k1 == 1 ? one : cache->full_l;
    factors->l2 = k1 == 1 ? cache->full_l : one;
  } else {
    std::vector<double> c1, c2;
    if (stats.factored()) {
      // Exact in the factored metric: whitening by its factors leaves nothing for ALS or beta.
      out.exact = true;
      RegularizedFactors(stats, &c1, &c2);
      const double trace = Trace(stats.c1, k1);
      for (double& v : c1) v /= trace > 0.0 ? trace : 1.0;
    } else {
      NearestKronecker(c, k1, k2, &c1, &c2);
    }
    KFC_ASSIGN_OR_RETURN(factors->l1, SharedCholesky(std::move(c1), k1, "first"));
    KFC_ASSIGN_OR_RETURN(factors->l2, SharedCholesky(std::move(c2), k2, "second"));
  }
  if (!out.exact) {
    // Power iteration on M = L^-1 C L^-T with L = L1 (x) L2, applied to a k1 x k2 matrix V
    // (row-major vec): L^-T v = vec(L1^-T V L2^-1), L^-1 v = vec(L1^-1 V L2^-T).
    std::vector<double> v(static_cast<size_t>(K), 1.0 / std::sqrt(static_cast<double>(K))), y(v);
    double lambda = 1.0;
    for (int it = 0; it < 30; ++it) {
      y = v;
      cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, I(k1), I(k2), 1.0,
                  factors->l1->data(), I(k1), y.data(), I(k2));
      cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, I(k1), I(k2),
                  1.0, factors->l2->data(), I(k2), y.data(), I(k2));
      std::vector<double> cy(static_cast<size_t>(K));
      cblas_dgemv(CblasRowMajor, CblasNoTrans, I(K), I(K), 1.0, c.data(), I(K), y.data(), 1, 0.0,
                  cy.data(), 1);
      cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, I(k1), I(k2),
                  1.0, factors->l1->data(), I(k1), cy.data(), I(k2));
      cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, I(k1), I(k2),
                  1.0, factors->l2->data(), I(k2), cy.data(), I(k2));
      lambda = cblas_dnrm2(I(K), cy.data(), 1);
      if (!(lambda > 0.0)) break;
      for (int64_t i = 0; i < K; ++i)
        v[static_cast<size_t>(i)] = cy[static_cast<size_t>(i)] / lambda;
    }
    out.beta = std::max(1.0, lambda);
  }
  out.factors = std::move(factors);
  return out;
}

std::atomic<uint64_t> next_stats_id{0};

}  // namespace

StatsAccumulator::StatsAccumulator(int64_t k)
    : k_(k), sum_(static_cast<size_t>(k), 0.0), second_(static_cast<size_t>(k * k), 0.0) {}

Status StatsAccumulator::Add(const float* x, int64_t rows) {
  constexpr int64_t kChunk = 256;
  std::vector<double> chunk;
  for (int64_t first = 0; first < rows; first += kChunk) {
    const int64_t n = std::min(kChunk, rows - first);
    chunk.resize(static_cast<size_t>(n * k_));
    KFC_RETURN_IF_ERROR(TakeRows(x + first * k_, n, k_, count_ + first, chunk.data(), &sum_));
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, I(k_), I(n), 1.0, chunk.data(), I(k_), 1.0,
                second_.data(), I(k_));
  }
  count_ += rows;
  return Status::Ok();
}

StatusOr<InputStats> StatsAccumulator::Finish() const {
  KFC_ASSIGN_OR_RETURN(InputStats st, CountAndMean(count_, sum_));
  const double n = static_cast<double>(count_);
  st.id = ++next_stats_id;
  st.covariance.resize(static_cast<size_t>(k_ * k_));
  for (int64_t i = 0; i < k_; ++i) {
    for (int64_t j = i; j < k_; ++j) {
      const double v = second_[static_cast<size_t>(i * k_ + j)] / n - st.mean[i] * st.mean[j];
      st.covariance[static_cast<size_t>(i * k_ + j)] = v;
      st.covariance[static_cast<size_t>(j * k_ + i)] = v;
    }
  }
  return st;
}

FactoredStatsAccumulator::FactoredStatsAccumulator(int64_t k1, int64_t k2)
    : k1_(k1),
      k2_(k2),
      sum_(static_cast<size_t>(k1 * k2), 0.0),
      s1_(static_cast<size_t>(k1 * k1), 0.0),
      s2_(static_cast<size_t>(k2 * k2), 0.0) {}

Status FactoredStatsAccumulator::Add(const float* x, int64_t rows) {
  const int64_t K = k1_ * k2_;
  std::vector<double> row(static_cast<size_t>(K));
  for (int64_t r = 0; r < rows; ++r) {
    KFC_RETURN_IF_ERROR(TakeRows(x + r * K, 1, K, count_ + r, row.data(), &sum_));
    // X (k1 x k2): s1 += X X^T, s2 += X^T X.
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, I(k1_), I(k2_), 1.0, row.data(), I(k2_),
                1.0, s1_.data(), I(k1_));
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, I(k2_), I(k1_), 1.0, row.data(), I(k2_), 1.0,
                s2_.data(), I(k2_));
  }
  count_ += rows;
  return Status::Ok();
}

StatusOr<InputStats> FactoredStatsAccumulator::Finish() const {
  KFC_ASSIGN_OR_RETURN(InputStats st, CountAndMean(count_, sum_));
  st.id = ++next_stats_id;
  st.kf_k1 = k1_;
  st.kf_k2 = k2_;
  const double n = static_cast<double>(count_);
  // Centered: E[(X - M)(X - M)^T] = E[X X^T] - M M^T, and likewise for X^T X.
  const std::vector<double>& m = st.mean;  // M is k1 x k2
  for (auto [out, sums, d, transposed] :
       {std::tuple{&st.c1, &s1_, k1_, false}, std::tuple{&st.c2, &s2_, k2_, true}}) {
    out->assign(static_cast<size_t>(d * d), 0.0);
    const int64_t inner = transposed ? k1_ : k2_;
    for (int64_t i = 0; i < d; ++i) {
      for (int64_t j = i; j < d; ++j) {
        double mm = 0.0;
        for (int64_t l = 0; l < inner; ++l) {
          mm += transposed
                    ? m[static_cast<size_t>(l * k2_ + i)] * m[static_cast<size_t>(l * k2_ + j)]
                    : m[static_cast<size_t>(i * k2_ + l)] * m[static_cast<size_t>(j * k2_ + l)];
        }
        const double v = (*sums)[static_cast<size_t>(i * d + j)] / n - mm;
        (*out)[static_cast<size_t>(i * d + j)] = v;
        (*out)[static_cast<size_t>(j * d + i)] = v;
      }
    }
  }
  return st;
}

double DataRelativeError(const float* w, const std::vector<float>& w_hat, int64_t K, int64_t N,
                         const InputStats& stats) {
  std::vector<double> wd(w, w + K * N);
  const double total = StatsEnergy(wd, stats, K, N);
  if (!(total > 0.0)) return 0.0;
  const double err = StatsEnergy(Difference(w, w_hat, K * N), stats, K, N);
  return std::sqrt(std::max(0.0, err) / total);
}

StatusOr<Whitened> Whiten(const float* w, int64_t K, int64_t N, const KronShape& shape,
                          const InputStats& stats) {
  if (stats.k != K ||
      (!stats.factored() && static_cast<int64_t>(stats.covariance.size()) != K * K)) {
    return InvalidArgument("calibration statistics have K = " + std::to_string(stats.k) +
                           ", the weight has K = " + std::to_string(K));
  }
  const int64_t k1 = shape.k1, k2 = shape.k2;
  if (stats.factored() && k1 != stats.kf_k1) {
    return InvalidArgument(
        "calibration statistics are Kronecker-factored for k1 = " + std::to_string(stats.kf_k1) +
        ", the shape has k1 = " + std::to_string(k1));
  }
  Whitening scratch;
  Whitening& cache = WhiteningOf(stats, &scratch);
  const std::vector<double>& c = RegularizedOf(stats, &cache);
  auto split = cache.splits.find(k1);
  if (split == cache.splits.end()) {
    KFC_ASSIGN_OR_RETURN(Split fresh, SplitOf(stats, c, k1, k2, &cache));
    split = cache.splits.emplace(k1, std::move(fresh)).first;
  }
  const Split& sp = split->second;
  Whitened out;
  out.factors = sp.factors;
  out.exact = sp.exact;
  out.beta = sp.beta;
  const std::vector<double>& l1 = *sp.factors->l1;
  const std::vector<double>& l2 = *sp.factors->l2;
  // T = L1^T W viewed as k1 x (k2*N); then each of the k1 slices k2 x N gets L2^T.
  std::vector<double> wd(w, w + K * N), t(static_cast<size_t>(K * N)),
      res(static_cast<size_t>(K * N));
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, I(k1), I(k2 * N), I(k1), 1.0, l1.data(),
              I(k1), wd.data(), I(k2 * N), 0.0, t.data(), I(k2 * N));
  for (int64_t i = 0; i < k1; ++i) {
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, I(k2), I(N), I(k2), 1.0, l2.data(), I(k2),
                &t[static_cast<size_t>(i * k2 * N)], I(N), 0.0,
                &res[static_cast<size_t>(i * k2 * N)], I(N));
  }
  out.w.assign(res.begin(), res.end());
  if (cache.energy_w.size() != static_cast<size_t>(K * N) ||
      !std::equal(w, w + K * N, cache.energy_w.begin(),
                  [](float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; })) {
    cache.energy_w.assign(w, w + K * N);
    if (stats.factored()) {
      const std::vector<double>&ll1 = l1, &ll2 = l2;  // C_reg's factors again: L L^T
      std::vector<double> f1(static_cast<size_t>(k1 * k1)), f2(static_cast<size_t>(k2 * k2));
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, I(k1), I(k1), I(k1), 1.0, ll1.data(),
                  I(k1), ll1.data(), I(k1), 0.0, f1.data(), I(k1));
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, I(k2), I(k2), I(k2), 1.0, ll2.data(),
                  I(k2), ll2.data(), I(k2), 0.0, f2.data(), I(k2));
      const std::vector<double> cw = FactoredApply(f1, f2, k1, k2, N, wd, 1.0);
      cache.energy = cblas_ddot(I(K * N), wd.data(), 1, cw.data(), 1);
    } else {
      cache.energy = WeightedEnergy(wd, c, K, N);
    }
  }
  out.energy = cache.energy;
  return out;
}

void ReleaseWhiteningCache() { ThreadWhitening() = Whitening{}; }

StatusOr<WeightedFactors> FactorizeWeighted(const float* w, int64_t K, int64_t N,
                                            const KronShape& shape, int64_t rank,
                                            const InputStats& stats, int max_als_iterations) {
  KFC_ASSIGN_OR_RETURN(KronFactors plain, Factorize(w, K, N, shape, rank));
  WeightedFactors out;
  out.weight_only_data_error = DataRelativeError(w, Reconstruct(plain), K, N, stats);

  KFC_ASSIGN_OR_RETURN(Whitened wh, Whiten(w, K, N, shape, stats));
  KFC_ASSIGN_OR_RETURN(KronFactors f, Factorize(wh.w.data(), K, N, shape, rank));
  const int64_t r = f.rank, sa = shape.k1 * shape.n1, sb = shape.k2 * shape.n2;
  std::vector<double>&a = f.a, &b = f.b;
  for (int64_t t = 0; t < r; ++t) {  // A_t = L1^-T A'_t, B_t = L2^-T B'_t
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, I(shape.k1),
                I(shape.n1), 1.0, wh.factors->l1->data(), I(shape.k1),
                &a[static_cast<size_t>(t * sa)], I(shape.n1));
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, I(shape.k2),
                I(shape.n2), 1.0, wh.factors->l2->data(), I(shape.k2),
                &b[static_cast<size_t>(t * sb)], I(shape.n2));
  }
  if (!wh.exact && max_als_iterations > 0 && r * shape.k1 <= kMaxAlsUnknowns &&
      r * shape.k2 <= kMaxAlsUnknowns) {
    const std::vector<double> wd(w, w + K * N);
    Whitening scratch;
    const std::vector<double>& c = RegularizedOf(stats, &WhiteningOf(stats, &scratch));
    out.als_iterations = RefineAls(c, wd, shape, r, max_als_iterations, &a, &b);
  }
  // Calibrated factors are float32 values, as Factorize's are for a float32 W.
  for (double& v : a) v = static_cast<float>(v);
  for (double& v : b) v = static_cast<float>(v);
  std::vector<float> w_hat = Reconstruct(f);
  out.data_error = DataRelativeError(w, w_hat, K, N, stats);
  if (out.data_error > out.weight_only_data_error) {
    out.used_weight_only = true;
    out.data_error = out.weight_only_data_error;
    f = std::move(plain);
    w_hat = Reconstruct(f);
  }
  // Exact plain error of the factors kept, and the bias correction mu^T (W - W_hat).
  double diff2 = 0.0, norm2 = 0.0;
  std::vector<double> corr(static_cast<size_t>(N), 0.0);
  for (int64_t i = 0; i < K; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      const double d = double(w[i * N + j]) - double(w_hat[static_cast<size_t>(i * N + j)]);
      diff2 += d * d;
      norm2 += double(w[i * N + j]) * double(w[i * N + j]);
      corr[static_cast<size_t>(j)] += stats.mean[static_cast<size_t>(i)] * d;
    }
  }
  f.frobenius_norm = std::sqrt(norm2);
  f.relative_error = norm2 > 0 ? std::sqrt(diff2 / norm2) : 0.0;
  out.bias_correction.assign(corr.begin(), corr.end());
  out.factors = std::move(f);
  return out;
}

}  // namespace kfc::kron
