// Shape search under a parameter budget or an error target; see shape_search.h for the bounds.
#include "kfc/kron/shape_search.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace kfc::kron {
namespace {

double Energy(const std::vector<double>& s, int64_t count) {
  double e = 0.0;
  for (int64_t t = std::min<int64_t>(count, static_cast<int64_t>(s.size())) - 1; t >= 0; --t) {
    e += s[static_cast<size_t>(t)] * s[static_cast<size_t>(t)];
  }
  return e;
}

// Relative error of keeping energy `kept` out of `total` = ||W||^2.
double ErrorFromEnergy(double total, double kept) {
  return total > 0.0 ? std::sqrt(std::max(0.0, total - kept) / total) : 0.0;
}

// Only a clearly smaller error counts: errors equal up to rounding must not be told apart by
// BLAS noise (that would make the choice depend on the thread count).
bool ClearlyBelow(double a, double b) { return a < b * (1.0 - 1e-9) - 1e-15; }

struct Layer {
  const float* w;
  int64_t K, N;
  double total;  // ||W||_F^2
};

// Singular values of R for `shape`: the top `rank` of them by `svd`.
StatusOr<std::vector<double>> TopSingularValues(const Layer& layer, const KronShape& shape,
                                                int64_t rank, const SvdOptions& svd) {
  KFC_ASSIGN_OR_RETURN(std::vector<double> r, Rearrange(layer.w, layer.K, layer.N, shape));
  KFC_ASSIGN_OR_RETURN(TruncatedSvd t, ComputeTruncatedSvd(r.data(), shape.k1 * shape.n1,
                                                           shape.k2 * shape.n2, rank, svd));
  return std::move(t.s);
}

// An exact SVD of an m x n matrix costs about m n min(m, n) flops: up to 2^27 (a 64 x 2048 or
// 512 x 512 matrix) it is cheaper than the randomized machinery, and exact. Exact where cheap also
// keeps equivalent shapes (whose rearrangements are transposes) tied to rounding, so the margin
// in ClearlyBelow decides them the same way on every machine.
bool ExactIsCheap(int64_t m, int64_t n) {
  return static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(std::min(m, n)) <=
         static_cast<double>(int64_t{1} << 27);
}

// Full-accuracy work on one shape. Under kAuto the randomized method is used wherever its sketch
// is small against the matrix (its error is within about 0.1% of optimal on flat spectra), not
// only above ChooseSvdMethod's 512 threshold: comparing many shapes with exact SVDs costs too much.
Status Evaluate(const Layer& layer, SvdOptions svd, ShapeCandidate* c) {
  const int64_t m = c->shape.k1 * c->shape.n1, n = c->shape.k2 * c->shape.n2;
  if (svd.method == SvdMethod::kAuto) {
    svd.method = ExactIsCheap(m, n) || 4 * (c->rank + svd.oversampling) >= std::min(m, n)
                     ? SvdMethod::kExact
                     : SvdMethod::kRandomized;
  }
  KFC_ASSIGN_OR_RETURN(std::vector<double> s, TopSingularValues(layer, c->shape, c->rank, svd));
  c->evaluated = true;
  c->error = ErrorFromEnergy(layer.total, Energy(s, c->rank));
  return Status::Ok();
}

// Probabilistic bound on the spectral norm of the sketch residual E = R - U U^T R (U: m x l,
// orthonormal, row-major): ||E||_2 <= 10 sqrt(2/pi) max_i ||E w_i|| over kProbeVectors Gaussian
// w_i, with probability at least 1 - 10^-kProbeVectors (Halko, Martinsson and Tropp 2011, eq. 4.3).
constexpr int64_t kProbeVectors = 10;

double ResidualSpectralBound(const std::vector<double>& r, int64_t m, int64_t n,
                             const std::vector<double>& u, int64_t l, uint64_t seed) {
  const int64_t p = kProbeVectors;
  std::vector<double> omega(static_cast<size_t>(n * p)), y(static_cast<size_t>(m * p)),
      z(static_cast<size_t>(l * p));
  FillGaussian(seed ^ 0x70726f6265ULL, &omega);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(p),
              static_cast<int>(n), 1.0, r.data(), static_cast<int>(n), omega.data(),
              static_cast<int>(p), 0.0, y.data(), static_cast<int>(p));
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(l), static_cast<int>(p),
              static_cast<int>(m), 1.0, u.data(), static_cast<int>(l), y.data(),
              static_cast<int>(p), 0.0, z.data(), static_cast<int>(p));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(p),
              static_cast<int>(l), -1.0, u.data(), static_cast<int>(l), z.data(),
              static_cast<int>(p), 1.0, y.data(), static_cast<int>(p));
  double worst = 0.0;
  for (int64_t j = 0; j < p; ++j) {
    double sq = 0.0;
    for (int64_t i = 0; i < m; ++i) sq += y[i * p + j] * y[i * p + j];
    worst = std::max(worst, std::sqrt(sq));
  }
  constexpr double kFactor = 10.0 * 0.79788456080286535588;  // 10 sqrt(2/pi)
  return kFactor * worst;
}

