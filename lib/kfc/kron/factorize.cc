// SPDX-License-Identifier: Apache-2.0
// Nearest sum of Kronecker products: SVD of the rearranged matrix (rearrange.h; LAPACK dgesdd or
// the truncated SVD), factor split and error accounting. Symbols follow factorize.h: W is K x N,
// A_t is k1 x n1, B_t is k2 x n2, R is (k1*n1) x (k2*n2), all row-major; m = k1*n1 and n = k2*n2
// are R's dimensions.
#include "kfc/kron/factorize.h"

#include <lapacke.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

#include "kfc/kron/lapack_limits.h"
#include "kfc/kron/norms.h"
#include "kfc/kron/rearrange.h"
#include "kfc/kron/truncated_svd.h"

namespace kfc::kron {
namespace {

// ||W||_F (SquareSum's eight interleaved partial sums). A NaN or infinity makes the sum
// non-finite, and only then is W scanned again for the first one.
template <typename T>
StatusOr<double> FrobeniusNormOf(const T* w, int64_t K, int64_t N) {
  SquareSum squares;
  squares.Add(w, K * N);
  const double sum = squares.Total();
  if (!std::isfinite(sum)) KFC_RETURN_IF_ERROR(FindNonFinite(w, K, N));
  return std::sqrt(sum);
}

}  // namespace

StatusOr<double> CheckedFrobeniusNorm(const float* w, int64_t K, int64_t N) {
  return FrobeniusNormOf(w, K, N);
}

StatusOr<double> CheckedFrobeniusNorm(const double* w, int64_t K, int64_t N) {
  return FrobeniusNormOf(w, K, N);
}

double SpectrumError(const std::vector<double>& singular_values, int64_t rank,
                     double frobenius_norm) {
  if (frobenius_norm <= 0.0) return 0.0;
  double discarded = 0.0;  // summed smallest first for accuracy
  for (int64_t t = static_cast<int64_t>(singular_values.size()) - 1; t >= rank && t >= 0; --t) {
    discarded += singular_values[static_cast<size_t>(t)] * singular_values[static_cast<size_t>(t)];
  }
  return std::sqrt(discarded) / frobenius_norm;
}

namespace {

template <typename T>
StatusOr<std::vector<double>> SingularValuesOf(const T* w, int64_t K, int64_t N,
                                               const KronShape& shape, double* frobenius_norm) {
  KFC_RETURN_IF_ERROR(ValidateDims(K, N, shape));
  const int64_t m = shape.k1 * shape.n1, n = shape.k2 * shape.n2, mn = std::min(m, n);
  KFC_RETURN_IF_ERROR(CheckDgesddDims(m, n, "rearranged matrix"));
  if (w == nullptr) return InvalidArgument("weight " + DimsString(K, N) + " has no data (null)");
  KFC_ASSIGN_OR_RETURN(*frobenius_norm, FrobeniusNormOf(w, K, N));
  KFC_ASSIGN_OR_RETURN(std::vector<double> r, Rearrange(w, K, N, shape));
  std::vector<double> s(static_cast<size_t>(mn));
  // Same memory trick as Factorize: R row-major is R^T column-major; singular values agree.
  const lapack_int info =
      LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', static_cast<lapack_int>(n), static_cast<lapack_int>(m),
                     r.data(), static_cast<lapack_int>(n), s.data(), nullptr, 1, nullptr, 1);
  if (info != 0) {
    return Internal("LAPACK dgesdd failed with info=" + std::to_string(info) + " on the " +
                    DimsString(m, n) + " rearranged matrix for shape " + ShapeString(shape));
  }
  return s;
}

}  // namespace

StatusOr<std::vector<double>> SingularValues(const float* w, int64_t K, int64_t N,
                                             const KronShape& shape, double* frobenius_norm) {
  return SingularValuesOf(w, K, N, shape, frobenius_norm);
}

StatusOr<std::vector<double>> SingularValues(const double* w, int64_t K, int64_t N,
                                             const KronShape& shape, double* frobenius_norm) {
  return SingularValuesOf(w, K, N, shape, frobenius_norm);
}

