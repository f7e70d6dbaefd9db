// SPDX-License-Identifier: Apache-2.0
// Shape search under a parameter budget or an error target; see shape_search.h for the iteration
// and the bounds. Symbols as there: R is m x n (row-major, float32); the iteration runs on
// R' = R or R^T, whichever has fewer columns, so V (l columns) and the probes (p columns) live on
// R's shorter side (column-major, double); E = R' (I - V V^T).
#include "kfc/kron/shape_search.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>
#include <optional>
#include <string>
#include <utility>

#include "kfc/kron/matrix_passes.h"
#include "kfc/kron/rearrange.h"

namespace kfc::kron {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();
// Each probabilistic bound may fail with at most this probability.
constexpr double kProbeFailure = 1e-11;
// Seed offset of the probes, so they are independent of the iteration's own Gaussian start.
constexpr uint64_t kProbeSeed = 0x70726f6265ULL;
// Unit roundoff of float32: products with R in float32 are off by about this times sqrt(inner
// dimension), relative; the energy margin below is 8x that, against ||W||^2.
constexpr double kFloat32Unit = 0x1.0p-24;
// The iteration stops early once one more pass gains less than this fraction of the remaining
// error energy (about 5e-4 of the error), well inside the randomized method's own gap.
constexpr double kConvergedChange = 1e-3;
// At most this many probe-only powers sharpen the late chain's bound on ||C|| after its anchor
// pass, for a shape whose Ritz values say it loses (Work).
constexpr int kSharpenPowers = 3;
// Probe-only powers of M that screen a shape before its iteration (Work).
constexpr int kScreenPowers = 2;
// The Schur bounds cost up to 6 r eigenproblems of order l per record (LAPACK, threads waking for
// each); past this block size they cost more than the passes they save (1024 x 1024 at rank 64:
// 8x slower), so larger blocks keep the Ky Fan bounds only.
constexpr int64_t kSchurMaxBlock = 32;

// Above this many flops (m n min(m, n)), an exact spectrum costs more than the iteration.
constexpr double kExactMaxFlops = static_cast<double>(int64_t{1} << 27);

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

// The R buffer, reused from shape to shape (always K*N floats), so the allocator does not hand out
// a fresh one per shape.
struct Workspace {
  std::vector<float> r;
};

// R for one shape: W itself where the rearrangement is a reshape (n1 == 1 or k2 == 1: each row of
// R is a run of W), else a float32 copy in *storage.
StatusOr<const float*> RearrangedData(const Layer& layer, const KronShape& shape,
                                      std::vector<float>* storage) {
  if (shape.n1 == 1 || shape.k2 == 1) return layer.w;
  KFC_RETURN_IF_ERROR(RearrangeFloatInto(layer.w, layer.K, layer.N, shape, storage));
  return static_cast<const float*>(storage->data());
}

std::string Describe(const KronShape& s) {
  return std::to_string(s.k1 * s.n1) + "x" + std::to_string(s.k2 * s.n2) +
         " rearranged matrix of shape " + std::to_string(s.k1) + "x" + std::to_string(s.n1) +
         " (x) " + std::to_string(s.k2) + "x" + std::to_string(s.n2);
}

// What one pass proves about E_r'(R) for every r' (shape_search.h), for E = R (I - V V^T) with the
// V of some pass and probe bounds on M = E^T E after k products (power):
//   E_r'(R) <= captured[min(r', l)] + min(residual, r' spectral, r'^(1 - 1/(2k)) frobenius)
//              + margin
// where spectral bounds ||E||_2^2 and frobenius bounds ||M^k||_F^(1/k) (Hoelder: the top r'
// eigenvalues of M sum to at most r'^(1 - 1/(2k)) (sum of their 2k-th powers)^(1/(2k))).
// A probed record may also carry per-eigenvalue bounds (SchurEigenvalueBounds): eigen_sums[k]
// bounds E_k(R) for k <= q = eigen_sums.size() - 1, and every eigenvalue past the q-th is at most
// eigen_tail, so E_r'(R) <= eigen_sums[q] + (r' - q) eigen_tail beyond.
struct EnergyBound {
  std::vector<double> captured;  // captured[k] = E_k(R V), k = 0..l; or the whole spectrum's
  double residual = 0.0;         // ||E||_F^2
  double spectral = kInfinity;
  double frobenius = kInfinity;
  int power = 1;
  double margin = 0.0;  // float32 rounding
  std::vector<double> eigen_sums;
  double eigen_tail = kInfinity;

