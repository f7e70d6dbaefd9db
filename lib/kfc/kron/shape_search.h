// SPDX-License-Identifier: Apache-2.0
// Choosing the factor shape (and rank) of one layer under a budget.
//
// Conventions as in factorize.h: W is K x N row-major, a candidate shape is k1 x n1 (x) k2 x n2
// with k1 | K and n1 | N, R is its m x n = (k1*n1) x (k2*n2) rearrangement, and a shape at rank r
// costs r * (k1*n1 + k2*n2) parameters. E_r(X) is the energy of X's top r singular values
// (sum of s_t^2); errors are relative Frobenius errors ||W - W_hat||_F / ||W||_F, so a shape's
// optimal error at rank r is sqrt(1 - E_r(R) / ||W||^2).
//
// Parameter budget: every non-trivial shape (EnumerateShapes, low-rank K x 1 (x) 1 x N included)
// gets the largest rank the budget allows (capped at its MaxRank, and by budget.max_macs); the
// shape with the least error wins. "Full work" on a shape is a subspace iteration from the right:
// V_0 = orth(Omega) (n x l, l = r + svd.oversampling), V_{j+1} = orth(R^T R V_j), and its error is
// that of the factorization (R V_J)_r V_J^T with J = svd.power_iterations + 1, computed with double
// accumulation, so it is exact for that factorization (about as accurate as Factorize's randomized
// SVD). Where the exact spectrum is cheap (m n min(m, n) <= 2^27, or the sketch would not be much
// smaller than R), it comes from the Gram matrix of R's shorter side in double instead.
//
// Pruning keeps the best shape. A shape's work proves, for every r', upper bounds on E_r'(R):
//   E_r'(R) <= E_r'(R V) + E_r'(E),   E = R (I - V V^T)
// (Ky Fan: R R^T = (R V)(R V)^T + E E^T), with E_r'(E) bounded by ||E||_F^2 = ||W||^2 - ||R V||_F^2
// (exact), r' ||E||_2^2 and r'^(1 - 1/(2k)) ||(E^T E)^k||_F^(1/k). The last two come from Gaussian
// probes w_i powered through E^T E: ||(E^T E)^k|| <= a sqrt(2/pi) max_i ||(E^T E)^k w_i|| (Halko,
// Martinsson and Tropp 2011, Lemma 4.1) and a Chernoff bound on the mean of ||(E^T E)^k w_i||^2,
// each failing with probability below 1e-11 (below 1e-7 for a whole search). A float32 rounding
// margin is added. The probes come in two chains:
// - screening, before any iteration: 2p/5 probes, two powers of R^T R itself (V empty, so the
//   bound is r' ||R||_2^2 or the Hoelder one). It costs less than one pass and rules out shapes
//   whose spectrum is spread thin.
// - from pass 1 on, 3p/5 probes anchored at V_1, riding along in the passes (one more power per
//   pass). Their bound gamma on ||E||_2^2 also feeds a second-order bound (SchurEigenvalueBounds in
//   matrix_passes.h): with V_1's Ritz block A and residual S, lambda_i(R^T R) <= max(gamma, rho_i)
//   for the fixed point rho_i of lambda_i(A + S / (lambda - gamma)) = lambda, nearly the Ritz
//   values where V_1 is nearly invariant, where Ky Fan adds r' gamma. It holds whenever gamma does
//   (same failure probability). When V_1's Ritz values alone would rule the shape out, up to three
//   probe-only products (3p/5 columns) sharpen gamma before any further pass is paid for.
// Each pass (and each probe-only power) is one sweep over R (MultiplyGram), on R's columns, or on
// its rows when they are the shorter side and blocks on the columns would pass half of R's bytes.
// The low-rank shape, always fully worked, carries no probes (only far neighbours could use them);
// every other shape carries the V_1 chain whether the search prunes or not, so its passes, and its
// error when fully worked, are the same either way. The same bounds reach other shapes: a rank-r
// sum for shape s is a rank-(f r) sum for any shape c whose k1 divides or is divided by s's (ratio
// f_k) and likewise n1 (ratio f_n), f = f_k f_n, so E_r(R_s) <= E_{f r}(R_c). A shape whose lower
// bound on the error clearly exceeds the least error of a fully worked shape cannot win: its work
// stops there, or never starts when other shapes' bounds already rule it out. Shapes are tried in
// promise order: the low-rank shape, the balanced one, then the largest ranks first. The low-rank
// shape is always fully worked (the report compares the winner with it); its twin 1 x N (x) K x 1
// has R = W^T and takes its numbers. The iteration also stops once a pass moves the captured energy
// by less than 1e-3 of the remaining error energy (converged).
//
// Error target: every shape gets the smallest rank whose error meets the target (among ranks that
// still save parameters and stay within budget.max_macs); the shape with the fewest parameters
// (SearchObjective::kMacs: MACs) wins, ties to the other count, then to the least error. No
// pruning: each shape's spectrum is computed up to its largest profitable rank (float64 passes
// when the target is below kFloat32MinRelativeError).
// This header includes no ONNX or protobuf headers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/kron/factorize.h"
#include "kfc/kron/truncated_svd.h"

