// Nearest sum of Kronecker products: rearrangement, SVD (LAPACK dgesdd), factor split and error
// accounting. Symbols follow factorize.h: W is K x N, A_t is k1 x n1, B_t is k2 x n2, R is
// (k1*n1) x (k2*n2), all row-major; m = k1*n1 and n = k2*n2 are R's dimensions.
#include "kfc/kron/factorize.h"

#include <lapacke.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

#include "kfc/kron/lapack_limits.h"
#include "kfc/kron/truncated_svd.h"

namespace kfc::kron {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// a * b for a, b >= 0 without undefined behaviour; false when the product exceeds int64.
bool CheckedMul(int64_t a, int64_t b, int64_t* out) {
  if (a != 0 && b > kInt64Max / a) return false;
  *out = a * b;
  return true;
}

std::string ShapeString(const KronShape& s) {
  return std::to_string(s.k1) + "x" + std::to_string(s.n1) + " (x) " + std::to_string(s.k2) + "x" +
         std::to_string(s.n2);
}

std::string DimsString(int64_t rows, int64_t cols) {
  return std::to_string(rows) + "x" + std::to_string(cols);
}

// Checks K, N and `shape` against each other without overflowing; on success K*N, k1*n1 and
// k2*n2 are all representable in int64 and the vectors of K*N doubles can be sized.
Status ValidateDims(int64_t K, int64_t N, const KronShape& shape) {
  if (K < 1 || N < 1) {
    return InvalidArgument("weight dimensions " + DimsString(K, N) + " must both be at least 1");
  }
  if (shape.k1 < 1 || shape.n1 < 1 || shape.k2 < 1 || shape.n2 < 1) {
    return InvalidArgument("shape " + ShapeString(shape) + " has a dimension below 1");
  }
  int64_t shape_k = 0, shape_n = 0;
  if (!CheckedMul(shape.k1, shape.k2, &shape_k) || !CheckedMul(shape.n1, shape.n2, &shape_n) ||
      shape_k != K || shape_n != N) {
    return InvalidArgument("shape " + ShapeString(shape) + " does not divide weight " +
                           DimsString(K, N) + ": k1*k2 must equal K and n1*n2 must equal N");
  }
  int64_t elements = 0;
  if (!CheckedMul(K, N, &elements) ||
      static_cast<uint64_t>(elements) > std::vector<double>().max_size()) {
    return InvalidArgument("weight " + DimsString(K, N) + " has too many elements to index");
  }
  return Status::Ok();
}

// Divisors of x >= 1 in increasing order, O(sqrt(x)).
std::vector<int64_t> Divisors(int64_t x) {
  std::vector<int64_t> small, large;
  for (int64_t d = 1; d <= x / d; ++d) {
    if (x % d != 0) continue;
    small.push_back(d);
    if (d != x / d) large.push_back(x / d);
  }
  small.insert(small.end(), large.rbegin(), large.rend());
  return small;
}

}  // namespace

int64_t Macs(const KronShape& shape, int64_t rank, ContractionOrder order) {
  const int64_t K = shape.K(), N = shape.N();
  if (order == ContractionOrder::kBFirst) return rank * K * shape.n2 + rank * shape.k1 * N;
  return rank * K * shape.n1 + rank * shape.k2 * N;
}

ContractionOrder CheaperOrder(const KronShape& shape, int64_t rank) {
  return Macs(shape, rank, ContractionOrder::kAFirst) < Macs(shape, rank, ContractionOrder::kBFirst)
             ? ContractionOrder::kAFirst
             : ContractionOrder::kBFirst;
}

int64_t MacsPerTerm(const KronShape& shape) {
  return std::min(Macs(shape, 1, ContractionOrder::kBFirst),
                  Macs(shape, 1, ContractionOrder::kAFirst));
}

int64_t MaxRankWithinMacs(const KronShape& shape, int64_t max_macs) {
  if (max_macs < 0) return shape.MaxRank();
  const int64_t per_term = MacsPerTerm(shape);
  if (per_term <= 0) return shape.MaxRank();
  return std::min(shape.MaxRank(), max_macs / per_term);
}

