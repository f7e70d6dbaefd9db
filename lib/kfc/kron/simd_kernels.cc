// SPDX-License-Identifier: Apache-2.0
// Vector kernels of simd_kernels.h, compiled for their instruction sets with target attributes
// and picked by __builtin_cpu_supports; other compilers and CPUs get the scalar loops.
#include "kfc/kron/simd_kernels.h"

#include <algorithm>
#include <cmath>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define KFC_X86_KERNELS 1
#endif

namespace kfc::kron {
namespace {

void AddSquareBlocksScalar(const float* x, int64_t blocks, double acc[8]) {
  for (int64_t b = 0; b < blocks; ++b) {
    for (int k = 0; k < 8; ++k) {
      const double v = static_cast<double>(x[8 * b + k]);
      acc[k] += v * v;
    }
  }
}

#ifdef KFC_X86_KERNELS
// acc[0:4] and acc[4:8] as two independent chains; mul then add (AVX2 without FMA: no
// contraction), so each acc[k] gets the scalar loop's bits.
__attribute__((target("avx2"))) void AddSquareBlocksAvx2(const float* x, int64_t blocks,
                                                         double acc[8]) {
  __m256d lo = _mm256_loadu_pd(acc), hi = _mm256_loadu_pd(acc + 4);
  for (int64_t b = 0; b < blocks; ++b) {
    const __m256d v_lo = _mm256_cvtps_pd(_mm_loadu_ps(x + 8 * b));
    const __m256d v_hi = _mm256_cvtps_pd(_mm_loadu_ps(x + 8 * b + 4));
    lo = _mm256_add_pd(lo, _mm256_mul_pd(v_lo, v_lo));
    hi = _mm256_add_pd(hi, _mm256_mul_pd(v_hi, v_hi));
  }
  _mm256_storeu_pd(acc, lo);
  _mm256_storeu_pd(acc + 4, hi);
}

// Columns of z per register tile and output columns per pass: 4 x 8 doubles by 6 columns of q, 24
// accumulators of the 32 registers.
constexpr int64_t kTileCols = 32;
constexpr int64_t kTileQ = 6;
// Rows of A per sweep over z's tiles: a tile's 32 short runs of A (strided by a row) are read from
// cache by the passes over q's columns after the first, and z (n x l, in L2) is loaded and stored
// once per 32 rows.
constexpr int64_t kSweepRows = 32;
// The first pass over a tile prefetches the same rows two tiles on: 32 strided streams are more
// than the hardware prefetchers follow (2048 x 2048 at l = 18, one thread: 3.9-4.6 ms against
// 4.6-5.4 ms without, and against 4.8-5.6 ms with 8 rows per sweep; in cache the kernel runs at
// about 53 Gflop/s).
constexpr int64_t kPrefetchAhead = 2 * kTileCols;
// Every lane: the zero-masking conversion is the plain one, without GCC 12's false
// -Wmaybe-uninitialized on _mm512_cvtps_pd (GCC bug 105593).
constexpr __mmask8 kAll = 0xFF;

// z[:, c0 .. c0+5] tile at column j0 += the rows i0 .. i0+rc-1 (zeroed first when `first`):
// accumulators in registers, each entry's sum in increasing i.
__attribute__((target("avx512f"))) inline void TileAvx512(const float* a, int64_t i0, int64_t rc,
                                                          int64_t n, const double* q, int64_t l,
                                                          int64_t ldq, int64_t c0, int64_t j0,
                                                          bool first, double* z) {
  __m512d acc[kTileQ][4];
#pragma GCC unroll 6
  for (int c = 0; c < kTileQ; ++c) {
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      acc[c][k] = first || c0 + c >= l ? _mm512_setzero_pd()
                                       : _mm512_loadu_pd(z + (c0 + c) * n + j0 + 8 * k);
    }
  }
  const bool prefetch = c0 == 0 && j0 + kPrefetchAhead + kTileCols <= n;  // within the row
  const float* ai = a + i0 * n + j0;
  const double* qi = q + i0 * ldq + c0;
  for (int64_t i = 0; i < rc; ++i, ai += n, qi += ldq) {
    __m512d r[4];
    if (prefetch) {
      _mm_prefetch(reinterpret_cast<const char*>(ai + kPrefetchAhead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(ai + kPrefetchAhead + 16), _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) r[k] = _mm512_maskz_cvtps_pd(kAll, _mm256_loadu_ps(ai + 8 * k));
#pragma GCC unroll 6
    for (int c = 0; c < kTileQ; ++c) {
      const __m512d qc = _mm512_set1_pd(qi[c]);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) acc[c][k] = _mm512_fmadd_pd(r[k], qc, acc[c][k]);
    }
  }
#pragma GCC unroll 6
  for (int c = 0; c < kTileQ; ++c) {
    if (c0 + c >= l) break;
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) _mm512_storeu_pd(z + (c0 + c) * n + j0 + 8 * k, acc[c][k]);
  }
}

__attribute__((target("avx512f"))) void MultiplyAtRowsAvx512(const float* a, int64_t rows,
                                                             int64_t n, const double* q, int64_t l,
                                                             int64_t ldq, bool first, double* z) {
  const int64_t tiled = n / kTileCols * kTileCols;
  for (int64_t i0 = 0; i0 < rows; i0 += kSweepRows) {
    const int64_t rc = std::min(kSweepRows, rows - i0);
    for (int64_t j0 = 0; j0 < tiled; j0 += kTileCols) {
      for (int64_t c0 = 0; c0 < l; c0 += kTileQ) {
        TileAvx512(a, i0, rc, n, q, l, ldq, c0, j0, first && i0 == 0, z);
      }
    }
  }
  for (int64_t j0 = tiled; j0 < n; ++j0) {  // the last n % 32 columns: the same sums, one by one
    for (int64_t c = 0; c < l; ++c) {
      double sum = first ? 0.0 : z[c * n + j0];
      for (int64_t i = 0; i < rows; ++i) {
        sum = std::fma(static_cast<double>(a[i * n + j0]), q[i * ldq + c], sum);
      }
      z[c * n + j0] = sum;
    }
  }
}

// Rows of A per dot-product tile of MultiplyRowsFloat and columns of xt: 4 x 6 accumulators
// (24 of the 32 registers), each row load used 6 times and each xt load 4 times.
constexpr int kDotRows = 4;

// The sum of the 16 lanes in a fixed order (halves, then quarters, then within 128 bits), without
// _mm512_reduce_add_ps (GCC 12 warns on its undefined lanes).
__attribute__((target("avx512f"), always_inline)) inline float SumLanesAvx512(__m512 v) {
  constexpr __mmask16 kAllLanes = 0xFFFF;  // zero masking: GCC bug 105593, as kAll
  v = _mm512_add_ps(v, _mm512_maskz_shuffle_f32x4(kAllLanes, v, v, 0x4E));
  v = _mm512_add_ps(v, _mm512_maskz_shuffle_f32x4(kAllLanes, v, v, 0xB1));
  __m128 x = _mm512_maskz_extractf32x4_ps(0xF, v, 0);
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 0x55));
  return _mm_cvtss_f32(x);
}

