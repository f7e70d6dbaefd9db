// SPDX-License-Identifier: Apache-2.0
// Thin products with a float32 matrix and small double-precision pieces; see matrix_passes.h.
#include "kfc/kron/matrix_passes.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <new>
#include <optional>

#include "kfc/core/parallel.h"
#include "kfc/kron/blas_threads.h"
#include "kfc/kron/scratch.h"
#include "kfc/kron/simd_kernels.h"

namespace kfc::kron {
namespace {

// Rows of A converted to double per dgemm call: about 1 MB of doubles, so the chunk stays in cache
// while dgemm reads it, and the buffer stays small against the matrix.
constexpr int64_t kChunkDoubles = int64_t{1} << 17;
// Symmetric eigenproblems up to this size run with one BLAS thread (about 0.5 ms against 60 us
// for a 26 x 26 one through a 2-thread pool, measured).
constexpr int64_t kSingleThreadedEigenMax = 128;
// Bytes of A' per block of MultiplyGram: the block is read twice (Y_b = A'_b x, then
// z += A'_b^T Y_b), the second time from cache.
constexpr int64_t kFusedBlockBytes = int64_t{1} << 20;

// Uninitialized scratch: every element is written before it is read, and value-initializing
// (std::vector) cost a memset as large as the product on each of the search's hundreds of calls.
template <typename T>
std::unique_ptr<T[]> Scratch(size_t size) {
  return std::unique_ptr<T[]>(new T[size]);
}

// Output rows per block of Product: fixed, so the blocks (and each one's BLAS call) are the same
// whatever the number of threads that run them (ParallelBlocks).
constexpr int64_t kProductBlockRows = 256;
// Rows of A per sgemm call of the float32 A x: calls this small (16 x l x n multiply-adds at
// l = 18, n = 2048) take OpenBLAS's small-matrix kernel, which reads A where it lies instead of
// packing it first: 2.2 ms against 4.2 ms for 2048 x 2048 at l = 18 in blocks of 256 rows
// (single thread, measured).
constexpr int64_t kThinProductRows = 16;
// Row blocks of the double-accumulation A^T in, each with a partial sum as large as the result.
constexpr int64_t kMaxSumBlocks = 8;

// out (n x l) = A^T in (in m x l) in float32: A's rows in at most kMaxSumBlocks fixed groups, each
// summing its own partial (n x l, row-major float) over sgemm calls of kThinProductRows rows
// (OpenBLAS's small-matrix kernel, no packing of A: 2.6 ms against 3.5 ms for one call per 256
// columns, 2048 x 2048 at l = 18, measured); the partials are added in group order, in double.
void ThinProductT(const float* a, int64_t m, int64_t n, const double* in, int64_t l, double* out) {
  const int64_t group_rows = std::max(kProductBlockRows, (m + kMaxSumBlocks - 1) / kMaxSumBlocks);
  const int64_t groups = (m + group_rows - 1) / group_rows;
  const auto z_size = static_cast<size_t>(n * l);
  float* const in_f = ScratchFloats(ScratchSlot::kProductIn, static_cast<size_t>(m * l));
  float* const partial =
      ScratchFloats(ScratchSlot::kProductOut, static_cast<size_t>(groups) * z_size);
  for (int64_t i = 0; i < m; ++i) {  // in row-major (m x l): each call's rows contiguous
    for (int64_t c = 0; c < l; ++c) in_f[i * l + c] = static_cast<float>(in[c * m + i]);
  }
  const int bn = static_cast<int>(n), bl = static_cast<int>(l);
  ParallelBlocks(groups, [&](int64_t g) {
    float* const z = partial + static_cast<size_t>(g) * z_size;
    const int64_t start = g * group_rows, end = std::min(m, start + group_rows);
    for (int64_t i0 = start; i0 < end; i0 += kThinProductRows) {
      const int64_t rc = std::min(kThinProductRows, end - i0);
      // Row-major z (n x l) += A_b^T (n x rc) in_b (rc x l).
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, bn, bl, static_cast<int>(rc), 1.0f,
                  a + i0 * n, bn, in_f + i0 * l, bl, i0 == start ? 0.0f : 1.0f, z, bl);
    }
  });
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t c = 0; c < l; ++c) {
      double sum = 0.0;
      for (int64_t g = 0; g < groups; ++g)
        sum += partial[static_cast<size_t>(g) * z_size + j * l + c];
      out[c * n + j] = sum;
    }
  }
}

