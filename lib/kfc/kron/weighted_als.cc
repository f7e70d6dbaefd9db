// SPDX-License-Identifier: Apache-2.0
// Alternating least squares for the calibrated Kronecker fit (weighted.h): the factors that
// minimize tr(D^T C D) exactly, each half-step a linear least-squares problem.
#include "kfc/kron/weighted_als.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <utility>

namespace kfc::kron::als {
namespace {

int I(int64_t v) { return static_cast<int>(v); }

// Solves the SPD system G X = B in place (G n x n, B n x nrhs), with a tiny ridge on failure.
bool SolveSpd(std::vector<double> g, int64_t n, std::vector<double>* b, int64_t nrhs) {
  double mean_diag = 0.0;
  for (int64_t i = 0; i < n; ++i) mean_diag += g[static_cast<size_t>(i * n + i)];
  mean_diag = std::max(mean_diag / static_cast<double>(n), 1e-300);
  for (double ridge : {0.0, 1e-10, 1e-7}) {
    std::vector<double> gg = g, bb = *b;
    for (int64_t i = 0; i < n; ++i) gg[static_cast<size_t>(i * n + i)] += ridge * mean_diag;
    if (LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', I(n), I(nrhs), gg.data(), I(n), bb.data(), I(nrhs)) ==
        0) {
      *b = std::move(bb);
      return true;
    }
  }
  return false;
}

// One ALS half-step: the factors X_t (rows x cols each, r of them) that minimize tr(D^T C D) with
// the other factors Y_t (yrows x ycols) fixed. For the A-step (X = A, Y = B) the normal equations
// are G[(t,i),(s,k)] = (R_C vec(B_t B_s^T))[(i,k)] and rhs[(t,i), j] = (R_CW vec B_t)[(i,j)]; the
// B-step is the same with R_C and R_CW transposed (`transposed`) and the roles of A and B swapped.
// R_C is k1^2 x k2^2 and R_CW is (k1 n1) x (k2 n2) as stored, whichever step runs. The columns j
// are independent and share G. False when G cannot be factorized (X is then left as it was).
bool AlsHalfStep(const std::vector<double>& rc, const std::vector<double>& rcw, bool transposed,
                 int64_t r, int64_t rows, int64_t cols, int64_t yrows, int64_t ycols,
                 const std::vector<double>& y, std::vector<double>* x) {
  const int64_t sx = rows * cols, sy = yrows * ycols;
  const auto op = transposed ? CblasTrans : CblasNoTrans;
  // Y_t Y_u^T for every pair, as columns (t, u) of a yrows^2 x r^2 matrix.
  std::vector<double> p(static_cast<size_t>(yrows * yrows * r * r));
  std::vector<double> ptu(static_cast<size_t>(yrows * yrows));
  for (int64_t t = 0; t < r; ++t) {
    for (int64_t u = 0; u < r; ++u) {
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, I(yrows), I(yrows), I(ycols), 1.0,
                  &y[static_cast<size_t>(t * sy)], I(ycols), &y[static_cast<size_t>(u * sy)],
                  I(ycols), 0.0, ptu.data(), I(yrows));
      for (int64_t e = 0; e < yrows * yrows; ++e) {
        p[static_cast<size_t>(e * r * r + t * r + u)] = ptu[static_cast<size_t>(e)];
      }
    }
  }
  std::vector<double> m(static_cast<size_t>(rows * rows * r * r));  // (i,k) x (t,u)
  cblas_dgemm(CblasRowMajor, op, CblasNoTrans, I(rows * rows), I(r * r), I(yrows * yrows), 1.0,
              rc.data(), I(transposed ? rows * rows : yrows * yrows), p.data(), I(r * r), 0.0,
              m.data(), I(r * r));
  const int64_t n = r * rows;
  std::vector<double> g(static_cast<size_t>(n * n));
  for (int64_t t = 0; t < r; ++t)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t u = 0; u < r; ++u)
        for (int64_t k = 0; k < rows; ++k)
          g[static_cast<size_t>((t * rows + i) * n + u * rows + k)] =
              m[static_cast<size_t>((i * rows + k) * r * r + t * r + u)];
  std::vector<double> ymat(static_cast<size_t>(sy * r));  // column t = vec(Y_t)
  for (int64_t t = 0; t < r; ++t)
    for (int64_t e = 0; e < sy; ++e)
      ymat[static_cast<size_t>(e * r + t)] = y[static_cast<size_t>(t * sy + e)];
  std::vector<double> rhs(static_cast<size_t>(sx * r));  // (i,j) x t
  cblas_dgemm(CblasRowMajor, op, CblasNoTrans, I(sx), I(r), I(sy), 1.0, rcw.data(),
              I(transposed ? sx : sy), ymat.data(), I(r), 0.0, rhs.data(), I(r));
  std::vector<double> sol(static_cast<size_t>(n * cols));  // (t,i) x j
  for (int64_t t = 0; t < r; ++t)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        sol[static_cast<size_t>((t * rows + i) * cols + j)] =
            rhs[static_cast<size_t>((i * cols + j) * r + t)];
  if (!SolveSpd(std::move(g), n, &sol, cols)) return false;
  for (int64_t t = 0; t < r; ++t)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        (*x)[static_cast<size_t>(t * sx + i * cols + j)] =
            sol[static_cast<size_t>((t * rows + i) * cols + j)];
  return true;
}

}  // namespace

