// SPDX-License-Identifier: Apache-2.0
// The factor constants a Kronecker layer emits, and their one identity.
//
// Before: KronFactors f approximating W (K x N): A_t (k1 x n1), B_t (k2 x n2), t < r, in double.
// After:  two stacked constants in the layer's dtype, alpha folded into the A stack:
//   B first:  first = Bcat[k2, r*n2],   Bcat[i2, t*n2+j2] = B_t[i2,j2]
//             second = Acat[n1, k1*r],  Acat[j1, i1*r+t] = alpha*A_t[i1,j1]
//   A first:  first = Acat[n1*r, k1],   Acat[j1*r+t, i1] = alpha*A_t[i1,j1]
//             second = Bstack[r*k2, n2], Bstack[t*k2+i2, j2] = B_t[i2,j2]
//   For the W X form (MatMul(W, X)) the B stack goes in transposed.
//   Low-rank shapes (K x 1 (x) 1 x N and 1 x N (x) K x 1, W ~ U V with U: K x r, V: r x N) in
//   either order: first = U[K, r], second = V[r, N] (W X form: U^T[r, K], V^T[N, r]), alpha
//   folded into whichever of U, V holds the A factors. The emitter multiplies them directly,
//   without Reshape (kron_layer.h).
//
// What those bytes depend on is FactorIdentity: the factorized weight (source, orientation,
// calibration data), shape, rank and precision (FactorsKey: what one factorization computes), and
// the contraction order, folded alpha (by its bits), dtype and form (EncodingKey: how it is
// stored). Equal Key()s give equal constants; job grouping, the report's sharing, the spill's
// encodings and the emitter all go by it (the emitter by content, which equal keys imply).
#pragma once

#include <cstdint>
#include <string>

#include "kfc/core/status.h"
#include "kfc/kron/factorize.h"
#include "kfc/match/match.h"
#include "onnx/onnx_pb.h"

namespace kfc::rewrite {

// The two stacked factor constants of a layer's subgraph, as ApplyKronRewrites stores them
// (unnamed): the first MatMul's and the second's, alpha folded in, in the layer's dtype, the B
// stack transposed for the W·X form. See the picture above for their index maps.
struct StackedInitializers {
  onnx::TensorProto first, second;
};

// The scale folded into the A factors: a Gemm's alpha, 1 for a MatMul.
inline float FoldedAlpha(const match::LayerCandidate& layer) {
  return layer.op_type == "Gemm" ? layer.alpha : 1.0f;
}

// True when `shape` is one of `layer`'s two low-rank shapes (kron::IsLowRankShape): its constants
// are U and V and its subgraph is two plain products (kron_layer.h).
bool EmitsLowRank(const match::LayerCandidate& layer, const kron::KronShape& shape);

// Encodes `f` for `layer` in `order` (ignored for a low-rank shape): the bytes ApplyKronRewrites
// emits. InvalidArgument when the factor shape does not match the layer.
StatusOr<StackedInitializers> EncodeFactors(const match::LayerCandidate& layer,
                                            const kron::KronFactors& f,
                                            kron::ContractionOrder order);

// Everything the emitted constants of a layer are a function of.
struct FactorIdentity {
  // The weight as factorized: its source value and orientation, and when calibrated the input
  // data (the caller's string; equal strings must mean equal matrices and statistics).
  std::string weight;
  kron::KronShape shape;
  int64_t rank = 0;
  bool in_double = false;  // float64 layers are factorized in double
  kron::ContractionOrder order = kron::ContractionOrder::kBFirst;
  float alpha = 1.0f;  // FoldedAlpha
  int32_t dtype = 0;
  bool weight_first = false;

  // The identity of `layer`'s constants for factors of `weight` at `shape` and `rank`, in the
  // cheaper contraction order (kron::CheaperOrder), as the pipeline emits them.
  static FactorIdentity Of(const match::LayerCandidate& layer, std::string weight,
                           const kron::KronShape& shape, int64_t rank);

  // What one factorization computes: layers with equal FactorsKey share one.
  std::string FactorsKey() const;
  // How the factors are stored besides their values: order, alpha bits, dtype, form.
  std::string EncodingKey() const;
  // FactorsKey and EncodingKey: equal keys give byte-identical constants.
  std::string Key() const { return FactorsKey() + "|" + EncodingKey(); }
};

}  // namespace kfc::rewrite