// out = A in (m x l, for in n x l) or, with `transpose`, A^T in (n x l, for in m x l), in blocks
// of output rows: rows of A for A in, columns of A (rows of At) for the double A^T in (the float
// one is ThinProductT's). The blocking is fixed by the sizes alone, never by the thread count.
void Product(const float* a, int64_t m, int64_t n, bool transpose, const double* in, int64_t l,
             double* out, PassPrecision precision) {
  const int64_t in_rows = transpose ? m : n, out_rows = transpose ? n : m;
  const int bn = static_cast<int>(n), bl = static_cast<int>(l);
  const int64_t blocks = (out_rows + kProductBlockRows - 1) / kProductBlockRows;
  // BLAS sees A^T column-major (n x m): transpose it back for A in, use it as is for A^T in.
  const CBLAS_TRANSPOSE op = transpose ? CblasNoTrans : CblasTrans;
  if (precision == PassPrecision::kFloat32 && transpose) {
    ThinProductT(a, m, n, in, l, out);
    return;
  }
  if (precision == PassPrecision::kFloat32) {
    const auto in_size = static_cast<size_t>(in_rows * l),
               out_size = static_cast<size_t>(out_rows * l);
    float* const in_f = ScratchFloats(ScratchSlot::kProductIn, in_size);
    float* const out_f = ScratchFloats(ScratchSlot::kProductOut, out_size);
    std::copy(in, in + in_size, in_f);
    ParallelBlocks(blocks, [&](int64_t b) {
      const int64_t r0 = b * kProductBlockRows, rc = std::min(kProductBlockRows, out_rows - r0);
      // Block rows r0.. of A (transpose: of At, i.e. columns r0.. of A). A x goes
      // kThinProductRows rows per sgemm call, A^T y the whole block in one.
      const int64_t step = transpose ? rc : kThinProductRows;
      for (int64_t s0 = 0; s0 < rc; s0 += step) {
        const int64_t sc = std::min(step, rc - s0);
        const float* a_b = transpose ? a + r0 : a + (r0 + s0) * n;
        cblas_sgemm(CblasColMajor, op, CblasNoTrans, static_cast<int>(sc), bl,
                    static_cast<int>(in_rows), 1.0f, a_b, bn, in_f, static_cast<int>(in_rows), 0.0f,
                    out_f + r0 + s0, static_cast<int>(out_rows));
      }
      for (int64_t c = 0; c < l; ++c) {
        const float* src = out_f + c * out_rows + r0;
        std::copy(src, src + rc, out + c * out_rows + r0);
      }
    });
    return;
  }
  if (!transpose) {  // out[r0 : r0 + rc, :] = rows in, rows converted a chunk at a time
    const int64_t chunk =
        std::max<int64_t>(1, std::min<int64_t>(kProductBlockRows, kChunkDoubles / n));
    const int64_t row_blocks = (m + chunk - 1) / chunk;
    ParallelBlocks(row_blocks, [&](int64_t b) {
      const int64_t i0 = b * chunk, rc = std::min(chunk, m - i0);
      double* rows = ScratchDoubles(ScratchSlot::kProductChunk, static_cast<size_t>(rc * n));
      std::copy(a + i0 * n, a + (i0 + rc) * n, rows);
      cblas_dgemm(CblasColMajor, op, CblasNoTrans, static_cast<int>(rc), bl, bn, 1.0, rows, bn, in,
                  bn, 0.0, out + i0, static_cast<int>(m));
    });
    return;
  }
  // out = sum over row blocks b of A_b^T in_b: each block (at most kMaxSumBlocks of them, of at
  // least kProductBlockRows rows) accumulates its own partial sum, its rows converted to double a
  // contiguous chunk at a time; the partials are then added in block order.
  const int64_t block_rows = std::max(kProductBlockRows, (m + kMaxSumBlocks - 1) / kMaxSumBlocks);
  const int64_t row_blocks = (m + block_rows - 1) / block_rows;
  const auto z_size = static_cast<size_t>(n * l);
  double* const partial =
      ScratchDoubles(ScratchSlot::kProductPartial, static_cast<size_t>(row_blocks - 1) * z_size);
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(block_rows, kChunkDoubles / n));
  const bool kernel = HaveDoubleAccumulationKernel();
  ParallelBlocks(row_blocks, [&](int64_t b) {
    double* const z = b == 0 ? out : partial + static_cast<size_t>(b - 1) * z_size;
    const int64_t end = std::min(m, (b + 1) * block_rows);
    if (kernel) {  // float rows read as they lie; in's rows of the block row-major, zero-padded
      const int64_t i0 = b * block_rows, rc = end - i0, ldq = (l + 5) / 6 * 6;
      double* q = ScratchDoubles(ScratchSlot::kProductChunk, static_cast<size_t>(rc * ldq));
      for (int64_t i = 0; i < rc; ++i) {
        for (int64_t c = 0; c < ldq; ++c) q[i * ldq + c] = c < l ? in[c * m + i0 + i] : 0.0;
      }
      MultiplyAtRowsDouble(a + i0 * n, rc, n, q, l, ldq, /*first=*/true, z);
      return;
    }
    double* rows = ScratchDoubles(ScratchSlot::kProductChunk, static_cast<size_t>(chunk * n));
    for (int64_t i0 = b * block_rows; i0 < end; i0 += chunk) {
      const int64_t rc = std::min(chunk, end - i0);
      std::copy(a + i0 * n, a + (i0 + rc) * n, rows);
      cblas_dgemm(CblasColMajor, op, CblasNoTrans, bn, bl, static_cast<int>(rc), 1.0, rows, bn,
                  in + i0, static_cast<int>(m), i0 == b * block_rows ? 0.0 : 1.0, z, bn);
    }
  });
  for (int64_t b = 1; b < row_blocks; ++b) {
    const double* z = partial + static_cast<size_t>(b - 1) * z_size;
    for (size_t k = 0; k < z_size; ++k) out[k] += z[k];
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

void MultiplyGram(const float* a, int64_t m, int64_t n, bool transpose, const double* x, int64_t l,
                  double* z, int64_t g, std::vector<double>* gram) {
  if (gram != nullptr) gram->assign(static_cast<size_t>(g * g), 0.0);
  auto add_gram = [&](const double* y, int64_t rows) {
    if (gram == nullptr) return;
    cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, static_cast<int>(g), static_cast<int>(rows),
                1.0, y, static_cast<int>(rows), 1.0, gram->data(), static_cast<int>(g));
  };
  if (transpose) {
    // Row blocks of A^T are column blocks of A, short strided runs: blocking them was measured
    // 1.1-1.8x slower than two plain products.
    const auto y = Scratch<double>(static_cast<size_t>(n * l));
    MultiplyAt(a, m, n, x, l, y.get(), PassPrecision::kFloat32);
    MultiplyA(a, m, n, y.get(), l, z, PassPrecision::kFloat32);
    add_gram(y.get(), n);
    return;
  }
  // Row blocks of A, contiguous; BLAS sees block b as the column-major n x bs A_b^T.
  const int64_t bs = std::max<int64_t>(16, std::min<int64_t>(m, kFusedBlockBytes / (4 * n)));
  const auto x_size = static_cast<size_t>(n * l), y_size = static_cast<size_t>(bs * l);
  const auto x_f = Scratch<float>(x_size), z_f = Scratch<float>(x_size),
             y_f = Scratch<float>(y_size);
  const auto y_d = Scratch<double>(static_cast<size_t>(bs * g));
  std::copy(x, x + x_size, x_f.get());
  const int bn = static_cast<int>(n), bl = static_cast<int>(l);
  for (int64_t i0 = 0; i0 < m; i0 += bs) {
    const int64_t rc = std::min(bs, m - i0);
    const int brc = static_cast<int>(rc);
    // Y_b (rc x l) = A_b x; z (n x l) += A_b^T Y_b (the first block overwrites).
    cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, brc, bl, bn, 1.0f, a + i0 * n, bn,
                x_f.get(), bn, 0.0f, y_f.get(), brc);
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, bn, bl, brc, 1.0f, a + i0 * n, bn,
                y_f.get(), brc, i0 == 0 ? 0.0f : 1.0f, z_f.get(), bn);
    if (gram != nullptr) {
      std::copy(y_f.get(), y_f.get() + rc * g, y_d.get());
      add_gram(y_d.get(), rc);
    }
  }
  std::copy(z_f.get(), z_f.get() + x_size, z);
}