namespace {

// A_t = reshape(sqrt(s_t) U[:, t]), B_t = reshape(sqrt(s_t) V[:, t]) from triplets whose signs
// ComputeTruncatedSvd normalized, rounded to T, the precision of the weight (see KronFactors).
template <typename T>
void SplitFactors(const TruncatedSvd& t, KronFactors* out) {
  const int64_t m = t.rows, n = t.cols, rank = t.rank;
  out->a.resize(static_cast<size_t>(rank * m));
  out->b.resize(static_cast<size_t>(rank * n));
  for (int64_t k = 0; k < rank; ++k) {
    const double scale = std::sqrt(t.s[static_cast<size_t>(k)]);
    double* a_k = out->a.data() + k * m;
    for (int64_t p = 0; p < m; ++p) a_k[p] = static_cast<T>(scale * t.u[p * rank + k]);
    const double* v_k = t.vt.data() + k * n;
    double* b_k = out->b.data() + k * n;
    for (int64_t q = 0; q < n; ++q) b_k[q] = static_cast<T>(scale * v_k[q]);
  }
}

// Splits the randomized path's triplets into out's factors and sets its error: the identity
// sqrt(||W||^2 - sum_t s_t^2) where it keeps its digits, else factors_error() (measured from the
// factors as stored; always for a float64 W, which may reach errors far below float32's).
template <typename T, typename ErrorFn>
void FinishRandomized(TruncatedSvd t, KronFactors* out, ErrorFn&& factors_error) {
  SplitFactors<T>(t, out);
  double captured = 0.0;
  for (double s : t.s) captured += s * s;
  const double norm = out->frobenius_norm, total = norm * norm;
  out->relative_error = total > 0.0 ? std::sqrt(std::max(0.0, total - captured)) / norm : 0.0;
  if (std::is_same_v<T, double> || out->relative_error < kIdentityMinRelativeError) {
    out->relative_error = factors_error();
  }
  out->singular_values = std::move(t.s);
  out->float32_passes = t.float32_passes;
  out->power_iterations = t.power_iterations;
}

// Factorize for a float32 or float64 W: the factors keep T's precision, R and the randomized passes
// are in T (float32 R: half the memory of a double one; float64 R: double passes throughout).
// The checks Factorize and FactorizeRearranged share (dimensions, shape, rank, data), and the
// result with shape, rank and method set.
StatusOr<KronFactors> Begin(int64_t K, int64_t N, const KronShape& shape, int64_t rank,
                            const SvdOptions& svd, const void* data) {
  KFC_RETURN_IF_ERROR(ValidateDims(K, N, shape));
  const int64_t m = shape.k1 * shape.n1;  // rows of R
  const int64_t n = shape.k2 * shape.n2;  // columns of R
  const int64_t mn = std::min(m, n);      // == shape.MaxRank()
  if (rank < 1) {
    return InvalidArgument("rank " + std::to_string(rank) + " must be at least 1 for shape " +
                           ShapeString(shape));
  }
  if (rank > mn) {
    return InvalidArgument("rank " + std::to_string(rank) + " exceeds the largest useful rank " +
                           std::to_string(mn) + " for shape " + ShapeString(shape));
  }
  const SvdMethod method = ChooseSvdMethod(m, n, rank, svd);
  if (method == SvdMethod::kExact) {
    KFC_RETURN_IF_ERROR(CheckDgesddDims(m, n, "rearranged matrix"));
  }
  if (data == nullptr) {
    return InvalidArgument("weight " + DimsString(K, N) + " has no data (null)");
  }
  KronFactors out;
  out.shape = shape;
  out.rank = rank;
  out.method = method;
  return out;
}

// The exact path on R in double (destroyed), into `out` (its norm set).
template <typename T>
Status FinishExact(std::vector<double> r, KronFactors* out) {
  const KronShape& shape = out->shape;
  auto t = ExactSvdInPlace(r.data(), shape.k1 * shape.n1, shape.k2 * shape.n2, out->rank);
  if (!t.ok()) {
    return Internal(t.status().message() + " (the rearranged matrix for shape " +
                    ShapeString(shape) + ")");
  }
  SplitFactors<T>(*t, out);
  out->relative_error = SpectrumError(t->spectrum, out->rank, out->frobenius_norm);
  out->singular_values = std::move(t->spectrum);
  return Status::Ok();
}

// The randomized path's options: ||W||^2 for the adaptive stop of the power iterations.
SvdOptions RandomizedOptions(const SvdOptions& options, double frobenius_norm) {
  SvdOptions svd = options;
  svd.method = SvdMethod::kRandomized;
  if (svd.squared_norm <= 0.0) svd.squared_norm = frobenius_norm * frobenius_norm;
  return svd;
}

// Factorize for a float32 or float64 W: the factors keep T's precision, R and the randomized passes
// are in T (float32 R: half the memory of a double one; float64 R: double passes throughout).
template <typename T>
StatusOr<KronFactors> FactorizeOf(const T* w, int64_t K, int64_t N, const KronShape& shape,
                                  int64_t rank, const FactorizeOptions& options) {
  KFC_ASSIGN_OR_RETURN(KronFactors out, Begin(K, N, shape, rank, options.svd, w));
  const int64_t m = shape.k1 * shape.n1, n = shape.k2 * shape.n2;
  if (options.frobenius_norm) {
    out.frobenius_norm = *options.frobenius_norm;
  } else {
    KFC_ASSIGN_OR_RETURN(out.frobenius_norm, FrobeniusNormOf(w, K, N));
  }
  if (out.method == SvdMethod::kExact) {
    KFC_ASSIGN_OR_RETURN(std::vector<double> r, Rearrange(w, K, N, shape));
    KFC_RETURN_IF_ERROR(FinishExact<T>(std::move(r), &out));
    return out;
  }
  // Randomized, R in T: for float32, mixed-precision passes. Its triplets are those of an
  // orthogonal projection of R, computed to double rounding (see truncated_svd.h), so the error of
  // the returned factors is sqrt(||W||^2 - sum_t s_t^2) up to rounding, where that difference keeps
  // its digits; below kIdentityMinRelativeError it is measured from the factors instead.
  const SvdOptions svd = RandomizedOptions(options.svd, out.frobenius_norm);
  TruncatedSvd t;
  if constexpr (std::is_same_v<T, double>) {
    KFC_ASSIGN_OR_RETURN(std::vector<double> r, Rearrange(w, K, N, shape));
    KFC_ASSIGN_OR_RETURN(t, ComputeTruncatedSvd(r.data(), m, n, rank, svd));
  } else {
    // R uninitialized (no memset; RearrangeFloatTo writes every element) and freed with this
    // call: kept in a per-thread scratch between layers it would overlap the next weight's read
    // and raise the peak RSS by its size per thread (measured: +16 MiB per thread at 1024 x 4096).
    // W was checked finite with its norm above.
    std::unique_ptr<float[]> r_buffer;
    try {
      r_buffer.reset(new float[static_cast<size_t>(K * N)]);
    } catch (const std::bad_alloc&) {
      return Internal("cannot allocate the rearranged matrix for weight " + DimsString(K, N));
    }
    float* const r = r_buffer.get();
    KFC_RETURN_IF_ERROR(RearrangeFloatTo(w, K, N, shape, r));
    KFC_ASSIGN_OR_RETURN(t, ComputeTruncatedSvdOfFinite(r, m, n, rank, svd));
  }
  FinishRandomized<T>(std::move(t), &out, [&] { return FactorsError(out, w); });
  return out;
}

}  // namespace