namespace kfc::kron {

// Which shape wins under an error target, among those meeting it.
enum class SearchObjective {
  kParams,  // fewest parameters, ties to fewer MACs, then to the least error
  kMacs,    // fewest MACs per row, ties to fewer parameters, then to the least error
};

struct SearchBudget {
  int64_t max_params = 0;   // > 0: parameter budget
  double max_error = -1.0;  // >= 0 (and max_params == 0): error target
  // >= 0: every shape's rank is capped so that its MACs per input row (cheaper order) stay at most
  // max_macs (MaxRankWithinMacs); a shape whose first term already costs more is no candidate.
  // K*N keeps the layer no slower than the dense one. -1: no limit.
  int64_t max_macs = -1;
  // With max_macs: what each node a shape adds to the dense layer costs, in MACs per row
  // (ExtraNodes, kNodeCostMacs). 0: MACs alone.
  int64_t node_cost = 0;
  SearchObjective objective = SearchObjective::kParams;  // error target only
};

struct SearchOptions {
  // Full work: oversampling, power iterations (at most power_iterations + 1 passes) and seed of
  // the subspace iteration; kExact forces exact spectra, kRandomized the iteration wherever the
  // sketch is much smaller than R.
  SvdOptions svd;
  // p Gaussian probes for the bounds (>= 4): 2p/5 screen a shape before its iteration, the rest
  // ride along from pass 1, anchored at V_1 (whose bound on ||E||_2 the Schur bounds need sharp).
  int64_t probe_vectors = 40;
  bool prune = true;  // false: full work on every shape (tests compare against this)
};

struct ShapeCandidate {
  KronShape shape;
  int64_t rank = 0;    // rank the budget allows (or, for an error target, the rank needed)
  int64_t params = 0;  // rank * shape.ParamsPerTerm()
  // Bounds on the least error this shape can reach at `rank`: the lower one from its own passes
  // or other shapes' (see the header comment), the upper one the error of a factorization its
  // passes found; equal when its spectrum was exact. -1 when not known.
  double error_lower = -1.0;
  double error_upper = -1.0;
  bool evaluated = false;    // full-accuracy work was done
  double error = -1.0;       // the error of the computed factorization, when evaluated
  bool meets_target = true;  // error target only: some profitable rank reaches it
  // Error target only: the target is reached at a rank that saves parameters but costs more MACs
  // than budget.max_macs allows (so meets_target is false).
  bool meets_target_above_max_macs = false;
  int64_t macs = 0;  // MACs per row at `rank` in the cheaper order
};

struct ShapeSearchResult {
  bool found = false;  // false: no shape fits the budget (or meets the target with a saving)
  KronShape shape;
  int64_t rank = 0;
  int64_t params = 0;
  int64_t macs = 0;
  double error = -1.0;
  std::vector<ShapeCandidate> candidates;  // every shape considered, in EnumerateShapes order
  int64_t full_evaluations = 0;
};

// Searches the shapes of W (K x N, row-major) under `budget`. InvalidArgument on bad dims, a
// budget with neither or both limits set, bad options, or NaN/Inf in W; Internal when LAPACK fails
// or memory runs out. Peak extra memory: one float32 R (W's size) plus thin blocks.
StatusOr<ShapeSearchResult> SearchShape(const float* w, int64_t K, int64_t N,
                                        const SearchBudget& budget,
                                        const SearchOptions& options = {});

// The low-rank shape K x 1 (x) 1 x N (plain truncated SVD of W).
inline KronShape LowRankShape(int64_t K, int64_t N) { return {K, 1, 1, N}; }

}  // namespace kfc::kron
