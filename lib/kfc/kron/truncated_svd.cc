// SPDX-License-Identifier: Apache-2.0
// Truncated SVD: exact (dgesdd) and randomized (Halko-Martinsson-Tropp) paths. Symbols follow
// truncated_svd.h: A is m x n row-major, r is the rank, l the number of sketch columns.
//
// Layout trick shared with factorize.cc: A row-major (m x n) is the same memory as A^T column-major
// (n x m, leading dimension n), so BLAS and LAPACK run on it in their native column-major layout
// without any transposed copy. Every work matrix here (Omega, Y, Q, Z) is column-major.
#include "kfc/kron/truncated_svd.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <new>
#include <string>
#include <utility>

#include "kfc/kron/lapack_limits.h"
#include "kfc/kron/matrix_passes.h"

namespace kfc::kron {
namespace {

// splitmix64 (Steele, Lea and Flood 2014): a tiny generator with a fixed, documented output.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1]: 53 random bits, never 0 so log() is finite.
  double NextOpenUniform() { return (static_cast<double>(Next() >> 11) + 1.0) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kExactMaxMinDim = 512;

std::string DimsString(int64_t rows, int64_t cols) {
  return std::to_string(rows) + "x" + std::to_string(cols);
}

// Sketch width l = min(rank + oversampling, min(m, n)) without overflowing.
int64_t SketchWidth(int64_t m, int64_t n, int64_t rank, int64_t oversampling) {
  const int64_t mn = std::min(m, n);
  if (oversampling >= mn - rank) return mn;
  return rank + oversampling;
}

// The first NaN or infinity of A as an error; else ||A||_F^2 accumulated in double (infinite
// only for doubles near the overflow limit, which no caller uses it for).
template <typename T>
StatusOr<double> ScanFinite(const T* a, int64_t m, int64_t n) {
  double sum = 0.0;
  for (int64_t i = 0; i < m; ++i) {
    const T* row = a + i * n;
    for (int64_t j = 0; j < n; ++j) {
      if (!std::isfinite(row[j])) {
        return InvalidArgument(std::string("matrix ") + DimsString(m, n) + " has " +
                               (std::isnan(row[j]) ? "a NaN" : "an infinity") + " at row " +
                               std::to_string(i) + ", column " + std::to_string(j));
      }
      sum += static_cast<double>(row[j]) * static_cast<double>(row[j]);
    }
  }
  return sum;
}

// The randomized path gives BLAS (int dimensions; OpenBLAS offsets are 64-bit) the m x n matrix,
// and LAPACK only the m x l and n x l blocks.
Status ValidateRandomizedDims(int64_t m, int64_t n, int64_t l) {
  constexpr int64_t kBlasMax = std::numeric_limits<int>::max();
  constexpr double kLapackMax = static_cast<double>(std::numeric_limits<lapack_int>::max());
  const double mx = static_cast<double>(std::max(m, n));
  const double ld = static_cast<double>(l);
  const double workspace = 4.0 * ld * ld + 8.0 * ld + 128.0 * mx + 1024.0;
  if (m > kBlasMax || n > kBlasMax || mx * ld > kLapackMax || workspace > kLapackMax) {
    return InvalidArgument("matrix " + DimsString(m, n) + " with " + std::to_string(l) +
                           " sketch columns is too large for the randomized SVD: BLAS and " +
                           "LAPACK use " + LapackIntBits() + " integers");
  }
  return Status::Ok();
}

Status LapackError(const char* routine, lapack_int info, const std::string& object) {
  return Internal(std::string("LAPACK ") + routine + " failed with info=" + std::to_string(info) +
                  " on " + object);
}

// Flips each triplet so the largest-magnitude entry of U[:, t] is positive (ties to the lowest
// row), as Factorize does.
void NormalizeSigns(TruncatedSvd* svd) {
  const int64_t m = svd->rows, n = svd->cols, r = svd->rank;
  for (int64_t t = 0; t < r; ++t) {
    int64_t arg_max = 0;
    double max_abs = -1.0;
    for (int64_t i = 0; i < m; ++i) {
      const double v = std::fabs(svd->u[static_cast<size_t>(i * r + t)]);
      if (v > max_abs) {
        max_abs = v;
        arg_max = i;
      }
    }
    if (svd->u[static_cast<size_t>(arg_max * r + t)] >= 0.0) continue;
    for (int64_t i = 0; i < m; ++i) svd->u[static_cast<size_t>(i * r + t)] *= -1.0;
    double* vt_row = svd->vt.data() + t * n;
    for (int64_t j = 0; j < n; ++j) vt_row[j] *= -1.0;
  }
}

// The products the randomized path needs, for a double or a float matrix A (m x n, row-major):
// y = A x and z = A^T y on column-major blocks; `final_t` is the last pass A^T Q, always with
// double accumulation. `gram`, when set, gives y = A x and w = A^T y in one pass over A (the
// float32 passes; w in float or double accumulation): RandomizedSvd then takes A^T Q from w.
struct Operator {
  std::function<void(const double* x, int64_t l, double* y)> times;
  std::function<void(const double* y, int64_t l, double* z)> times_t;
  std::function<void(const double* y, int64_t l, double* z)> final_t;
  std::function<void(const double* x, int64_t l, double* y, double* w, PassPrecision w_precision)>
      gram;
};

Operator DoubleOperator(const double* a, int64_t m, int64_t n) {
  // At = A^T viewed column-major: n x m, leading dimension n, no copy.
  const int bm = static_cast<int>(m), bn = static_cast<int>(n);
  Operator op;
  op.times = [=](const double* x, int64_t l, double* y) {
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, bm, static_cast<int>(l), bn, 1.0, a, bn, x,
                bn, 0.0, y, bm);
  };
  op.times_t = [=](const double* y, int64_t l, double* z) {
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, bn, static_cast<int>(l), bm, 1.0, a, bn,
                y, bm, 0.0, z, bn);
  };
  op.final_t = op.times_t;
  return op;
}

Operator FloatOperator(const float* a, int64_t m, int64_t n, PassPrecision precision) {
  Operator op;
  op.times = [=](const double* x, int64_t l, double* y) { MultiplyA(a, m, n, x, l, y, precision); };
  op.times_t = [=](const double* y, int64_t l, double* z) {
    MultiplyAt(a, m, n, y, l, z, precision);
  };
  op.final_t = [=](const double* y, int64_t l, double* z) {
    MultiplyAt(a, m, n, y, l, z, PassPrecision::kFloat64);
  };
  if (precision == PassPrecision::kFloat32) {
    op.gram = [=](const double* x, int64_t l, double* y, double* w, PassPrecision w_precision) {
      MultiplyAAndAt(a, m, n, x, l, y, w, w_precision);
    };
  }
  return op;
}

// sqrt(max(0, squared_norm - sum of the r largest eigenvalues of x^T x)) / sqrt(squared_norm), x
// rows x l column-major.
StatusOr<double> SketchError(const double* x, int64_t rows, int64_t l, int64_t r,
                             double squared_norm, const std::string& what) {
  KFC_ASSIGN_OR_RETURN(const std::vector<double> eig, GramEigenvalues(x, rows, l, rows, what));
  double captured = 0.0;
  for (int64_t t = 0; t < r; ++t) captured += eig[static_cast<size_t>(t)];
  return std::sqrt(std::max(0.0, squared_norm - captured) / squared_norm);
}

// Whether W Rc^-1 stands for A^T Q (W = A^T Y, Y = Q Rc, W in float32): the 1-norm condition
// number of the triangular Rc (LAPACK's estimate) at most 1 / kMinReciprocalCondition. W's
// rounding, relative to |A| |Y|, grows by up to that factor in A^T Q's weakest directions; past
// it (Y of lower rank than l) the power iteration takes A^T Q from its own pass.
constexpr double kMinReciprocalCondition = 1e-4;

bool WellConditioned(const std::vector<double>& rc, int64_t l) {
  for (int64_t c = 0; c < l; ++c) {
    if (!(std::fabs(rc[static_cast<size_t>(c * l + c)]) > 0.0)) return false;
  }
  double rcond = 0.0;
  const lapack_int info =
      LAPACKE_dtrcon(LAPACK_COL_MAJOR, '1', 'U', 'N', static_cast<lapack_int>(l), rc.data(),
                     static_cast<lapack_int>(l), &rcond);
  return info == 0 && rcond >= kMinReciprocalCondition;
}

// z (n x l) = w Rc^-1, for w n x l and the upper triangular l x l rc, both column-major.
void TimesInverseR(const std::vector<double>& w, const std::vector<double>& rc, int64_t n,
                   int64_t l, double* z) {
  std::copy(w.begin(), w.end(), z);
  cblas_dtrsm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit,
              static_cast<int>(n), static_cast<int>(l), 1.0, rc.data(), static_cast<int>(l), z,
              static_cast<int>(n));
}