StatusOr<KronFactors> Factorize(const float* w, int64_t K, int64_t N, const KronShape& shape,
                                int64_t rank, const FactorizeOptions& options) {
  return FactorizeOf(w, K, N, shape, rank, options);
}

StatusOr<KronFactors> Factorize(const double* w, int64_t K, int64_t N, const KronShape& shape,
                                int64_t rank, const FactorizeOptions& options) {
  return FactorizeOf(w, K, N, shape, rank, options);
}

namespace {

// Calls row_fn(row, w_hat) for each row (i1*k2 + i2) of W_hat = sum_t A_t (x) B_t (K x N), with
// w_hat accumulated in double over all terms. False (and no calls) when the sizes of `a` and `b`
// disagree with `shape` and `rank`, or the sizes overflow.
template <typename RowFn>
bool ForEachReconstructedRow(const KronFactors& factors, RowFn&& row_fn) {
  const KronShape& sh = factors.shape;
  const int64_t k1 = sh.k1, n1 = sh.n1, k2 = sh.k2, n2 = sh.n2, rank = factors.rank;
  if (k1 < 1 || n1 < 1 || k2 < 1 || n2 < 1 || rank < 0) return false;
  int64_t m = 0, n = 0, K = 0, N = 0, a_size = 0, b_size = 0, w_size = 0;
  if (!CheckedMul(k1, n1, &m) || !CheckedMul(k2, n2, &n) || !CheckedMul(k1, k2, &K) ||
      !CheckedMul(n1, n2, &N) || !CheckedMul(rank, m, &a_size) || !CheckedMul(rank, n, &b_size) ||
      !CheckedMul(K, N, &w_size)) {
    return false;
  }
  if (factors.a.size() != static_cast<size_t>(a_size) ||
      factors.b.size() != static_cast<size_t>(b_size)) {
    return false;
  }
  std::vector<double> row(static_cast<size_t>(N));
  for (int64_t i1 = 0; i1 < k1; ++i1) {
    for (int64_t i2 = 0; i2 < k2; ++i2) {
      std::fill(row.begin(), row.end(), 0.0);
      for (int64_t t = 0; t < rank; ++t) {
        const double* a_row = factors.a.data() + t * m + i1 * n1;
        const double* b_row = factors.b.data() + t * n + i2 * n2;
        for (int64_t j1 = 0; j1 < n1; ++j1) {
          const double a = a_row[j1];
          double* dst = row.data() + j1 * n2;
          for (int64_t j2 = 0; j2 < n2; ++j2) dst[j2] += a * b_row[j2];
        }
      }
      row_fn(i1 * k2 + i2, row.data());
    }
  }
  return true;
}

// FactorsError of W given as segment(i, j1): the n2 elements W[i, j1*n2 .. j1*n2 + n2), summed in
// W's row-major order whichever memory they come from.
template <typename SegmentFn>
double FactorsErrorOf(const KronFactors& factors, SegmentFn&& segment) {
  const int64_t n1 = factors.shape.n1, n2 = factors.shape.n2;
  double diff = 0.0, norm = 0.0;
  const bool ok = ForEachReconstructedRow(factors, [&](int64_t i, const double* w_hat) {
    for (int64_t j1 = 0; j1 < n1; ++j1) {
      const auto* w_seg = segment(i, j1);
      const double* hat = w_hat + j1 * n2;
      for (int64_t j2 = 0; j2 < n2; ++j2) {
        const double x = static_cast<double>(w_seg[j2]);
        const double d = x - hat[j2];
        diff += d * d;
        norm += x * x;
      }
    }
  });
  assert(ok && "factor sizes disagree with their shape and rank");
  if (!ok) return std::numeric_limits<double>::quiet_NaN();
  return norm > 0.0 ? std::sqrt(diff / norm) : 0.0;
}

}  // namespace