  double Upper(double rank) const {
    const size_t last = captured.size() - 1;
    const size_t k = rank >= static_cast<double>(last) ? last : static_cast<size_t>(rank);
    const double hoelder = std::pow(rank, 1.0 - 0.5 / power) * frobenius;
    const double ky_fan = captured[k] + std::min({residual, rank * spectral, hoelder}) + margin;
    if (eigen_sums.empty()) return ky_fan;
    const size_t q = eigen_sums.size() - 1;
    const double schur = rank <= static_cast<double>(q)
                             ? eigen_sums[static_cast<size_t>(rank)]
                             : eigen_sums[q] + (rank - static_cast<double>(q)) * eigen_tail;
    return std::min(ky_fan, schur);
  }
};

// captured[k] = sum of the k largest of `squared` (descending), k = 0..size.
std::vector<double> PrefixSums(const std::vector<double>& squared) {
  std::vector<double> sums(squared.size() + 1, 0.0);
  for (size_t k = 0; k < squared.size(); ++k) sums[k + 1] = sums[k] + squared[k];
  return sums;
}

// x (n x cols) -= V (V^T x), for V n x l orthonormal.
void ProjectOut(const std::vector<double>& v, int64_t n, int64_t l, double* x, int64_t cols) {
  if (l == 0) return;
  std::vector<double> coef(static_cast<size_t>(l * cols));
  cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, static_cast<int>(l), static_cast<int>(cols),
              static_cast<int>(n), 1.0, v.data(), static_cast<int>(n), x, static_cast<int>(n), 0.0,
              coef.data(), static_cast<int>(l));
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n),
              static_cast<int>(cols), static_cast<int>(l), -1.0, v.data(), static_cast<int>(n),
              coef.data(), static_cast<int>(l), 1.0, x, static_cast<int>(n));
}

// p Gaussian probes w_i powered through M = E^T E, E = R (I - V_a V_a^T) for a fixed anchor V_a,
// riding along in the iteration's products: after k of them the block holds M^k W / scale. With
// the HMT bound ||M^k|| <= a sqrt(2/pi) max_i ||M^k w_i|| (failing with probability a^-p, Halko,
// Martinsson and Tropp 2011, Lemma 4.1) the k-th root bounds ||E||_2^2 with an overestimate that
// shrinks like (a sqrt(n_eff))^(1/k); the Chernoff bound ||M^k||_F^2 <= mean_i ||M^k w_i||^2 / t
// fails with probability at most (t e^(1-t))^(p/2) (the mean is sum_j mu_j^2 X_j / ||M^k||_F^2
// for i.i.d. X_j ~ chi^2_p / p, whose Laplace transform is at most one X_j's).
class ProbeChain {
 public:
  ProbeChain(int64_t n, int64_t p, uint64_t seed, const std::vector<double>& anchor, int64_t l)
      : n_(n), p_(p), l_(l), anchor_(anchor), block_(static_cast<size_t>(n * p)) {
    FillGaussian(seed, &block_);
    const double pd = static_cast<double>(p);
    log_factor_ = -std::log(kProbeFailure) / pd + std::log(0.79788456080286535588);
    const double target = std::pow(kProbeFailure, 2.0 / pd);  // t e^(1-t) must not exceed it
    double lo = 0.0, hi = 1.0;                                // t e^(1-t) increases on (0, 1)
    for (int it = 0; it < 100; ++it) {
      const double mid = 0.5 * (lo + hi);
      (mid * std::exp(1.0 - mid) <= target ? lo : hi) = mid;
    }
    chernoff_t_ = lo;
  }

  // x (n x p) = (I - V_a V_a^T) times the block: the next product's input.
  void Load(double* x) const {
    std::copy(block_.begin(), block_.end(), x);
    ProjectOut(anchor_, n_, l_, x, p_);
  }