std::vector<KronShape> EnumerateShapes(int64_t K, int64_t N) {
  std::vector<KronShape> shapes;
  if (K < 1 || N < 1 || (K == 1 && N == 1)) return shapes;
  const std::vector<int64_t> k_divisors = Divisors(K);
  const std::vector<int64_t> n_divisors = Divisors(N);
  shapes.reserve(k_divisors.size() * n_divisors.size());
  for (int64_t k1 : k_divisors) {
    for (int64_t n1 : n_divisors) {
      if ((k1 == 1 && n1 == 1) || (k1 == K && n1 == N)) continue;
      shapes.push_back(KronShape{k1, n1, K / k1, N / n1});
    }
  }
  return shapes;
}

namespace {

// DefaultShape's order: fewer parameters per term, then k1*n1 closer to k2*n2 (the "key"), then
// the squarest factors, then the smaller k1 and n1 (EnumerateShapes' order, kept by stable sort).
std::pair<double, double> BalanceKey(const KronShape& s) {
  // Compared in double so the key stays defined even where K*N overflows.
  const double p = static_cast<double>(s.k1) * static_cast<double>(s.n1);
  const double q = static_cast<double>(s.k2) * static_cast<double>(s.n2);
  return std::make_pair(p + q, std::fabs(p - q));
}

// Aspect (max(k1,k2)*max(n1,n2)) / (min(k1,k2)*min(n1,n2)) of a is below b's, compared exactly by
// cross-multiplying.
bool Squarer(const KronShape& a, const KronShape& b) {
  __extension__ typedef __int128 Wide;
  const Wide a_num = Wide(std::max(a.k1, a.k2)) * std::max(a.n1, a.n2);
  const Wide a_den = Wide(std::min(a.k1, a.k2)) * std::min(a.n1, a.n2);
  const Wide b_num = Wide(std::max(b.k1, b.k2)) * std::max(b.n1, b.n2);
  const Wide b_den = Wide(std::min(b.k1, b.k2)) * std::min(b.n1, b.n2);
  return a_num * b_den < b_num * a_den;
}

bool DefaultOrder(const KronShape& a, const KronShape& b) {
  const auto ka = BalanceKey(a), kb = BalanceKey(b);
  if (ka != kb) return ka < kb;
  return Squarer(a, b);
}

}  // namespace

bool IsLowRankShape(const KronShape& s, int64_t K, int64_t N) {
  return s == KronShape{K, 1, 1, N} || s == KronShape{1, N, K, 1};
}

std::vector<KronShape> TiedDefaultShapes(int64_t K, int64_t N) {
  std::vector<KronShape> shapes = EnumerateShapes(K, N);
  // Balanced means Kronecker: the low-rank shapes are plain truncated SVD (--shape lowrank), and
  // stay only where nothing else divides the layer (prime dimensions).
  if (std::any_of(shapes.begin(), shapes.end(),
                  [&](const KronShape& s) { return !IsLowRankShape(s, K, N); })) {
    shapes.erase(std::remove_if(shapes.begin(), shapes.end(),
                                [&](const KronShape& s) { return IsLowRankShape(s, K, N); }),
                 shapes.end());
  }
  if (shapes.empty()) return shapes;
  std::stable_sort(shapes.begin(), shapes.end(), DefaultOrder);
  const auto best = BalanceKey(shapes.front());
  shapes.erase(std::find_if(shapes.begin(), shapes.end(),
                            [&](const KronShape& s) { return BalanceKey(s) != best; }),
               shapes.end());
  return shapes;
}

namespace {

template <typename T>
StatusOr<double> FrobeniusNormOf(const T* w, int64_t K, int64_t N) {
  double sum = 0.0;
  for (int64_t i = 0; i < K; ++i) {
    const T* row = w + i * N;
    for (int64_t j = 0; j < N; ++j) {
      const T x = row[j];
      if (!std::isfinite(x)) {
        return InvalidArgument(std::string("weight has ") +
                               (std::isnan(x) ? "a NaN" : "an infinity") + " at row " +
                               std::to_string(i) + ", column " + std::to_string(j));
      }
      sum += static_cast<double>(x) * static_cast<double>(x);
    }
  }
  return std::sqrt(sum);
}

}  // namespace