// Cheap bounds for a candidate whose full work would be randomized; exact work otherwise.
// Upper: the error of the sketch's own rank-r factorization. Lower: the Ky Fan (r, 2) norm is
// subadditive, so with R = Q B + E, sqrt(E_r(R)) <= sqrt(E_r(B)) + sqrt(E_r(E)), and
// E_r(E) <= min(||E||_F^2, r ||E||_2^2).
Status Bound(const Layer& layer, const SearchOptions& options, ShapeCandidate* c) {
  const int64_t m = c->shape.k1 * c->shape.n1, n = c->shape.k2 * c->shape.n2;
  const int64_t l = std::min(c->rank + options.sketch_oversampling, std::min(m, n));
  // Only where the sketch would not be much smaller than the matrix is exact work the cheap
  // option (the full-accuracy method's own 512 threshold is far too eager for a mere bound).
  if (options.svd.method == SvdMethod::kExact || 4 * l >= std::min(m, n) ||
      (options.svd.method == SvdMethod::kAuto && ExactIsCheap(m, n))) {
    SvdOptions exact =
        options.svd;  // bounds must be exact here: a randomized error is no lower bound
    exact.method = SvdMethod::kExact;
    KFC_RETURN_IF_ERROR(Evaluate(layer, exact, c));
    c->error_lower = c->error_upper = c->error;
    return Status::Ok();
  }
  SvdOptions sketch = options.svd;
  sketch.method = SvdMethod::kRandomized;
  sketch.oversampling = 0;
  sketch.power_iterations = options.sketch_power_iterations;
  KFC_ASSIGN_OR_RETURN(std::vector<double> r, Rearrange(layer.w, layer.K, layer.N, c->shape));
  KFC_ASSIGN_OR_RETURN(TruncatedSvd t, ComputeTruncatedSvd(r.data(), m, n, l, sketch));
  const double kept = Energy(t.s, c->rank);
  const double residual_f2 = std::max(0.0, layer.total - Energy(t.s, l));
  const double spectral = ResidualSpectralBound(r, m, n, t.u, l, options.svd.seed);
  const double residual_r2 =
      std::min(residual_f2, static_cast<double>(c->rank) * spectral * spectral);
  const double kept_bound = std::pow(std::sqrt(kept) + std::sqrt(residual_r2), 2);
  c->error_upper = ErrorFromEnergy(layer.total, kept);
  c->error_lower = ErrorFromEnergy(layer.total, std::min(layer.total, kept_bound));
  return Status::Ok();
}

void Take(const ShapeCandidate& c, ShapeSearchResult* result) {
  result->found = true;
  result->shape = c.shape;
  result->rank = c.rank;
  result->params = c.params;
  result->error = c.error;
}