template <typename T>
std::vector<T> Reconstruct(const KronFactors& factors) {
  const int64_t N = factors.shape.N();
  std::vector<T> w;
  const bool ok = ForEachReconstructedRow(factors, [&](int64_t i, const double* w_hat) {
    if (w.empty()) w.resize(static_cast<size_t>(factors.shape.K() * N));
    T* w_row = w.data() + i * N;
    for (int64_t j = 0; j < N; ++j) w_row[j] = static_cast<T>(w_hat[j]);
  });
  if (!ok) return {};
  return w;
}

template std::vector<float> Reconstruct<float>(const KronFactors& factors);
template std::vector<double> Reconstruct<double>(const KronFactors& factors);

double FactorsError(const KronFactors& factors, const float* w) {
  const int64_t N = factors.shape.N(), n2 = factors.shape.n2;
  return FactorsErrorOf(factors, [&](int64_t i, int64_t j1) { return w + i * N + j1 * n2; });
}

double FactorsError(const KronFactors& factors, const double* w) {
  const int64_t N = factors.shape.N(), n2 = factors.shape.n2;
  return FactorsErrorOf(factors, [&](int64_t i, int64_t j1) { return w + i * N + j1 * n2; });
}

StatusOr<KronFactors> FactorizeRearranged(const float* r, int64_t K, int64_t N,
                                          const KronShape& shape, int64_t rank,
                                          const FactorizeOptions& options) {
  KFC_ASSIGN_OR_RETURN(KronFactors out, Begin(K, N, shape, rank, options.svd, r));
  if (!options.frobenius_norm) {
    return InvalidArgument("the rearranged matrix of weight " + DimsString(K, N) +
                           " comes without ||W||");
  }
  out.frobenius_norm = *options.frobenius_norm;
  const int64_t m = shape.k1 * shape.n1, n = shape.k2 * shape.n2;
  if (out.method == SvdMethod::kExact) {
    std::vector<double> rd;
    try {
      rd.assign(r, r + K * N);
    } catch (const std::bad_alloc&) {
      return Internal("cannot allocate the rearranged matrix for weight " + DimsString(K, N));
    }
    KFC_RETURN_IF_ERROR(FinishExact<float>(std::move(rd), &out));
    return out;
  }
  KFC_ASSIGN_OR_RETURN(TruncatedSvd t,
                       ComputeTruncatedSvdOfFinite(
                           r, m, n, rank, RandomizedOptions(options.svd, out.frobenius_norm)));
  FinishRandomized<float>(std::move(t), &out, [&] {
    const int64_t n1 = shape.n1, n2 = shape.n2, k2 = shape.k2;
    return FactorsErrorOf(out, [&](int64_t i, int64_t j1) {
      return r + ((i / k2) * n1 + j1) * n + (i % k2) * n2;  // W[i, j1*n2 ..] in R
    });
  });
  return out;
}

}  // namespace kfc::kron