// acc[k][c] += A[k, j:j+16] xt[c0 + c, j:j+16] lane by lane (lanes outside `mask` read as 0).
template <int R>
__attribute__((target("avx512f"), always_inline)) inline void DotStepAvx512(
    const float* a, int64_t n, const float* x0, int64_t ldx, int64_t j, __mmask16 mask,
    const float* next, __m512 (&acc)[R][kTileQ]) {
  __m512 r[R];
  if (next != nullptr) {
#pragma GCC unroll 4
    for (int k = 0; k < R; ++k)
      _mm_prefetch(reinterpret_cast<const char*>(next + k * n + j), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (int k = 0; k < R; ++k) r[k] = _mm512_maskz_loadu_ps(mask, a + k * n + j);
#pragma GCC unroll 6
  for (int c = 0; c < kTileQ; ++c) {
    const __m512 x = _mm512_maskz_loadu_ps(mask, x0 + c * ldx + j);
#pragma GCC unroll 4
    for (int k = 0; k < R; ++k) acc[k][c] = _mm512_fmadd_ps(r[k], x, acc[k][c]);
  }
}

// y[0:R, c0:c0+6] = A[0:R, :] xt[c0:c0+6, :]^T (a and y at the tile's first row): each entry's
// 16 lanes accumulated in increasing j, then added by SumLanesAvx512.
template <int R>
__attribute__((target("avx512f"))) inline void DotTileAvx512(const float* a, int64_t n,
                                                             const float* xt, int64_t ldx,
                                                             int64_t c0, const float* next,
                                                             float* y, int64_t ldy) {
  __m512 acc[R][kTileQ];
#pragma GCC unroll 4
  for (int k = 0; k < R; ++k) {
#pragma GCC unroll 6
    for (int c = 0; c < kTileQ; ++c) acc[k][c] = _mm512_setzero_ps();
  }
  const float* x0 = xt + c0 * ldx;
  const int64_t full = n / 16 * 16;
  for (int64_t j = 0; j < full; j += 16) DotStepAvx512<R>(a, n, x0, ldx, j, 0xFFFF, next, acc);
  if (full < n) {
    DotStepAvx512<R>(a, n, x0, ldx, full, static_cast<__mmask16>((1u << (n - full)) - 1), nullptr,
                     acc);
  }
#pragma GCC unroll 4
  for (int k = 0; k < R; ++k) {
#pragma GCC unroll 6
    for (int c = 0; c < kTileQ; ++c) y[k * ldy + c0 + c] = SumLanesAvx512(acc[k][c]);
  }
}

__attribute__((target("avx512f"))) void MultiplyRowsAvx512(const float* a, int64_t rows, int64_t n,
                                                           const float* xt, int64_t ldx, float* y,
                                                           int64_t ldy) {
  int64_t i = 0;
  for (; i + kDotRows <= rows; i += kDotRows) {
    for (int64_t c0 = 0; c0 < ldy; c0 += kTileQ) {
      // The first pass over the rows fetches the next rows of the block (the hardware
      // prefetchers restart at each row's start).
      const float* next = c0 == 0 && i + 2 * kDotRows <= rows ? a + (i + kDotRows) * n : nullptr;
      DotTileAvx512<kDotRows>(a + i * n, n, xt, ldx, c0, next, y + i * ldy, ldy);
    }
  }
  for (; i < rows; ++i) {
    for (int64_t c0 = 0; c0 < ldy; c0 += kTileQ) {
      DotTileAvx512<1>(a + i * n, n, xt, ldx, c0, nullptr, y + i * ldy, ldy);
    }
  }
}

// Columns of w per tile of AddAtRowsFloat: 4 x 16 floats by 6 columns of y, 24 accumulators.
constexpr int64_t kAtTileCols = 64;

// w[j0:j0+64, c0:c0+6] (+)= A[:, j0:j0+64]^T y[:, c0:c0+6], each sum in increasing row.
__attribute__((target("avx512f"))) inline void AtTileAvx512(const float* a, int64_t rows, int64_t n,
                                                            const float* y, int64_t l, int64_t ldy,
                                                            int64_t c0, int64_t j0, bool first,
                                                            float* w) {
  __m512 acc[kTileQ][4];
#pragma GCC unroll 6
  for (int c = 0; c < kTileQ; ++c) {
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      acc[c][k] = first || c0 + c >= l ? _mm512_setzero_ps()
                                       : _mm512_loadu_ps(w + (c0 + c) * n + j0 + 16 * k);
    }
  }
  const float* ai = a + j0;
  const float* yi = y + c0;
  for (int64_t i = 0; i < rows; ++i, ai += n, yi += ldy) {
    __m512 r[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) r[k] = _mm512_loadu_ps(ai + 16 * k);
#pragma GCC unroll 6
    for (int c = 0; c < kTileQ; ++c) {
      const __m512 yc = _mm512_set1_ps(yi[c]);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) acc[c][k] = _mm512_fmadd_ps(r[k], yc, acc[c][k]);
    }
  }
#pragma GCC unroll 6
  for (int c = 0; c < kTileQ; ++c) {
    if (c0 + c >= l) break;
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) _mm512_storeu_ps(w + (c0 + c) * n + j0 + 16 * k, acc[c][k]);
  }
}

