// Choosing the factor shape (and rank) of one layer under a budget.
//
// Conventions as in factorize.h: W is K x N row-major, a candidate shape is k1 x n1 (x) k2 x n2
// with k1 | K and n1 | N, R is its (k1*n1) x (k2*n2) rearrangement, and a shape at rank r costs
// r * (k1*n1 + k2*n2) parameters. Errors are relative Frobenius errors ||W - W_hat||_F / ||W||_F.
//
// Parameter budget: every non-trivial shape (EnumerateShapes, low-rank K x 1 (x) 1 x N included)
// gets the largest rank the budget allows (capped at its MaxRank); the shape with the least error
// wins. Pruning keeps the best: one cheap randomized sketch per shape (l = rank + p columns, q
// power iterations) gives, for its projection B = Q^T R,
//   upper bound  U = sqrt(||R||^2 - E_r(B))                  (the error of an actual factorization)
//   lower bound  L = sqrt(||R||^2 - (sqrt(E_r(B)) + ||R - Q B||_F)^2)   (on the optimal error)
// where E_r(B) is the energy of B's top r singular values (the lower bound holds because for any
// rank-r projection P, ||P R|| <= ||P Q B|| + ||R - Q B||). A shape whose L exceeds the smallest U
// cannot be optimal and gets no further work; the others are factorized at full accuracy.
//
// Error target: every shape gets the smallest rank whose error meets the target (among ranks that
// still save parameters); the shape with the fewest parameters wins, ties to the least error. No
// pruning: each shape's spectrum is computed up to its largest profitable rank.
// This header includes no ONNX or protobuf headers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/kron/factorize.h"
#include "kfc/kron/truncated_svd.h"

namespace kfc::kron {

struct SearchBudget {
  int64_t max_params = 0;   // > 0: parameter budget
  double max_error = -1.0;  // >= 0 (and max_params == 0): error target
};

struct SearchOptions {
  SvdOptions svd;                   // full-accuracy work on the shapes that survive pruning
  int64_t sketch_oversampling = 8;  // p of the cheap bounding sketch
  int64_t sketch_power_iterations = 1;
  bool prune = true;  // false: full work on every shape (tests compare against this)
};

struct ShapeCandidate {
  KronShape shape;
  int64_t rank = 0;    // rank the budget allows (or, for an error target, the rank needed)
  int64_t params = 0;  // rank * shape.ParamsPerTerm()
  // Bounds on the least error this shape can reach at `rank`, from the cheap sketch; equal when
  // the sketch was exact. -1 when no sketch was made.
  double error_lower = -1.0;
  double error_upper = -1.0;
  bool evaluated = false;    // full-accuracy work was done
  double error = -1.0;       // the error of the computed factorization, when evaluated
  bool meets_target = true;  // error target only: some profitable rank reaches it
};

struct ShapeSearchResult {
  bool found = false;  // false: no shape fits the budget (or meets the target with a saving)
  KronShape shape;
  int64_t rank = 0;
  int64_t params = 0;
  double error = -1.0;
  std::vector<ShapeCandidate> candidates;  // every shape considered, in EnumerateShapes order
  int64_t full_evaluations = 0;
};

// Searches the shapes of W (K x N, row-major) under `budget`. InvalidArgument on bad dims, a
// budget with neither or both limits set, or NaN/Inf in W; Internal when LAPACK fails.
StatusOr<ShapeSearchResult> SearchShape(const float* w, int64_t K, int64_t N,
                                        const SearchBudget& budget,
                                        const SearchOptions& options = {});

// The low-rank shape K x 1 (x) 1 x N (plain truncated SVD of W).
inline KronShape LowRankShape(int64_t K, int64_t N) { return {K, 1, 1, N}; }

}  // namespace kfc::kron