void MultiplyAAndAt(const float* a, int64_t m, int64_t n, const double* x, int64_t l, double* y,
                    double* w, PassPrecision w_precision) {
  const bool float_w = w_precision == PassPrecision::kFloat32;
  if (!HaveFloatSweepKernels()) {
    MultiplyA(a, m, n, x, l, y, PassPrecision::kFloat32);
    MultiplyAt(a, m, n, y, l, w, w_precision);
    return;
  }
  // Blocks of rows fixed by n alone, about half the L2 cache (A_b is read from memory by the
  // first kernel and from cache by the second), grouped as ThinProductT's.
  const int64_t block_rows = std::max<int64_t>(4, kFusedBlockBytes / 2 / (4 * n) / 4 * 4);
  int64_t group_rows = std::max(kProductBlockRows, (m + kMaxSumBlocks - 1) / kMaxSumBlocks);
  group_rows = (group_rows + block_rows - 1) / block_rows * block_rows;
  const int64_t groups = (m + group_rows - 1) / group_rows;
  const int64_t lp = SweepWidth(l);
  const auto w_size = static_cast<size_t>(n * l);
  // x column-major is x^T row-major: its columns converted to float, zero rows up to lp, each
  // row 64 bytes further along than n floats so the rows the kernel reads at once (and A's,
  // 4 KiB apart when n is a multiple of 1024) do not all fall in one set of the 8-way L1 cache.
  const int64_t ldx = n + 16;
  float* const xt = ScratchFloats(ScratchSlot::kProductIn, static_cast<size_t>(lp * ldx));
  float* const y_f = ScratchFloats(ScratchSlot::kProductOut, static_cast<size_t>(m * lp));
  float* const partial_f =
      float_w ? ScratchFloats(ScratchSlot::kProductPartial, static_cast<size_t>(groups) * w_size)
              : nullptr;
  double* const partial_d =
      float_w ? nullptr
              : ScratchDoubles(ScratchSlot::kProductPartial, static_cast<size_t>(groups) * w_size);
  for (int64_t c = 0; c < lp; ++c) {
    float* const row = xt + c * ldx;
    if (c < l) {
      std::copy(x + c * n, x + (c + 1) * n, row);
    } else {
      std::fill(row, row + n, 0.0f);
    }
  }
  ParallelBlocks(groups, [&](int64_t g) {
    const int64_t start = g * group_rows, end = std::min(m, start + group_rows);
    for (int64_t i0 = start; i0 < end; i0 += block_rows) {
      const int64_t rc = std::min(block_rows, end - i0);
      float* const y_b = y_f + i0 * lp;  // rc x lp row-major, columns l.. zero
      MultiplyRowsFloat(a + i0 * n, rc, n, xt, ldx, y_b, lp);
      if (float_w) {
        AddAtRowsFloat(a + i0 * n, rc, n, y_b, l, lp, i0 == start,
                       partial_f + static_cast<size_t>(g) * w_size);
      } else {  // the block's floats of y, exact in double
        double* const q = ScratchDoubles(ScratchSlot::kProductChunk, static_cast<size_t>(rc * lp));
        std::copy(y_b, y_b + rc * lp, q);
        MultiplyAtRowsDouble(a + i0 * n, rc, n, q, l, lp, i0 == start,
                             partial_d + static_cast<size_t>(g) * w_size);
      }
    }
  });
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t c = 0; c < l; ++c) y[c * m + i] = y_f[i * lp + c];
  }
  // w = ((p_0 + p_1) + p_2) + ..., one group's partial at a time (sequential reads).
  for (int64_t g = 0; g < groups; ++g) {
    const size_t at = static_cast<size_t>(g) * w_size;
    if (float_w) {
      const float* p = partial_f + at;
      for (size_t k = 0; k < w_size; ++k) w[k] = (g == 0 ? 0.0 : w[k]) + static_cast<double>(p[k]);
    } else {
      const double* p = partial_d + at;
      for (size_t k = 0; k < w_size; ++k) w[k] = (g == 0 ? 0.0 : w[k]) + p[k];
    }
  }
}

