// SPDX-License-Identifier: Apache-2.0
// Kronecker shapes of a K x N weight, and what they cost.
//
// Conventions (all matrices row-major): W is K x N and acts as y = x W on input rows x of length
// K; a shape splits it into terms A_t (x) B_t with A_t: k1 x n1, B_t: k2 x n2, K = k1*k2,
// N = n1*n2. This header includes no ONNX or protobuf headers.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kfc/core/status.h"

namespace kfc::kron {

// Shape of one Kronecker term: A is k1 x n1, B is k2 x n2.
struct KronShape {
  int64_t k1 = 0, n1 = 0, k2 = 0, n2 = 0;

  int64_t K() const { return k1 * k2; }
  int64_t N() const { return n1 * n2; }
  int64_t ParamsPerTerm() const { return k1 * n1 + k2 * n2; }
  // Largest useful rank: the rank of the rearranged matrix is at most min(k1*n1, k2*n2).
  int64_t MaxRank() const { return k1 * n1 < k2 * n2 ? k1 * n1 : k2 * n2; }
  bool operator==(const KronShape& o) const {
    return k1 == o.k1 && n1 == o.n1 && k2 == o.k2 && n2 == o.n2;
  }
};

// The two ways to evaluate y = x W_hat for one input row (primer, "The forward pass").
enum class ContractionOrder {
  kBFirst,  // T_t = X B_t, then A_t^T T_t: MACs r*K*n2 + r*k1*N
  kAFirst,  // U_t = A_t^T X, then U_t B_t: MACs r*K*n1 + r*k2*N
};

int64_t Macs(const KronShape& shape, int64_t rank, ContractionOrder order);
// The order with fewer MACs; kBFirst on a tie.
ContractionOrder CheaperOrder(const KronShape& shape, int64_t rank);
// MACs per input row of one term in the cheaper order: min(K*n2 + k1*N, K*n1 + k2*N). Macs is
// linear in the rank, so the cheaper order does not depend on it.
int64_t MacsPerTerm(const KronShape& shape);
// ONNX Runtime's cost at batch 1 of one node that a compressed layer adds to the dense layer, in
// MACs per row: about 0.5 us per added node, where a dense Gemm at batch 1 does about 16 MACs per
// ns (docs/benchmarks.md, "Cost of a node at batch 1", measured with
// bench/make_node_chain_model.py).
inline constexpr int64_t kNodeCostMacs = 8192;
// The nodes a layer of this shape costs beyond the dense layer's one Gemm/MatMul: 1 for the
// low-rank shapes (two products, the bias in the second); 6 for the others (three Reshapes, a
// second MatMul, the bias Add, and the activation ONNX Runtime then no longer folds into a Gemm).
int64_t ExtraNodes(const KronShape& shape);
// The largest rank r <= shape.MaxRank() whose MACs per row in the cheaper order, plus
// ExtraNodes(shape) * node_cost, are at most max_macs (0 when one term already costs more);
// shape.MaxRank() when max_macs < 0 (no limit). With max_macs = K*N this keeps a layer no slower
// than the dense one (at batch 1 with node_cost = kNodeCostMacs).
int64_t MaxRankWithinMacs(const KronShape& shape, int64_t max_macs, int64_t node_cost = 0);

// Every divisor pair (k1 | K, n1 | N) except the two trivial ones (k1 = n1 = 1 and k1 = K, n1 = N),
// ordered by k1 then n1. Includes the low-rank shapes (K x 1 with 1 x N, and 1 x N with K x 1).
// Empty when K or N < 1 or K*N == 1.
std::vector<KronShape> EnumerateShapes(int64_t K, int64_t N);

// True for the two low-rank shapes K x 1 (x) 1 x N and 1 x N (x) K x 1 (R is W or W^T: plain SVD).
bool IsLowRankShape(const KronShape& shape, int64_t K, int64_t N);

// The shape with the fewest parameters per term ("balanced") among the shapes that are not
// low-rank (those only where no other shape exists, e.g. prime K and N); ties go to the shape
// whose k1*n1 is closest to k2*n2, then to the squarest factors (least (max(k1,k2)*max(n1,n2)) /
// (min(k1,k2)*min(n1,n2))), then to the smaller k1, then the smaller n1. InvalidArgument when no
// shape exists.
StatusOr<KronShape> DefaultShape(int64_t K, int64_t N);

// Every shape that ties with DefaultShape on parameters per term and on |k1*n1 - k2*n2|, in
// DefaultShape's order (its choice first). All of them have the same MaxRank(). Empty when no
// shape exists.
std::vector<KronShape> TiedDefaultShapes(int64_t K, int64_t N);

// "k1xn1 (x) k2xn2" and "rowsxcols", for messages.
std::string ShapeString(const KronShape& s);
std::string DimsString(int64_t rows, int64_t cols);

// a * b for a, b >= 0 without undefined behaviour; false when the product exceeds int64.
inline bool CheckedMul(int64_t a, int64_t b, int64_t* out) {
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) return false;
  *out = a * b;
  return true;
}

// Checks K, N and `shape` against each other without overflowing: InvalidArgument (naming the
// dims and the shape) unless K, N and every factor dim are >= 1, k1*k2 == K and n1*n2 == N; on
// success K*N, k1*n1 and k2*n2 are all representable in int64 and a vector of K*N doubles can be
// sized.
Status ValidateDims(int64_t K, int64_t N, const KronShape& shape);

}  // namespace kfc::kron
