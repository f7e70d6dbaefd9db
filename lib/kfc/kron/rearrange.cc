// SPDX-License-Identifier: Apache-2.0
// The rearrangement W -> R, tiled; symbols as in rearrange.h.
#include "kfc/kron/rearrange.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <new>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define KFC_X86_KERNELS 1
#endif

namespace kfc::kron {
namespace {

// Writes R for `shape` (validated) into `r` (K*N elements). W[i1*k2 + i2, j1*n2 + j2] ->
// R[i1*n1 + j1, i2*n2 + j2]: each run of n2 contiguous elements of W lands contiguously in R. For
// one i1 this moves a k2 x n1 grid of such runs to an n1 x k2 grid (a transpose of runs), done in
// tiles so short runs (n2 = 1 makes R a plain transpose of W's panels) stay cache-friendly.
template <typename S, typename T>
void RearrangeInto(const S* w, int64_t N, const KronShape& shape, T* r) {
  const int64_t k1 = shape.k1, n1 = shape.n1, k2 = shape.k2, n2 = shape.n2;
  const int64_t r_cols = k2 * n2;
  // Tile edge in runs: about 4 KB of source per tile row.
  const int64_t tile = std::max<int64_t>(1, std::min<int64_t>(64, 1024 / n2));
  for (int64_t i1 = 0; i1 < k1; ++i1) {
    for (int64_t i2_0 = 0; i2_0 < k2; i2_0 += tile) {
      const int64_t i2_end = std::min(k2, i2_0 + tile);
      for (int64_t j1_0 = 0; j1_0 < n1; j1_0 += tile) {
        const int64_t j1_end = std::min(n1, j1_0 + tile);
        for (int64_t i2 = i2_0; i2 < i2_end; ++i2) {
          const S* w_row = w + (i1 * k2 + i2) * N;
          for (int64_t j1 = j1_0; j1 < j1_end; ++j1) {
            const S* src = w_row + j1 * n2;
            T* dst = r + (i1 * n1 + j1) * r_cols + i2 * n2;
            for (int64_t j2 = 0; j2 < n2; ++j2) dst[j2] = static_cast<T>(src[j2]);
          }
        }
      }
    }
  }
}

#ifdef KFC_X86_KERNELS
// One block of k2 rows of W (k1 = 1: R's rows 0 .. n1-1) read once, in W's order: each run of n2
// (a multiple of 8) floats is stored in R and its squares added to acc[0:8] (element e of the block
// to acc[e % 8], in increasing e; convert, multiply, add, no fused multiply-add: the bits of
// AddSquareBlocks). The norm then costs no second read of the block: from the page cache, a read
// from memory.
__attribute__((target("avx2"))) void RearrangeBlockSquaresAvx2(const float* w, int64_t N,
                                                               const KronShape& shape, float* r,
                                                               double acc[8]) {
  const int64_t n1 = shape.n1, k2 = shape.k2, n2 = shape.n2, r_cols = k2 * n2;
  __m256d lo = _mm256_loadu_pd(acc), hi = _mm256_loadu_pd(acc + 4);
  for (int64_t i2 = 0; i2 < k2; ++i2) {
    const float* w_row = w + i2 * N;
    for (int64_t j1 = 0; j1 < n1; ++j1) {
      const float* src = w_row + j1 * n2;
      float* dst = r + j1 * r_cols + i2 * n2;
      for (int64_t j2 = 0; j2 < n2; j2 += 8) {
        const __m256 v = _mm256_loadu_ps(src + j2);
        _mm256_storeu_ps(dst + j2, v);
        const __m256d v_lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        const __m256d v_hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        lo = _mm256_add_pd(lo, _mm256_mul_pd(v_lo, v_lo));
        hi = _mm256_add_pd(hi, _mm256_mul_pd(v_hi, v_hi));
      }
    }
  }
  _mm256_storeu_pd(acc, lo);
  _mm256_storeu_pd(acc + 4, hi);
}

bool HaveAvx2() { return __builtin_cpu_supports("avx2"); }
#endif

template <typename S, typename T>
Status RearrangeIntoVector(const S* w, int64_t K, int64_t N, const KronShape& shape,
                           std::vector<T>* r) {
  KFC_RETURN_IF_ERROR(ValidateDims(K, N, shape));
  if (w == nullptr) return InvalidArgument("weight " + DimsString(K, N) + " has no data (null)");
  try {
    r->resize(static_cast<size_t>(K * N));
  } catch (const std::bad_alloc&) {
    return Internal("cannot allocate the rearranged matrix for weight " + DimsString(K, N));
  }
  RearrangeInto(w, N, shape, r->data());
  return Status::Ok();
}

}  // namespace

StatusOr<std::vector<double>> Rearrange(const float* w, int64_t K, int64_t N,
                                        const KronShape& shape) {
  std::vector<double> r;
  KFC_RETURN_IF_ERROR(RearrangeIntoVector(w, K, N, shape, &r));
  return r;
}

StatusOr<std::vector<double>> Rearrange(const double* w, int64_t K, int64_t N,
                                        const KronShape& shape) {
  std::vector<double> r;
  KFC_RETURN_IF_ERROR(RearrangeIntoVector(w, K, N, shape, &r));
  return r;
}

StatusOr<std::vector<float>> RearrangeFloat(const float* w, int64_t K, int64_t N,
                                            const KronShape& shape) {
  std::vector<float> r;
  KFC_RETURN_IF_ERROR(RearrangeFloatInto(w, K, N, shape, &r));
  return r;
}

Status RearrangeFloatInto(const float* w, int64_t K, int64_t N, const KronShape& shape,
                          std::vector<float>* r) {
  return RearrangeIntoVector(w, K, N, shape, r);
}

Status RearrangeFloatTo(const float* w, int64_t K, int64_t N, const KronShape& shape, float* r) {
  KFC_RETURN_IF_ERROR(ValidateDims(K, N, shape));
  if (w == nullptr || r == nullptr) {
    return InvalidArgument("weight " + DimsString(K, N) + " has no data (null)");
  }
  RearrangeInto(w, N, shape, r);
  return Status::Ok();
}

BlockRearranger::BlockRearranger(int64_t K, int64_t N, const KronShape& shape, float* r)
    : N_(N), shape_(shape), r_(r) {
  (void)K;
}

Status BlockRearranger::Add(const float* rows) {
  if (done()) return FailedPrecondition("all blocks of the rearranged matrix were added");
  const int64_t block = shape_.k2 * N_;
  KronShape one = shape_;  // RearrangeInto with k1 = 1 on the block
  one.k1 = 1;
  float* const out = r_ + next_ * block;
  bool rearranged = false;
#ifdef KFC_X86_KERNELS
  // Runs of at least 16 floats (64 bytes) are written whole lines at a time without tiling.
  static const bool avx2 = HaveAvx2();
  if (avx2 && shape_.n2 % 8 == 0 && shape_.n2 >= 16 && squares_.count_so_far() % 8 == 0) {
    squares_.AddGroupsWith(
        block, [&](double acc[8]) { RearrangeBlockSquaresAvx2(rows, N_, one, out, acc); });
    rearranged = true;
  }
#endif
  if (!rearranged) squares_.Add(rows, block);  // from the block, just read: in cache
  if (!std::isfinite(squares_.Total())) {
    return FindNonFinite(rows, shape_.k2, N_, next_ * shape_.k2);
  }
  if (!rearranged) RearrangeInto(rows, N_, one, out);
  ++next_;
  return Status::Ok();
}

double BlockRearranger::norm() const { return std::sqrt(squares_.Total()); }

Status RearrangeFloatInPlace(float* w, int64_t K, int64_t N, const KronShape& shape) {
  KFC_RETURN_IF_ERROR(ValidateDims(K, N, shape));
  if (w == nullptr) return InvalidArgument("weight " + DimsString(K, N) + " has no data (null)");
  const int64_t block = shape.k2 * N;  // == shape.n1 * (k2 * n2)
  std::unique_ptr<float[]> copy;
  try {
    copy.reset(new float[static_cast<size_t>(block)]);
  } catch (const std::bad_alloc&) {
    return Internal("cannot allocate a block of the rearranged matrix for weight " +
                    DimsString(K, N));
  }
  // One i1 at a time: its block of W, copied, is rearranged back in place (RearrangeInto with
  // k1 = 1 on the copy).
  KronShape one = shape;
  one.k1 = 1;
  for (int64_t i1 = 0; i1 < shape.k1; ++i1) {
    float* const b = w + i1 * block;
    std::copy(b, b + block, copy.get());
    RearrangeInto(copy.get(), N, one, b);
  }
  return Status::Ok();
}

}  // namespace kfc::kron