  // Takes z = R^T R x for the loaded x; fills the probe fields of *b.
  void Absorb(const double* z, EnergyBound* b) {
    std::copy(z, z + n_ * p_, block_.begin());
    ProjectOut(anchor_, n_, l_, block_.data(), p_);
    ++power_;
    double max_sq = 0.0, mean_sq = 0.0;
    for (int64_t i = 0; i < p_; ++i) {
      double sq = 0.0;
      for (int64_t k = 0; k < n_; ++k) sq += block_[i * n_ + k] * block_[i * n_ + k];
      max_sq = std::max(max_sq, sq);
      mean_sq += sq / static_cast<double>(p_);
    }
    b->power = static_cast<int>(power_);
    if (max_sq == 0.0 || dead_) {  // E is 0 on the probes' span: ||E|| = 0 with the same odds
      dead_ = true;
      b->spectral = b->frobenius = 0.0;
      return;
    }
    const double max_norm = std::sqrt(max_sq);
    log_scale_ += std::log(max_norm);
    for (double& x : block_) x /= max_norm;
    const double k = static_cast<double>(power_);
    b->spectral = std::exp((log_factor_ + log_scale_) / k);
    b->frobenius = std::exp((log_scale_ + 0.5 * std::log(mean_sq / max_sq / chernoff_t_)) / k);
  }

 private:
  int64_t n_, p_, l_;
  std::vector<double> anchor_;
  std::vector<double> block_;
  double log_factor_ = 0.0, chernoff_t_ = 1.0, log_scale_ = 0.0;
  int64_t power_ = 0;
  bool dead_ = false;
};

// Fewest Kronecker terms of shape `to` that can express one term of shape `from` (the product of
// the factors moved between A and B), or 0 when k1 or n1 of one does not divide the other's.
double TermMultiplier(const KronShape& from, const KronShape& to) {
  auto ratio = [](int64_t a, int64_t b) {
    if (a % b == 0) return static_cast<double>(a / b);
    if (b % a == 0) return static_cast<double>(b / a);
    return 0.0;
  };
  return ratio(from.k1, to.k1) * ratio(from.n1, to.n1);
}

double MinUpper(const std::vector<EnergyBound>& bounds, double rank) {
  double best = kInfinity;
  for (const auto& b : bounds) best = std::min(best, b.Upper(rank));
  return best;
}

bool UseExactSpectrum(int64_t m, int64_t n, int64_t l, SvdMethod method) {
  if (method == SvdMethod::kExact || 4 * l >= std::min(m, n)) return true;
  return method == SvdMethod::kAuto &&
         static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(std::min(m, n)) <=
             kExactMaxFlops;
}