Status RandomizedSvd(const Operator& op, int64_t m, int64_t n, const SvdOptions& options,
                     TruncatedSvd* out) {
  const int64_t r = out->rank;
  const int64_t l = SketchWidth(m, n, r, options.oversampling);
  std::vector<double> omega, y, s, lap_u, lap_vt;
  try {
    omega.resize(static_cast<size_t>(n * l));
    y.resize(static_cast<size_t>(m * l));
    s.resize(static_cast<size_t>(l));
    lap_u.resize(static_cast<size_t>(n * l));
    lap_vt.resize(static_cast<size_t>(l * l));
    out->u.resize(static_cast<size_t>(m * r));
  } catch (const std::bad_alloc&) {
    return Internal("cannot allocate the randomized SVD of the " + DimsString(m, n) + " matrix");
  }
  const std::string sketch = DimsString(m, l) + " sketch of the " + DimsString(m, n) + " matrix";
  const std::string co_sketch =
      DimsString(n, l) + " co-sketch of the " + DimsString(m, n) + " matrix";

  FillGaussian(options.seed, &omega);
  std::vector<double>& z = omega;  // n x l, reused for A^T Q
  const bool adaptive = options.power_tolerance > 0.0 && options.squared_norm > 0.0;
  // The relative error of the best rank-r approximation within the range of the rows x l block
  // x (A Z or Z^T A^T, with Z or Q orthonormal): from the top r eigenvalues of x^T x.
  auto sketch_error = [&](const double* x, int64_t rows, const std::string& what) {
    return SketchError(x, rows, l, r, options.squared_norm, what);
  };
  // With a one-pass A^T A (op.gram), each product Y = A Z (and the first, Y = A Omega) also
  // yields W = A^T Y; with Y = Q Rc (the QR that orthonormalizes Y), A^T Q = W Rc^-1, so the next
  // iteration needs no pass of its own. When Rc is too ill-conditioned for that (Y of low rank:
  // exactly low-rank A, zero columns), or on the last iteration and at the adaptive stop's
  // predicted end (where A^T Q is the double-accumulated final pass instead), A^T Q is its own
  // pass as without op.gram.
  const bool fused = static_cast<bool>(op.gram);
  std::vector<double> w, rc;
  if (fused) {
    try {
      w.resize(static_cast<size_t>(n * l));
    } catch (const std::bad_alloc&) {
      return Internal("cannot allocate the randomized SVD of the " + DimsString(m, n) + " matrix");
    }
  }
  bool have_w = false, w_double = false;
  // Y = A Omega (m x l) (and W = A^T Y).
  if (fused && options.power_iterations > 0) {
    op.gram(omega.data(), l, y.data(), w.data(), PassPrecision::kFloat32);
    have_w = true;
  } else {
    op.times(omega.data(), l, y.data());
  }
  // The errors of the last half step (A^T Q) and of the current Y = A Z, for the guess of where
  // the adaptive stop ends (-1: unknown; Y = A Omega gives none, Omega not being orthonormal).
  double previous_half = -1.0, previous_error = -1.0;
  KFC_RETURN_IF_ERROR(Orthonormalize(m, l, y.data(), sketch, fused ? &rc : nullptr));
  int64_t it = 0;
  while (it < options.power_iterations) {
    // Z = orth(A^T Q) (n x l); Y = orth(A Z) (m x l).
    if (have_w && WellConditioned(rc, l)) {
      TimesInverseR(w, rc, n, l, z.data());
    } else {
      op.times_t(y.data(), l, z.data());
    }
    double half_error = 0.0;
    if (adaptive) {
      KFC_ASSIGN_OR_RETURN(half_error, sketch_error(z.data(), n, co_sketch));
    }
    KFC_RETURN_IF_ERROR(Orthonormalize(n, l, z.data(), co_sketch));
    ++it;
    // The stop's guess: the error's decreases over the last two half steps shrink geometrically
    // (ratio at most 1), so this one's is the last one's times their ratio. At a guessed stop W
    // is accumulated in double, to serve as the final pass; a wrong guess only makes the next
    // iteration's A^T Q more accurate, a missed stop leaves W unused.
    bool stop_guess = false;
    if (previous_half >= 0.0 && previous_error >= 0.0 && it < options.power_iterations) {
      const double before = previous_half - previous_error, last = previous_error - half_error;
      const double ratio = before > 0.0 ? std::clamp(last / before, 0.0, 1.0) : 1.0;
      stop_guess = AdaptivePowerStop(half_error, half_error - ratio * last,
                                     options.power_iterations - it, options.power_tolerance);
    }
    previous_half = half_error;
    have_w = fused && it < options.power_iterations;
    w_double = stop_guess;
    if (have_w) {
      op.gram(z.data(), l, y.data(), w.data(),
              w_double ? PassPrecision::kFloat64 : PassPrecision::kFloat32);
    } else {
      op.times(z.data(), l, y.data());
    }
    bool stop = false;
    if (adaptive && it < options.power_iterations) {
      KFC_ASSIGN_OR_RETURN(const double error, sketch_error(y.data(), m, sketch));
      stop = AdaptivePowerStop(half_error, error, options.power_iterations - it,
                               options.power_tolerance);
      previous_error = error;
    }
    KFC_RETURN_IF_ERROR(Orthonormalize(m, l, y.data(), sketch, fused ? &rc : nullptr));
    if (stop) break;
  }
  out->power_iterations = it;
  // B^T = A^T Q (n x l) = V_B S U_B^T: LAPACK's "u" (n x l) holds V_B, its "vt" (l x l) U_B^T.
  // A^T Q is accumulated in double: its own pass, or at a guessed adaptive stop W Rc^-1 with W =
  // A^T Y in double (a stop needs an error >= kAdaptiveMinRelativeError = 0.1, and Rc's condition
  // number at most 1e4 leaves B's entries within about 1e-12 of A^T Q's, relatively).
  if (have_w && w_double && WellConditioned(rc, l)) {
    TimesInverseR(w, rc, n, l, z.data());
  } else {
    op.final_t(y.data(), l, z.data());
  }
  const lapack_int info =
      LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', static_cast<lapack_int>(n), static_cast<lapack_int>(l),
                     z.data(), static_cast<lapack_int>(n), s.data(), lap_u.data(),
                     static_cast<lapack_int>(n), lap_vt.data(), static_cast<lapack_int>(l));
  if (info != 0) {
    return LapackError(
        "dgesdd", info,
        "the " + DimsString(l, n) + " projection of the " + DimsString(m, n) + " matrix");
  }
  // U_r^T = (U_B^T)[0:r, :] Q^T: an r x m column-major product is U_r row-major (m x r).
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, static_cast<int>(r), static_cast<int>(m),
              static_cast<int>(l), 1.0, lap_vt.data(), static_cast<int>(l), y.data(),
              static_cast<int>(m), 0.0, out->u.data(), static_cast<int>(r));
  s.resize(static_cast<size_t>(r));
  out->s = std::move(s);
  lap_u.resize(static_cast<size_t>(r * n));
  lap_u.shrink_to_fit();
  out->vt = std::move(lap_u);
  return Status::Ok();
}

