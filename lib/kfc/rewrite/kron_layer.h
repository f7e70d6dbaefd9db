// SPDX-License-Identifier: Apache-2.0
// Before: Y[..,N] = MatMul(X[..,K], W[K,N])                       K = k1*k2, N = n1*n2
//         Y[M,N]  = Gemm(X[M,K], B, C; alpha, beta, transB)       W = transB ? B^T : B
// After:  Y = sum_t A_t^T X B_t on X reshaped [..,k1,k2]; standard ops only (Reshape, MatMul,
//         and for a Gemm bias Add, plus Mul when the bias is computed and beta != 1):
//   B first:  X4 = Reshape(X, [0..,k1,k2]);  T = MatMul(X4, Bcat[k2, r*n2])
//             T2 = Reshape(T, [0..,k1*r,n2]); Y4 = MatMul(Acat[n1, k1*r], T2)
//             with Bcat[i2, t*n2+j2] = B_t[i2,j2] and Acat[j1, i1*r+t] = alpha*A_t[i1,j1]
//   A first:  U = MatMul(Acat[n1*r, k1], X4); U2 = Reshape(U, [0..,n1,r*k2])
//             Y4 = MatMul(U2, Bstack[r*k2, n2])
//             with Acat[j1*r+t, i1] = alpha*A_t[i1,j1] and Bstack[t*k2+i2, j2] = B_t[i2,j2]
//   Y = Reshape(Y4, [0..,N]) (+ beta*C).
//         Y[..,M,C] = MatMul(W[M,K], X[..,K,C]), W X form: W^T (K x M) is factorized, N = M, and
//   the same contractions act on X's second-to-last axis with both constants on the left:
//   B first:  X5 = Reshape(X, [0..,k1,k2,C]); T = MatMul(Bcat^T, X5); T2 = Reshape(T,
//             [0..,k1*r,n2*C]); Y4 = MatMul(Acat, T2); Y = Reshape(Y4, [0..,N,C])
//   A first:  X4 = Reshape(X, [0..,k1,k2*C]); U = MatMul(Acat, X4); U2 = Reshape(U,
//             [0..,n1,r*k2,C]); Y4 = MatMul(Bstack^T, U2); Y = Reshape(Y4, [0..,N,C])
//   with -1 for C (and n2*C, k2*C) when C is not static. No Transpose is needed. The stacked terms
//   make the sum over t part of the second MatMul's contraction, so no ReduceSum (whose signature
//   changed at opset 13) is needed; "0" in a Reshape shape copies that leading dim, so symbolic
//   batch/sequence dims stay symbolic.
// X of unknown rank (shape inference could not follow the exporter's Reshapes): the targets take
//   X's leading dims at run time. X W: lead = Shape(X)[:-1] (Shape's `end` from opset 15, else
//   Shape + Slice); X4 = Reshape(X, [-1,k1,k2]), the middle Reshape [-1, ..] as above, and
//   Y = Reshape(Y4, Concat(lead, [N])). W X: lead = Shape(X)[:-2], and all three targets are
//   Concat(lead, [.., -1]) with C as the -1. Known rank keeps the constant targets above.
// Low-rank shapes (K x 1 (x) 1 x N, 1 x N (x) K x 1: W ~ U V, U K x r, V r x N) skip all of the
//   above: two products that broadcast over any leading dims, for every input rank, unknown
//   included, and no Reshape: X W: Y = MatMul(MatMul(X, U), V); W X: Y = MatMul(V^T, MatMul(U^T,
//   X)); a Gemm keeps its bias on the second product, Y = Gemm(MatMul(X, U), V, C; beta), and
//   transA on the first (Gemm(X, U; transA=1) from opset 11, where C became optional). The
//   calibration correction joins C (folded into beta*C when C is a constant), or is C when there
//   is none and the input is 2-D (a MatMul in float32/float64 becomes a Gemm for it); else an Add.
// Why this form: timed in ONNX Runtime against flattened leading dims, Transposes that make both
// products one GEMM over all rows, rows moved into the GEMM columns, and Einsum; none was faster
// beyond the noise, most were slower (README, "Inference speed"; bench/subgraph_variants.py).
// Factors, a folded bias and beta are stored in the layer's dtype (float32, float64, float16 or
// bfloat16), so every op computes in the dtype the layer did.
// Preconditions: W a constant used only by this node; rank of X >= 2 or unknown; opset >= 7, and
// >= 13 for bfloat16; r*(k1*n1 + k2*n2) < K*N is the caller's choice, not checked here.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/kron/factorize.h"
#include "kfc/match/match.h"
#include "kfc/rewrite/factor_encoding.h"
#include "onnx/onnx_pb.h"

namespace kfc::rewrite {

struct KronRewrite {
  match::LayerCandidate layer;  // must be eligible; any graph (main or subgraph)
  kron::KronFactors factors;    // approximates W (K x N); alpha is folded in by the rewriter
  kron::ContractionOrder order = kron::ContractionOrder::kBFirst;
  // When set, the layer's constants, already encoded (EncodeFactors); factors.a and .b are then
  // not read and may be empty (shape and rank are). Their data may be external (a spill file,
  // io/spill.h): the rewriter never reads it, and treats tensors with the same external
  // reference (location, offset, length) as identical, as it does inline tensors with equal bytes.
  std::optional<StackedInitializers> encoded;
  // Calibration: mu^T (W - W_hat) (length N, alpha excluded), added to the output with one more
  // Add so the layer's expected output on the calibration data is unchanged. Empty: none.
  std::vector<float> bias_correction;
  // Set as the doc_string of every node emitted for the layer (what Netron shows): which node it
  // replaces, and how. Empty: none.
  std::string doc_string;
};

// The nodes emitted for one layer, for the strict check of the output (check/validate.h).
struct EmittedLayer {
  match::LayerCandidate layer;     // the layer as matched (its input and output types included)
  std::vector<std::string> nodes;  // names of the emitted nodes, unique in the model, in order
};

// Replaces each layer's node by its Kronecker subgraph, in place of the node (inside its If, Loop
// or Scan body when it is in one) so every graph stays topologically sorted, then removes the dense
// weights (and a Gemm bias folded with beta) that nothing uses any more, from whichever graph held
// them. New initializers go into the graph that held the weight: the layer's own graph, or the
// enclosing graph whose initializer a subgraph read (IR 3: always the main graph, listed as inputs
// there). New names derive from the node's name (or its output's name when the node has none) and
// are made unique against every name in every graph of the model.
// When `emitted` is given, it receives one entry per rewrite.
Status ApplyKronRewrites(onnx::ModelProto* model, const std::vector<KronRewrite>& rewrites,
                         std::vector<EmittedLayer>* emitted = nullptr);

}  // namespace kfc::rewrite