// Full work on `c`, or its passes until its own bounds rule it out against `best` (when
// `may_stop`); appends what each pass proves to *bounds. With `probe` (every shape but the
// low-rank one, whose bounds only its far neighbours could use), a shape that may stop is first
// screened by probe-only powers of M, and from pass 1 on a probe chain anchored at V_1 rides along
// in the passes, bounding what V_1 missed and feeding the Schur bounds. `probe` alone decides the
// columns of each pass, so a shape's passes, and with them its error, are the same whether the
// search prunes or not.
Status Work(const Layer& layer, const SearchOptions& options, double best, bool may_stop,
            bool probe, Workspace* ws, ShapeCandidate* c, std::vector<EnergyBound>* bounds) {
  const KronShape& s = c->shape;
  const int64_t m = s.k1 * s.n1, n = s.k2 * s.n2, r = c->rank;
  const int64_t l = std::min(r + options.svd.oversampling, std::min(m, n));
  const int64_t p = options.probe_vectors, pa = std::max<int64_t>(2, 2 * p / 5), pb = p - pa,
                w = l + p;
  const double total = layer.total;
  const std::string what = Describe(s);
  constexpr int64_t kBlasMax = std::numeric_limits<int>::max();
  if (m > kBlasMax || n > kBlasMax || std::max(m, n) > kBlasMax / w) {
    return InvalidArgument("the " + what + " is too large for the shape search: BLAS uses 32-bit " +
                           "integers");
  }
  KFC_ASSIGN_OR_RETURN(const float* const rd, RearrangedData(layer, s, &ws->r));
  auto finish = [&](std::vector<double> squared) {
    EnergyBound b;
    b.captured = PrefixSums(squared);
    b.residual = std::max(0.0, total - b.captured.back());
    c->evaluated = true;
    c->error = ErrorFromEnergy(total, b.captured[static_cast<size_t>(r)]);
    c->error_upper = c->error_upper < 0.0 ? c->error : std::min(c->error_upper, c->error);
    bounds->push_back(std::move(b));
  };
  const double rank = static_cast<double>(r);
  auto own_lower = [&] {
    c->error_lower =
        std::max(c->error_lower, ErrorFromEnergy(total, std::min(total, MinUpper(*bounds, rank))));
  };

  if (UseExactSpectrum(m, n, l, options.svd.method)) {
    KFC_ASSIGN_OR_RETURN(std::vector<double> squared, SquaredSingularValues(rd, m, n, what));
    finish(std::move(squared));
    c->error_lower = c->error;
    return Status::Ok();
  }

  // The iteration runs on R' = R (V in R^n, M = R^T R) or on R' = R^T (V in R^m, M = R R^T); the
  // spectrum, and with it every bound, is the same. On R, each pass is one sweep over R's rows
  // (MultiplyGram: Y_b = R_b X, then Z += R_b^T Y_b while the block is in cache), up to 1.7x
  // faster than two plain products (README, "Engine benchmark"); R^T's row blocks are strided
  // column blocks of R, which do not gain. So R, unless n is the longer side and the blocks that
  // live through the passes (V, X, Z, the probes: 2 n w doubles) would pass half of R's bytes; then
  // R^T, whose blocks are short.
  const bool flip = n > m && 8 * w > m;  // 2 n w doubles (16 n w bytes) > half of R (2 m n bytes)
  const int64_t lo = flip ? n : m, sh = flip ? m : n;  // R' is lo x sh
  auto pass = [&](const double* in, int64_t k, double* out, int64_t g = 0,
                  std::vector<double>* gram = nullptr) {
    MultiplyGram(rd, m, n, flip, in, k, out, g, gram);
  };
  std::vector<double> v, x, y, z;
  try {
    v.resize(static_cast<size_t>(sh * l));
    x.resize(static_cast<size_t>(sh * w));
    y.resize(static_cast<size_t>(lo * l));  // only the last, double-precision product
    z.resize(static_cast<size_t>(sh * w));
  } catch (const std::bad_alloc&) {
    return Internal("cannot allocate the sketches of the " + what);
  }
  FillGaussian(options.svd.seed, &v);
  KFC_RETURN_IF_ERROR(Orthonormalize(sh, l, v.data(), "start block of the " + what));
  const double margin = 8.0 * kFloat32Unit * std::sqrt(static_cast<double>(std::max(m, n))) * total;
  std::vector<double> gram;  // of the first l columns of each pass's Y
  // A shape that may lose first gets probe-only powers of M itself (pa columns each, against
  // l + pa for a pass): R's whole top energy is at most r ||R||_2^2, which rules out shapes whose
  // spectrum is spread thin for a fraction of a pass, before any V is worked.
  if (may_stop && probe) {
    ProbeChain screen(sh, pa, options.svd.seed ^ kProbeSeed, {}, 0);
    EnergyBound none;
    none.captured = {0.0};
    none.residual = total;
    none.margin = margin;
    for (int k = 0; k < kScreenPowers; ++k) {
      screen.Load(x.data());
      pass(x.data(), pa, z.data());
      EnergyBound probed = none;
      screen.Absorb(z.data(), &probed);
      bounds->push_back(std::move(probed));
      own_lower();
      if (ClearlyBelow(best, c->error_lower)) return Status::Ok();
    }
  }
  // From pass `late` on, a probe chain anchored at that pass's V rides along (pb columns), bounding
  // ||C|| for C = (I - V V^T) M (I - V V^T), what V missed; with V's Ritz block that gives the
  // Schur bounds (V_0 is random: its Ritz values bound nothing).
  constexpr int64_t late = 1;
  std::optional<ProbeChain> chain;
  size_t anchor_record = 0;  // index in *bounds of the anchor pass's record
  RitzBlock anchor_ritz;     // the anchor pass's Rayleigh-Ritz data
  const bool schur = l <= kSchurMaxBlock;
  auto absorb = [&](const double* zc) -> Status {
    EnergyBound probed = (*bounds)[anchor_record];  // the anchor pass's V and residual
    chain->Absorb(zc, &probed);
    if (schur) {
      const double gamma = std::min(probed.spectral, probed.frobenius) + margin;
      KFC_ASSIGN_OR_RETURN(probed.eigen_sums,
                           SchurEigenvalueBounds(anchor_ritz, r, gamma, margin, "the " + what));
      probed.eigen_tail = gamma;
    }
    bounds->push_back(std::move(probed));
    return Status::Ok();
  };
  const int64_t passes = options.svd.power_iterations + 1;
  double previous = -1.0;  // captured[r] of the previous pass
  for (int64_t j = 0; j < passes; ++j) {
    if (j == late && probe) chain.emplace(sh, pb, options.svd.seed ^ (kProbeSeed + 1), v, l);
    // X = [V | probes]; Y = R X; Z = R^T Y.
    const int64_t cols = l + (chain ? pb : 0);
    std::copy(v.begin(), v.end(), x.begin());
    if (chain) chain->Load(x.data() + sh * l);
    pass(x.data(), cols, z.data(), l, &gram);

    EnergyBound b;
    KFC_ASSIGN_OR_RETURN(
        const std::vector<double> squared,
        SymmetricEigenvalues(&gram, l, "Gram matrix of the sketch of the " + what));
    b.captured = PrefixSums(squared);
    b.residual = std::max(0.0, total - b.captured.back());
    b.margin = margin;
    const double upper = ErrorFromEnergy(total, b.captured[static_cast<size_t>(r)] - margin);
    c->error_upper = c->error_upper < 0.0 ? upper : std::min(c->error_upper, upper);
    if (j == late && chain) {
      anchor_record = bounds->size();
      if (schur) {
        KFC_ASSIGN_OR_RETURN(anchor_ritz, MakeRitzBlock(v.data(), z.data(), sh, l, "the " + what));
      }
    }
    bounds->push_back(b);
    if (chain) KFC_RETURN_IF_ERROR(absorb(z.data() + sh * l));
    own_lower();
    if (may_stop && ClearlyBelow(best, c->error_lower)) return Status::Ok();

    std::copy(z.begin(), z.begin() + sh * l, v.begin());  // V = orth(R^T R V)
    KFC_RETURN_IF_ERROR(Orthonormalize(sh, l, v.data(), "co-sketch of the " + what));
    if (chain && schur && j == late) {
      // What the anchor's Ritz values would prove with ||C|| = 0: when even that cannot rule the
      // shape out, only full passes help. Else its bound is held back by gamma, and probe-only
      // powers of the anchor chain (pb columns each, against l + pb for a pass) sharpen it.
      KFC_ASSIGN_OR_RETURN(const std::vector<double> hope,
                           SchurEigenvalueBounds(anchor_ritz, r, margin, margin, "the " + what));
      const double hope_error =
          ErrorFromEnergy(total, std::min(total, hope[static_cast<size_t>(r)]));
      for (int k = 0; k < kSharpenPowers && ClearlyBelow(best, hope_error); ++k) {
        chain->Load(x.data());
        pass(x.data(), pb, z.data());
        KFC_RETURN_IF_ERROR(absorb(z.data()));
        own_lower();
        if (ClearlyBelow(best, c->error_lower)) return Status::Ok();
      }
    }
    // Converged: the last pass moved the error by under kConvergedChange of its square.
    const double kept = b.captured[static_cast<size_t>(r)];
    if (j > 0 && kept - previous <= kConvergedChange * (total - kept)) break;
    previous = kept;
  }
  // The error of (R V)_r V^T, with R V accumulated in double: exact for that factorization.
  if (flip) {
    MultiplyAt(rd, m, n, v.data(), l, y.data(), PassPrecision::kFloat64);
  } else {
    MultiplyA(rd, m, n, v.data(), l, y.data(), PassPrecision::kFloat64);
  }
  KFC_ASSIGN_OR_RETURN(std::vector<double> squared,
                       GramEigenvalues(y.data(), lo, l, lo, "projection of the " + what));
  finish(std::move(squared));
  own_lower();
  return Status::Ok();
}