// Argument checks shared by both overloads, up to (not including) the data scan.
Status ValidateSvdArguments(const void* a, int64_t m, int64_t n, int64_t rank,
                            const SvdOptions& options) {
  if (m < 1 || n < 1) {
    return InvalidArgument("matrix dimensions " + DimsString(m, n) + " must both be at least 1");
  }
  if (m > kInt64Max / n || static_cast<uint64_t>(m * n) > std::vector<double>().max_size()) {
    return InvalidArgument("matrix " + DimsString(m, n) + " has too many elements to index");
  }
  const int64_t mn = std::min(m, n);
  if (rank < 1 || rank > mn) {
    return InvalidArgument("rank " + std::to_string(rank) + " must be in [1, " +
                           std::to_string(mn) + "] for the " + DimsString(m, n) + " matrix");
  }
  if (options.oversampling < 0) {
    return InvalidArgument("SVD oversampling " + std::to_string(options.oversampling) +
                           " must be at least 0");
  }
  if (options.power_iterations < 0) {
    return InvalidArgument("SVD power iterations " + std::to_string(options.power_iterations) +
                           " must be at least 0");
  }
  if (ChooseSvdMethod(m, n, rank, options) == SvdMethod::kRandomized) {
    KFC_RETURN_IF_ERROR(
        ValidateRandomizedDims(m, n, SketchWidth(m, n, rank, options.oversampling)));
  } else {
    KFC_RETURN_IF_ERROR(CheckDgesddDims(m, n, "matrix"));
  }
  if (a == nullptr) return InvalidArgument("matrix " + DimsString(m, n) + " has no data (null)");
  return Status::Ok();
}

