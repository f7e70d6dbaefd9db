// Thin products with a float32 matrix and small double-precision pieces; see matrix_passes.h.
#include "kfc/kron/matrix_passes.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <new>

namespace kfc::kron {
namespace {

// Rows of A converted to double per dgemm call: about 1 MB of doubles, so the chunk stays in cache
// while dgemm reads it, and the buffer stays small against the matrix.
constexpr int64_t kChunkDoubles = int64_t{1} << 17;

// out = A in (m x l, for in n x l) or, with `transpose`, A^T in (n x l, for in m x l).
void Product(const float* a, int64_t m, int64_t n, bool transpose, const double* in, int64_t l,
             double* out, PassPrecision precision) {
  const int64_t in_rows = transpose ? m : n, out_rows = transpose ? n : m;
  const int bn = static_cast<int>(n), bl = static_cast<int>(l);
  // BLAS sees A^T column-major (n x m): transpose it back for A in, use it as is for A^T in.
  const CBLAS_TRANSPOSE op = transpose ? CblasNoTrans : CblasTrans;
  if (precision == PassPrecision::kFloat32) {
    std::vector<float> in_f(in, in + in_rows * l), out_f(static_cast<size_t>(out_rows * l));
    cblas_sgemm(CblasColMajor, op, CblasNoTrans, static_cast<int>(out_rows), bl,
                static_cast<int>(in_rows), 1.0f, a, bn, in_f.data(), static_cast<int>(in_rows),
                0.0f, out_f.data(), static_cast<int>(out_rows));
    std::copy(out_f.begin(), out_f.end(), out);
    return;
  }
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(m, kChunkDoubles / n));
  std::vector<double> rows;
  for (int64_t i0 = 0; i0 < m; i0 += chunk) {
    const int64_t rc = std::min(chunk, m - i0);
    rows.assign(a + i0 * n, a + (i0 + rc) * n);
    if (transpose) {  // out += rows^T in[i0 : i0 + rc, :]; the first chunk overwrites
      cblas_dgemm(CblasColMajor, op, CblasNoTrans, bn, bl, static_cast<int>(rc), 1.0, rows.data(),
                  bn, in + i0, static_cast<int>(m), i0 == 0 ? 0.0 : 1.0, out, bn);
    } else {  // out[i0 : i0 + rc, :] = rows in
      cblas_dgemm(CblasColMajor, op, CblasNoTrans, static_cast<int>(rc), bl, bn, 1.0, rows.data(),
                  bn, in, bn, 0.0, out + i0, static_cast<int>(m));
    }
  }
}

}  // namespace

void MultiplyA(const float* a, int64_t m, int64_t n, const double* x, int64_t l, double* y,
               PassPrecision precision) {
  Product(a, m, n, /*transpose=*/false, x, l, y, precision);
}

void MultiplyAt(const float* a, int64_t m, int64_t n, const double* y, int64_t l, double* z,
                PassPrecision precision) {
  Product(a, m, n, /*transpose=*/true, y, l, z, precision);
}

Status Orthonormalize(int64_t rows, int64_t l, double* q, const std::string& what) {
  const lapack_int lr = static_cast<lapack_int>(rows), ll = static_cast<lapack_int>(l);
  std::vector<double> tau(static_cast<size_t>(l));
  lapack_int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, lr, ll, q, lr, tau.data());
  if (info != 0) {
    return Internal("LAPACK dgeqrf failed with info=" + std::to_string(info) + " on the " + what);
  }
  info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, lr, ll, ll, q, lr, tau.data());
  if (info != 0) {
    return Internal("LAPACK dorgqr failed with info=" + std::to_string(info) + " on the " + what);
  }
  return Status::Ok();
}

namespace {

// Eigenvalues of the symmetric d x d column-major `gram` (upper triangle set; destroyed),
// descending, clamped at 0.
StatusOr<std::vector<double>> SymmetricEigenvalues(std::vector<double>* gram, int64_t d,
                                                   const std::string& what) {
  std::vector<double> eig(static_cast<size_t>(d));
  const lapack_int info = LAPACKE_dsyev(LAPACK_COL_MAJOR, 'N', 'U', static_cast<lapack_int>(d),
                                        gram->data(), static_cast<lapack_int>(d), eig.data());
  if (info != 0) {
    return Internal("LAPACK dsyev failed with info=" + std::to_string(info) +
                    " on the Gram matrix of the " + what);
  }
  std::reverse(eig.begin(), eig.end());  // dsyev sorts ascending
  for (double& e : eig) e = std::max(0.0, e);
  return eig;
}

}  // namespace

StatusOr<std::vector<double>> GramEigenvalues(const double* y, int64_t rows, int64_t l, int64_t ld,
                                              const std::string& what) {
  std::vector<double> gram(static_cast<size_t>(l * l), 0.0);
  cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, static_cast<int>(l), static_cast<int>(rows),
              1.0, y, static_cast<int>(ld), 0.0, gram.data(), static_cast<int>(l));
  return SymmetricEigenvalues(&gram, l, what);
}

StatusOr<std::vector<double>> SquaredSingularValues(const float* a, int64_t m, int64_t n,
                                                    const std::string& what) {
  const int64_t d = std::min(m, n);
  std::vector<double> gram, chunk;
  try {
    gram.assign(static_cast<size_t>(d * d), 0.0);
  } catch (const std::bad_alloc&) {
    return Internal("cannot allocate the Gram matrix of the " + what);
  }
  const int bd = static_cast<int>(d);
  if (m > n) {  // A^T A = At At^T: column blocks of At (n x m) are row blocks of A, contiguous
    const int64_t step = std::max<int64_t>(1, kChunkDoubles / n);
    for (int64_t i0 = 0; i0 < m; i0 += step) {
      const int64_t rc = std::min(step, m - i0);
      chunk.assign(a + i0 * n, a + (i0 + rc) * n);
      cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, bd, static_cast<int>(rc), 1.0,
                  chunk.data(), bd, 1.0, gram.data(), bd);
    }
  } else {  // A A^T = At^T At: row blocks of At (n x m) are column blocks of A, gathered
    const int64_t step = std::max<int64_t>(1, kChunkDoubles / m);
    for (int64_t j0 = 0; j0 < n; j0 += step) {
      const int64_t jc = std::min(step, n - j0);
      chunk.resize(static_cast<size_t>(jc * m));
      for (int64_t i = 0; i < m; ++i) {
        std::copy(a + i * n + j0, a + i * n + j0 + jc, chunk.begin() + i * jc);
      }
      cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, bd, static_cast<int>(jc), 1.0,
                  chunk.data(), static_cast<int>(jc), 1.0, gram.data(), bd);
    }
  }
  return SymmetricEigenvalues(&gram, d, what);
}

}  // namespace kfc::kron