StatusOr<double> CheckedFrobeniusNorm(const float* w, int64_t K, int64_t N) {
  return FrobeniusNormOf(w, K, N);
}

StatusOr<double> CheckedFrobeniusNorm(const double* w, int64_t K, int64_t N) {
  return FrobeniusNormOf(w, K, N);
}

StatusOr<KronShape> DefaultShape(int64_t K, int64_t N) {
  const std::vector<KronShape> tied = TiedDefaultShapes(K, N);
  if (tied.empty()) {
    return InvalidArgument("weight " + DimsString(K, N) + " has no non-trivial Kronecker shape");
  }
  return tied.front();
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

namespace {

// Factorize for a float32 or float64 W: the factors keep T's precision, R and the randomized passes
// are in T (float32 R: half the memory of a double one; float64 R: double passes throughout).
template <typename T>
StatusOr<KronFactors> FactorizeOf(const T* w, int64_t K, int64_t N, const KronShape& shape,
                                  int64_t rank, const FactorizeOptions& options) {
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
  const SvdMethod method = ChooseSvdMethod(m, n, rank, options.svd);
  if (method == SvdMethod::kExact) {
    KFC_RETURN_IF_ERROR(CheckDgesddDims(m, n, "rearranged matrix"));
  }
  if (w == nullptr) return InvalidArgument("weight " + DimsString(K, N) + " has no data (null)");

  KronFactors out;
  out.shape = shape;
  out.rank = rank;
  out.method = method;
  KFC_ASSIGN_OR_RETURN(out.frobenius_norm, FrobeniusNormOf(w, K, N));
  if (method == SvdMethod::kExact) {
    KFC_ASSIGN_OR_RETURN(std::vector<double> r, Rearrange(w, K, N, shape));
    auto t = ExactSvdInPlace(r.data(), m, n, rank);
    if (!t.ok()) {
      return Internal(t.status().message() + " (the rearranged matrix for shape " +
                      ShapeString(shape) + ")");
    }
    SplitFactors<T>(*t, &out);
    out.relative_error = SpectrumError(t->spectrum, rank, out.frobenius_norm);
    out.singular_values = std::move(t->spectrum);
    return out;
  }
  // Randomized, R in T: for float32, mixed-precision passes. Its triplets are those of an
  // orthogonal projection of R, computed to double rounding (see truncated_svd.h), so the error of
  // the returned factors is exactly sqrt(||W||^2 - sum_t s_t^2) up to rounding.
  std::vector<T> r;
  KFC_RETURN_IF_ERROR(RearrangeIntoVector(w, K, N, shape, &r));
  SvdOptions svd = options.svd;
  svd.method = SvdMethod::kRandomized;
  KFC_ASSIGN_OR_RETURN(TruncatedSvd t, ComputeTruncatedSvd(r.data(), m, n, rank, svd));
  r.clear();
  r.shrink_to_fit();
  SplitFactors<T>(t, &out);
  if constexpr (std::is_same_v<T, double>) {
    // That difference loses all digits below a relative error of about 1e-8, which a float64
    // weight may well reach (a float32 one cannot: rounding W alone costs about 6e-8).
    out.relative_error = FactorsError(out, w);
  } else {
    double captured = 0.0;
    for (double s : t.s) captured += s * s;
    const double total = out.frobenius_norm * out.frobenius_norm;
    out.relative_error =
        total > 0.0 ? std::sqrt(std::max(0.0, total - captured)) / out.frobenius_norm : 0.0;
  }
  out.singular_values = std::move(t.s);
  out.float32_passes = t.float32_passes;
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

template <typename T>
double FactorsErrorOf(const KronFactors& factors, const T* w) {
  const int64_t N = factors.shape.N();
  double diff = 0.0, norm = 0.0;
  const bool ok = ForEachReconstructedRow(factors, [&](int64_t i, const double* w_hat) {
    const T* w_row = w + i * N;
    for (int64_t j = 0; j < N; ++j) {
      const double x = static_cast<double>(w_row[j]);
      const double d = x - w_hat[j];
      diff += d * d;
      norm += x * x;
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
  return FactorsErrorOf(factors, w);
}

double FactorsError(const KronFactors& factors, const double* w) {
  return FactorsErrorOf(factors, w);
}

}  // namespace kfc::kron