TruncatedSvd EmptyResult(int64_t m, int64_t n, int64_t rank) {
  TruncatedSvd out;
  out.rows = m;
  out.cols = n;
  out.rank = rank;
  return out;
}

}  // namespace

bool AdaptivePowerStop(double half_error, double error, int64_t remaining, double tolerance) {
  return error >= kAdaptiveMinRelativeError &&
         2.0 * static_cast<double>(remaining) * (half_error - error) <= tolerance * error;
}

namespace {

void GenerateGaussian(uint64_t seed, double* out, size_t size) {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  SplitMix64 rng(seed);
  for (size_t i = 0; i < size; i += 2) {
    const double radius = std::sqrt(-2.0 * std::log(rng.NextOpenUniform()));
    const double angle = kTwoPi * rng.NextOpenUniform();
    out[i] = radius * std::cos(angle);
    if (i + 1 < size) out[i + 1] = radius * std::sin(angle);
  }
}

// Fills of up to this many values are kept for reuse (2048 x 18 sketches are 36,864).
constexpr size_t kKeptGaussianValues = size_t{1} << 19;  // 4 MiB

}  // namespace

void FillGaussian(uint64_t seed, std::vector<double>* out) {
  // Every prefix of a fill is the shorter fill of the same seed (the values come in pairs; an odd
  // last one is its pair's first), and a model's layers ask for the same seed and mostly the same
  // size: so the calling thread's longest fill of its last seed is kept and copied from (the
  // logarithms, square roots and sines cost a layer about 0.6 ms; the copy about 0.02 ms).
  thread_local uint64_t kept_seed = 0;
  thread_local std::vector<double> kept;
  const size_t size = out->size();
  if (kept_seed == seed && kept.size() >= size) {
    std::copy(kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(size), out->begin());
    return;
  }
  GenerateGaussian(seed, out->data(), size);
  if (size <= kKeptGaussianValues) {
    try {
      kept.assign(out->begin(), out->end());
      kept_seed = seed;
    } catch (const std::bad_alloc&) {
      std::vector<double>().swap(kept);  // kept only when it costs nothing
    }
  }
}