__attribute__((target("avx512f"))) void AddAtRowsAvx512(const float* a, int64_t rows, int64_t n,
                                                        const float* y, int64_t l, int64_t ldy,
                                                        bool first, float* w) {
  const int64_t tiled = n / kAtTileCols * kAtTileCols;
  for (int64_t j0 = 0; j0 < tiled; j0 += kAtTileCols) {
    for (int64_t c0 = 0; c0 < l; c0 += kTileQ)
      AtTileAvx512(a, rows, n, y, l, ldy, c0, j0, first, w);
  }
  for (int64_t j = tiled; j < n; ++j) {  // the last n % 64 columns: the same sums, one by one
    for (int64_t c = 0; c < l; ++c) {
      float sum = first ? 0.0f : w[c * n + j];
      for (int64_t i = 0; i < rows; ++i) sum = std::fma(a[i * n + j], y[i * ldy + c], sum);
      w[c * n + j] = sum;
    }
  }
}

bool CpuHasAvx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}

bool CpuHasAvx512f() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}
#endif

}  // namespace

void AddSquareBlocks(const float* x, int64_t blocks, double acc[8]) {
#ifdef KFC_X86_KERNELS
  static const bool avx2 = CpuHasAvx2();
  if (avx2) {
    AddSquareBlocksAvx2(x, blocks, acc);
    return;
  }
#endif
  AddSquareBlocksScalar(x, blocks, acc);
}