Status Orthonormalize(int64_t rows, int64_t l, double* q, const std::string& what,
                      std::vector<double>* r_factor) {
  const lapack_int lr = static_cast<lapack_int>(rows), ll = static_cast<lapack_int>(l);
  std::vector<double> tau(static_cast<size_t>(l));
  lapack_int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, lr, ll, q, lr, tau.data());
  if (info != 0) {
    return Internal("LAPACK dgeqrf failed with info=" + std::to_string(info) + " on the " + what);
  }
  if (r_factor != nullptr) {
    r_factor->assign(static_cast<size_t>(l * l), 0.0);
    for (int64_t c = 0; c < l; ++c) {
      std::copy(q + c * rows, q + c * rows + c + 1, r_factor->begin() + c * l);
    }
  }
  info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, lr, ll, ll, q, lr, tau.data());
  if (info != 0) {
    return Internal("LAPACK dorgqr failed with info=" + std::to_string(info) + " on the " + what);
  }
  return Status::Ok();
}

StatusOr<std::vector<double>> SymmetricEigenvalues(std::vector<double>* a, int64_t d,
                                                   const std::string& what) {
  std::vector<double> eig(static_cast<size_t>(d));
  // Small problems run an order of magnitude faster without OpenBLAS's thread pool.
  std::optional<ScopedBlasThreads> single;
  if (d <= kSingleThreadedEigenMax) single.emplace(1);
  const lapack_int info = LAPACKE_dsyev(LAPACK_COL_MAJOR, 'N', 'U', static_cast<lapack_int>(d),
                                        a->data(), static_cast<lapack_int>(d), eig.data());
  if (info != 0) {
    return Internal("LAPACK dsyev failed with info=" + std::to_string(info) + " on the " + what);
  }
  std::reverse(eig.begin(), eig.end());  // dsyev sorts ascending
  for (double& e : eig) e = std::max(0.0, e);
  return eig;
}