SvdMethod ChooseSvdMethod(int64_t m, int64_t n, int64_t rank, const SvdOptions& options) {
  if (options.method != SvdMethod::kAuto) return options.method;
  const int64_t mn = std::min(m, n);
  if (mn <= kExactMaxMinDim) return SvdMethod::kExact;
  // 4 * (rank + oversampling) >= mn, without overflow for any inputs.
  const int64_t quarter_up = mn / 4 + (mn % 4 != 0 ? 1 : 0);  // ceil(mn / 4)
  if (rank >= quarter_up || options.oversampling >= quarter_up - rank) return SvdMethod::kExact;
  return SvdMethod::kRandomized;
}

StatusOr<TruncatedSvd> ExactSvdInPlace(double* a, int64_t m, int64_t n, int64_t rank) {
  KFC_RETURN_IF_ERROR(CheckDgesddDims(m, n, "matrix"));
  const int64_t mn = std::min(m, n), r = rank;
  TruncatedSvd out = EmptyResult(m, n, rank);
  std::vector<double> lap_u, lap_vt;
  try {
    out.spectrum.resize(static_cast<size_t>(mn));
    lap_u.resize(static_cast<size_t>(n * mn));
    lap_vt.resize(static_cast<size_t>(mn * m));
    out.u.resize(static_cast<size_t>(m * r));
  } catch (const std::bad_alloc&) {
    return Internal("cannot allocate the exact SVD of the " + DimsString(m, n) + " matrix");
  }
  // M = A^T (n x m, column-major) = V S U^T: LAPACK's "u" (n x mn, ld n) holds V, so its first r
  // columns are V_r^T row-major as is; its "vt" (mn x m, ld mn) holds U^T. Factoring M in
  // LAPACK's native layout avoids the three full-size transposed copies LAPACKE's row-major path
  // makes.
  const lapack_int info =
      LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', static_cast<lapack_int>(n), static_cast<lapack_int>(m),
                     a, static_cast<lapack_int>(n), out.spectrum.data(), lap_u.data(),
                     static_cast<lapack_int>(n), lap_vt.data(), static_cast<lapack_int>(mn));
  if (info != 0) return LapackError("dgesdd", info, "the " + DimsString(m, n) + " matrix");
  out.s.assign(out.spectrum.begin(), out.spectrum.begin() + r);
  lap_u.resize(static_cast<size_t>(r * n));
  lap_u.shrink_to_fit();
  out.vt = std::move(lap_u);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t t = 0; t < r; ++t) {
      out.u[static_cast<size_t>(i * r + t)] = lap_vt[static_cast<size_t>(t + i * mn)];
    }
  }
  NormalizeSigns(&out);
  return out;
}