bool HaveDoubleAccumulationKernel() {
#ifdef KFC_X86_KERNELS
  static const bool avx512 = CpuHasAvx512f();
  return avx512;
#else
  return false;
#endif
}

int64_t SweepWidth(int64_t l) { return (l + 5) / 6 * 6; }

bool HaveFloatSweepKernels() { return HaveDoubleAccumulationKernel(); }

void MultiplyRowsFloat(const float* a, int64_t rows, int64_t n, const float* xt, int64_t ldx,
                       float* y, int64_t ldy) {
#ifdef KFC_X86_KERNELS
  MultiplyRowsAvx512(a, rows, n, xt, ldx, y, ldy);
#else
  (void)a, (void)rows, (void)n, (void)xt, (void)ldx, (void)y, (void)ldy;
#endif
}

void AddAtRowsFloat(const float* a, int64_t rows, int64_t n, const float* y, int64_t l, int64_t ldy,
                    bool first, float* w) {
#ifdef KFC_X86_KERNELS
  AddAtRowsAvx512(a, rows, n, y, l, ldy, first, w);
#else
  (void)a, (void)rows, (void)n, (void)y, (void)l, (void)ldy, (void)first, (void)w;
#endif
}

void MultiplyAtRowsDouble(const float* a, int64_t rows, int64_t n, const double* q, int64_t l,
                          int64_t ldq, bool first, double* z) {
#ifdef KFC_X86_KERNELS
  MultiplyAtRowsAvx512(a, rows, n, q, l, ldq, first, z);
#else
  (void)a, (void)rows, (void)n, (void)q, (void)l, (void)ldq, (void)first, (void)z;
#endif
}

}  // namespace kfc::kron