void Take(const ShapeCandidate& c, ShapeSearchResult* result) {
  result->found = true;
  result->shape = c.shape;
  result->rank = c.rank;
  result->params = c.params;
  result->macs = c.macs;
  result->error = c.error;
}

// Promise order (shape_search.h): the low-rank shape, its twin, the balanced shape, then the
// largest ranks first (EnumerateShapes order among equals).
std::vector<size_t> PromiseOrder(const Layer& layer, const std::vector<ShapeCandidate>& cands) {
  const KronShape low_rank = LowRankShape(layer.K, layer.N);
  const KronShape twin{1, layer.N, layer.K, 1};
  const StatusOr<KronShape> balanced = DefaultShape(layer.K, layer.N);
  auto priority = [&](const ShapeCandidate& c) {
    if (c.shape == low_rank) return 0;
    if (c.shape == twin) return 1;
    if (balanced.ok() && c.shape == *balanced) return 2;
    return 3;
  };
  std::vector<size_t> order;
  for (size_t i = 0; i < cands.size(); ++i) {
    if (cands[i].rank >= 1) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int pa = priority(cands[a]), pb = priority(cands[b]);
    if (pa != pb) return pa < pb;
    return cands[a].rank > cands[b].rank;
  });
  return order;
}

StatusOr<ShapeSearchResult> SearchParams(const Layer& layer, const std::vector<KronShape>& shapes,
                                         int64_t max_params, int64_t max_macs, int64_t node_cost,
                                         const SearchOptions& options) {
  ShapeSearchResult result;
  const KronShape low_rank = LowRankShape(layer.K, layer.N);
  const KronShape twin{1, layer.N, layer.K, 1};
  for (const auto& shape : shapes) {
    ShapeCandidate c;
    c.shape = shape;
    c.rank =
        std::min(max_params / shape.ParamsPerTerm(), MaxRankWithinMacs(shape, max_macs, node_cost));
    c.params = c.rank * shape.ParamsPerTerm();
    c.macs = c.rank * MacsPerTerm(shape);
    result.candidates.push_back(c);
  }
  std::vector<ShapeCandidate>& cands = result.candidates;
  std::vector<std::vector<EnergyBound>> bounds(cands.size());
  std::vector<size_t> done;  // candidates with bounds, in work order
  Workspace workspace;
  double best = kInfinity;  // least error of a fully worked shape
  size_t low_rank_index = cands.size();
  for (size_t i : PromiseOrder(layer, cands)) {
    ShapeCandidate& c = cands[i];
    if (c.shape == twin && low_rank_index < cands.size()) {
      // R = W^T: the low-rank shape's spectrum exactly.
      const ShapeCandidate& lr = cands[low_rank_index];
      c.evaluated = lr.evaluated;
      c.error = lr.error;
      c.error_lower = lr.error_lower;
      c.error_upper = lr.error_upper;
      continue;
    }
    const bool always = c.shape == low_rank;  // the report compares the winner with it
    if (options.prune && !always) {
      for (size_t d : done) {
        const double f = TermMultiplier(cands[d].shape, c.shape);
        if (f <= 0.0) continue;
        const double bound = MinUpper(bounds[d], f * static_cast<double>(c.rank));
        c.error_lower = std::max(c.error_lower, ErrorFromEnergy(layer.total, bound));
      }
      if (ClearlyBelow(best, c.error_lower)) continue;
    }
    KFC_RETURN_IF_ERROR(
        Work(layer, options, best, options.prune && !always, !always, &workspace, &c, &bounds[i]));
    done.push_back(i);
    if (always) low_rank_index = i;
    if (c.evaluated) best = std::min(best, c.error);
  }
  for (const auto& c : cands) {
    if (!c.evaluated) continue;
    ++result.full_evaluations;
    if (!result.found || ClearlyBelow(c.error, result.error) ||
        (!ClearlyBelow(result.error, c.error) && c.params < result.params)) {
      Take(c, &result);
    }
  }
  return result;
}