StatusOr<TruncatedSvd> ComputeTruncatedSvd(const double* a, int64_t m, int64_t n, int64_t rank,
                                           const SvdOptions& options) {
  KFC_RETURN_IF_ERROR(ValidateSvdArguments(a, m, n, rank, options));
  KFC_RETURN_IF_ERROR(ScanFinite(a, m, n).status());
  if (ChooseSvdMethod(m, n, rank, options) == SvdMethod::kExact) {
    std::vector<double> work;
    try {
      work.assign(a, a + m * n);  // dgesdd destroys its input
    } catch (const std::bad_alloc&) {
      return Internal("cannot allocate the exact SVD of the " + DimsString(m, n) + " matrix");
    }
    return ExactSvdInPlace(work.data(), m, n, rank);
  }
  TruncatedSvd out = EmptyResult(m, n, rank);
  KFC_RETURN_IF_ERROR(RandomizedSvd(DoubleOperator(a, m, n), m, n, options, &out));
  NormalizeSigns(&out);
  return out;
}

StatusOr<TruncatedSvd> ComputeTruncatedSvd(const float* a, int64_t m, int64_t n, int64_t rank,
                                           const SvdOptions& options) {
  KFC_RETURN_IF_ERROR(ValidateSvdArguments(a, m, n, rank, options));
  KFC_RETURN_IF_ERROR(ScanFinite(a, m, n).status());
  return ComputeTruncatedSvdOfFinite(a, m, n, rank, options);
}

StatusOr<TruncatedSvd> ComputeTruncatedSvdOfFinite(const float* a, int64_t m, int64_t n,
                                                   int64_t rank, const SvdOptions& options) {
  KFC_RETURN_IF_ERROR(ValidateSvdArguments(a, m, n, rank, options));
  if (ChooseSvdMethod(m, n, rank, options) == SvdMethod::kExact) {
    std::vector<double> work;
    try {
      work.assign(a, a + m * n);
    } catch (const std::bad_alloc&) {
      return Internal("cannot allocate the exact SVD of the " + DimsString(m, n) + " matrix");
    }
    return ExactSvdInPlace(work.data(), m, n, rank);
  }
  const bool float32 = options.precision != SvdPrecision::kFloat64;
  TruncatedSvd out = EmptyResult(m, n, rank);
  KFC_RETURN_IF_ERROR(RandomizedSvd(
      FloatOperator(a, m, n, float32 ? PassPrecision::kFloat32 : PassPrecision::kFloat64), m, n,
      options, &out));
  out.float32_passes = float32;
  NormalizeSigns(&out);
  return out;
}

}  // namespace kfc::kron