StatusOr<std::vector<double>> GramEigenvalues(const double* y, int64_t rows, int64_t l, int64_t ld,
                                              const std::string& what) {
  std::vector<double> gram(static_cast<size_t>(l * l), 0.0);
  cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, static_cast<int>(l), static_cast<int>(rows),
              1.0, y, static_cast<int>(ld), 0.0, gram.data(), static_cast<int>(l));
  return SymmetricEigenvalues(&gram, l, "Gram matrix of the " + what);
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
  return SymmetricEigenvalues(&gram, d, "Gram matrix of the " + what);
}

StatusOr<RitzBlock> MakeRitzBlock(const double* v, const double* z, int64_t n, int64_t l,
                                  const std::string& what) {
  RitzBlock b;
  b.l = l;
  const int ni = static_cast<int>(n), li = static_cast<int>(l);
  std::vector<double> coef(static_cast<size_t>(l * l)), res(z, z + n * l);
  cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, li, li, ni, 1.0, v, ni, z, ni, 0.0,
              coef.data(), li);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, ni, li, li, -1.0, v, ni, coef.data(), li,
              1.0, res.data(), ni);
  b.a.assign(coef.size(), 0.0);
  for (int64_t j = 0; j < l; ++j) {
    for (int64_t i = 0; i <= j; ++i) b.a[j * l + i] = 0.5 * (coef[j * l + i] + coef[i * l + j]);
  }
  b.s.assign(coef.size(), 0.0);
  cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, li, ni, 1.0, res.data(), ni, 0.0, b.s.data(),
              li);
  std::vector<double> scratch = b.s;
  KFC_ASSIGN_OR_RETURN(const std::vector<double> s_eig,
                       SymmetricEigenvalues(&scratch, l, "Ritz residual of " + what));
  b.res_norm = std::sqrt(s_eig.front());
  scratch = b.a;
  KFC_ASSIGN_OR_RETURN(b.theta, SymmetricEigenvalues(&scratch, l, "Ritz block of " + what));
  return b;
}