// Singular values of R for `shape`: the top `rank` of them by `svd`, from a float32 R.
StatusOr<std::vector<double>> TopSingularValues(const Layer& layer, const KronShape& shape,
                                                int64_t rank, const SvdOptions& svd) {
  std::vector<float> storage;
  KFC_ASSIGN_OR_RETURN(const float* const r, RearrangedData(layer, shape, &storage));
  KFC_ASSIGN_OR_RETURN(TruncatedSvd t,
                       ComputeTruncatedSvd(r, shape.k1 * shape.n1, shape.k2 * shape.n2, rank, svd));
  return std::move(t.s);
}

// Whether candidate a beats b under an error target: fewer parameters (kMacs: fewer MACs, then
// fewer parameters), then clearly less error.
bool Better(const ShapeCandidate& a, const ShapeCandidate& b, SearchObjective objective) {
  if (objective == SearchObjective::kMacs && a.macs != b.macs) return a.macs < b.macs;
  if (a.params != b.params) return a.params < b.params;
  return ClearlyBelow(a.error, b.error);
}

StatusOr<ShapeSearchResult> SearchError(const Layer& layer, const std::vector<KronShape>& shapes,
                                        double max_error, int64_t max_macs, int64_t node_cost,
                                        SearchObjective objective, SvdOptions svd) {
  // Errors near the target must be resolved: float32 passes only where their rounding is far
  // below it.
  if (max_error < kFloat32MinRelativeError) svd.precision = SvdPrecision::kFloat64;
  ShapeSearchResult result;
  const int64_t dense = layer.K * layer.N;
  for (const auto& shape : shapes) {
    ShapeCandidate c;
    c.shape = shape;
    const int64_t r_max = std::min(shape.MaxRank(), (dense - 1) / shape.ParamsPerTerm());
    const int64_t r_fast = std::min(r_max, MaxRankWithinMacs(shape, max_macs, node_cost));
    c.meets_target = false;
    if (r_max >= 1) {
      // Up to r_max, not r_fast: a target met only above the MACs limit is worth telling apart.
      KFC_ASSIGN_OR_RETURN(std::vector<double> s, TopSingularValues(layer, shape, r_max, svd));
      ++result.full_evaluations;
      c.evaluated = true;
      double kept = 0.0;
      for (int64_t k = 1; k <= r_max; ++k) {
        kept += s[static_cast<size_t>(k - 1)] * s[static_cast<size_t>(k - 1)];
        const double error = ErrorFromEnergy(layer.total, kept);
        if (k <= r_fast || k == 1) {
          c.rank = k;
          c.error = error;
        }
        if (error <= max_error) {
          c.meets_target = k <= r_fast;
          c.meets_target_above_max_macs = k > r_fast;
          break;
        }
      }
      c.params = c.rank * shape.ParamsPerTerm();
      c.macs = c.rank * MacsPerTerm(shape);
    }
    result.candidates.push_back(c);
  }
  const ShapeCandidate* best = nullptr;
  for (const auto& c : result.candidates) {
    if (c.meets_target && (best == nullptr || Better(c, *best, objective))) best = &c;
  }
  if (best != nullptr) Take(*best, &result);
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
  if (options.probe_vectors < 4 || options.svd.oversampling < 0 ||
      options.svd.power_iterations < 0) {
    return InvalidArgument(
        "shape search options need probe_vectors >= 4 and SVD oversampling and power "
        "iterations >= 0");
  }
  KFC_ASSIGN_OR_RETURN(const double norm, CheckedFrobeniusNorm(w, K, N));
  const Layer layer{w, K, N, norm * norm};
  const std::vector<KronShape> shapes = EnumerateShapes(K, N);
  if (by_params)
    return SearchParams(layer, shapes, budget.max_params, budget.max_macs, budget.node_cost,
                        options);
  return SearchError(layer, shapes, budget.max_error, budget.max_macs, budget.node_cost,
                     budget.objective, options.svd);
}

}  // namespace kfc::kron