StatusOr<ShapeSearchResult> SearchParams(const Layer& layer, const std::vector<KronShape>& shapes,
                                         int64_t max_params, const SearchOptions& options) {
  ShapeSearchResult result;
  const KronShape low_rank = LowRankShape(layer.K, layer.N);
  for (const auto& shape : shapes) {
    ShapeCandidate c;
    c.shape = shape;
    c.rank = std::min(max_params / shape.ParamsPerTerm(), shape.MaxRank());
    c.params = c.rank * shape.ParamsPerTerm();
    result.candidates.push_back(c);
  }
  double best_upper = 2.0;
  for (auto& c : result.candidates) {
    if (c.rank < 1) continue;
    if (options.prune) {
      KFC_RETURN_IF_ERROR(Bound(layer, options, &c));
      best_upper = std::min(best_upper, c.error_upper);
    }
  }
  for (auto& c : result.candidates) {
    if (c.rank < 1 || c.evaluated) continue;
    // The low-rank shape is always evaluated: the report compares the winner against it.
    const bool can_win = !options.prune || !ClearlyBelow(best_upper, c.error_lower);
    if (can_win || c.shape == low_rank) {
      KFC_RETURN_IF_ERROR(Evaluate(layer, options.svd, &c));
      ++result.full_evaluations;
    }
  }
  for (const auto& c : result.candidates) {
    if (!c.evaluated) continue;
    if (!result.found || ClearlyBelow(c.error, result.error) ||
        (!ClearlyBelow(result.error, c.error) && c.params < result.params)) {
      Take(c, &result);
    }
  }
  return result;
}

StatusOr<ShapeSearchResult> SearchError(const Layer& layer, const std::vector<KronShape>& shapes,
                                        double max_error, const SvdOptions& svd) {
  ShapeSearchResult result;
  const int64_t dense = layer.K * layer.N;
  for (const auto& shape : shapes) {
    ShapeCandidate c;
    c.shape = shape;
    const int64_t r_max = std::min(shape.MaxRank(), (dense - 1) / shape.ParamsPerTerm());
    c.meets_target = false;
    if (r_max >= 1) {
      KFC_ASSIGN_OR_RETURN(std::vector<double> s, TopSingularValues(layer, shape, r_max, svd));
      ++result.full_evaluations;
      c.evaluated = true;
      double kept = 0.0;
      for (int64_t k = 1; k <= r_max; ++k) {
        kept += s[static_cast<size_t>(k - 1)] * s[static_cast<size_t>(k - 1)];
        c.rank = k;
        c.error = ErrorFromEnergy(layer.total, kept);
        if (c.error <= max_error) {
          c.meets_target = true;
          break;
        }
      }
      c.params = c.rank * shape.ParamsPerTerm();
    }
    result.candidates.push_back(c);
  }
  for (const auto& c : result.candidates) {
    if (!c.meets_target) continue;
    if (!result.found || c.params < result.params ||
        (c.params == result.params && ClearlyBelow(c.error, result.error))) {
      Take(c, &result);
    }
  }
  return result;
}

}  // namespace

StatusOr<ShapeSearchResult> SearchShape(const float* w, int64_t K, int64_t N,
                                        const SearchBudget& budget, const SearchOptions& options) {
  if (K < 1 || N < 1) {
    return InvalidArgument("weight dimensions " + std::to_string(K) + "x" + std::to_string(N) +
                           " must both be at least 1");
  }
  if (w == nullptr) return InvalidArgument("weight has no data (null)");
  const bool by_params = budget.max_params > 0, by_error = budget.max_error >= 0.0;
  if (by_params == by_error) {
    return InvalidArgument(
        "shape search needs exactly one of a parameter budget or an error target");
  }
  if (options.sketch_oversampling < 0 || options.sketch_power_iterations < 0) {
    return InvalidArgument("shape search sketch options must be >= 0");
  }
  KFC_ASSIGN_OR_RETURN(const double norm, CheckedFrobeniusNorm(w, K, N));
  const Layer layer{w, K, N, norm * norm};
  const std::vector<KronShape> shapes = EnumerateShapes(K, N);
  if (by_params) return SearchParams(layer, shapes, budget.max_params, options);
  return SearchError(layer, shapes, budget.max_error, options.svd);
}

}  // namespace kfc::kron