StatusOr<std::vector<double>> SchurEigenvalueBounds(const RitzBlock& b, int64_t count, double gamma,
                                                    double delta, const std::string& what) {
  const int64_t l = b.l;
  const double s_shift = (2.0 * b.res_norm + delta) * delta;
  const double s_norm = b.res_norm * b.res_norm + s_shift;
  std::vector<double> t(b.a.size());
  // g_i(lambda) for lambda > gamma.
  auto g = [&](int64_t i, double lambda) -> StatusOr<double> {
    const double inv = 1.0 / (lambda - gamma);
    for (size_t k = 0; k < t.size(); ++k) t[k] = b.a[k] + b.s[k] * inv;
    for (int64_t k = 0; k < l; ++k) t[static_cast<size_t>(k * l + k)] += delta + s_shift * inv;
    KFC_ASSIGN_OR_RETURN(const std::vector<double> eig,
                         SymmetricEigenvalues(&t, l, "Schur bound of " + what));
    return eig[static_cast<size_t>(i)];
  };
  const int64_t q = std::min(count, l);
  std::vector<double> sums(static_cast<size_t>(l + 1), 0.0);
  double previous = std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < l; ++i) {
    if (i < q) {
      // Weyl: g_i(lambda) <= theta_i + delta + s_norm / (lambda - gamma), whose fixed point is a
      // valid start. Then fixed-point steps: from lambda >= rho_i, g_i lands at or below rho_i,
      // and from there back at or above it; only points checked to have g_i(lambda) <= lambda
      // count. They converge fast where |g_i'| = u^T S u / (lambda - gamma)^2 is small, i.e.
      // where the bound is tight anyway. The factor covers dsyev's rounding.
      const double a = b.theta[static_cast<size_t>(i)] + delta;
      double valid = std::min(
          previous, 0.5 * (a + gamma + std::sqrt((a - gamma) * (a - gamma) + 4.0 * s_norm)));
      double x = valid;
      for (int step = 0; step < 6 && x > gamma; ++step) {
        KFC_ASSIGN_OR_RETURN(const double y, g(i, x));
        if (y <= x) valid = std::min(valid, x);
        if (std::abs(y - x) <= 1e-7 * x) break;
        x = y;
      }
      previous = std::max(gamma, valid * (1.0 + 1e-12));
    }
    sums[static_cast<size_t>(i + 1)] = sums[static_cast<size_t>(i)] + previous;
  }
  return sums;
}

}  // namespace kfc::kron