// Rearrangement of a double K x N matrix for shape (k1, n1, k2, n2): R[i1*n1+j1, i2*n2+j2] =
// M[i1*k2+i2, j1*n2+j2], as kron::Rearrange does for float weights.
std::vector<double> RearrangeD(const std::vector<double>& m, const KronShape& s) {
  const int64_t N = s.n1 * s.n2, cols = s.k2 * s.n2;
  std::vector<double> r(static_cast<size_t>(s.k1 * s.n1 * cols));
  for (int64_t i1 = 0; i1 < s.k1; ++i1) {
    for (int64_t j1 = 0; j1 < s.n1; ++j1) {
      double* row = &r[static_cast<size_t>((i1 * s.n1 + j1) * cols)];
      for (int64_t i2 = 0; i2 < s.k2; ++i2) {
        const double* src = &m[static_cast<size_t>((i1 * s.k2 + i2) * N + j1 * s.n2)];
        std::copy(src, src + s.n2, row + i2 * s.n2);
      }
    }
  }
  return r;
}

// tr(D^T C D) for D = W - W_hat (double), with C K x K.
double WeightedEnergy(const std::vector<double>& d, const std::vector<double>& c, int64_t K,
                      int64_t N) {
  std::vector<double> cd(static_cast<size_t>(K * N));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, I(K), I(N), I(K), 1.0, c.data(), I(K),
              d.data(), I(N), 0.0, cd.data(), I(N));
  return cblas_ddot(I(K * N), d.data(), 1, cd.data(), 1);
}

// Alternating least squares on the factors (double, A: r x k1 x n1, B: r x k2 x n2) for the exact
// objective tr(D^T C D). Returns the iterations run.
int RefineAls(const std::vector<double>& c, const std::vector<double>& w, const KronShape& s,
              int64_t r, int max_iterations, std::vector<double>* a, std::vector<double>* b) {
  const int64_t K = s.K(), N = s.N(), k1 = s.k1, n1 = s.n1, k2 = s.k2, n2 = s.n2;
  const std::vector<double> rc = RearrangeD(c, KronShape{k1, k1, k2, k2});  // k1^2 x k2^2
  std::vector<double> cw(static_cast<size_t>(K * N));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, I(K), I(N), I(K), 1.0, c.data(), I(K),
              w.data(), I(N), 0.0, cw.data(), I(N));
  const std::vector<double> rcw = RearrangeD(cw, s);  // (k1 n1) x (k2 n2)
  const int64_t sa = k1 * n1, sb = k2 * n2;
  auto objective = [&]() {
    std::vector<double> d = w;
    for (int64_t t = 0; t < r; ++t) {
      for (int64_t i1 = 0; i1 < k1; ++i1)
        for (int64_t j1 = 0; j1 < n1; ++j1) {
          const double av = (*a)[static_cast<size_t>(t * sa + i1 * n1 + j1)];
          for (int64_t i2 = 0; i2 < k2; ++i2)
            for (int64_t j2 = 0; j2 < n2; ++j2)
              d[static_cast<size_t>((i1 * k2 + i2) * N + j1 * n2 + j2)] -=
                  av * (*b)[static_cast<size_t>(t * sb + i2 * n2 + j2)];
        }
    }
    return WeightedEnergy(d, c, K, N);
  };
  double last = objective();
  int it = 0;
  for (; it < max_iterations; ++it) {
    if (!AlsHalfStep(rc, rcw, /*transposed=*/false, r, k1, n1, k2, n2, *b, a)) break;  // A
    if (!AlsHalfStep(rc, rcw, /*transposed=*/true, r, k2, n2, k1, n1, *a, b)) break;   // B
    const double now = objective();
    const bool small_gain = last - now <= 1e-6 * last;
    last = now;
    if (small_gain) {
      ++it;
      break;
    }
  }
  return it;
}

}  // namespace kfc::kron::als
