// Per-layer decision policies of the decide phase: which budget a layer gets (Resolve), which
// shapes its policy allows, and the shape and rank for -r and --max-error. Internal to pipeline/.
#pragma once

#include <cstdint>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/kron/weighted.h"
#include "kfc/pipeline/layer_state.h"

namespace kfc::pipeline {

// The directive of layer c: its plan entry's budget, else the mode's.
Directive Resolve(const Options& o, const match::LayerCandidate& c);

// The shapes a (non-auto) policy allows for the layer: balanced gives the shapes tied for fewest
// parameters per term (only the squarest above kTieSearchMaxElements), a fixed shape that does
// not divide the layer falls back to balanced (*fell_back set). Empty when no non-trivial shape
// exists.
std::vector<kron::KronShape> PolicyShapesQuiet(const ShapePolicy& p, const match::LayerCandidate& c,
                                               bool* fell_back);

// PolicyShapesQuiet, with a warning when a fixed shape falls back to balanced.
std::vector<kron::KronShape> PolicyShapes(const ShapePolicy& p, const match::LayerCandidate& c);

// The spectrum that rates `shape`: of W's rearrangement, or with calibration statistics of the
// whitened weight's (kron::Whiten), whose tail energy is the data-weighted error (exact for the
// low-rank shapes, through the Kronecker-factored covariance for the others).
StatusOr<std::vector<double>> Spectrum(const match::LayerCandidate& c, const std::vector<float>& w,
                                       const kron::InputStats* stats, const kron::KronShape& shape,
                                       double* norm);

// The largest rank of `shape` that stores fewer parameters than the dense K x N weight.
int64_t MaxProfitableRank(const kron::KronShape& shape, int64_t dense);

// -r: the policy's shape at min(rank, MaxRank); among tied balanced shapes the least error.
StatusOr<Decision> DecideRank(const Directive& dir, const match::LayerCandidate& c,
                              const std::vector<float>& w, const kron::InputStats* stats);

// --max-error: the fewest parameters whose exact error meets the target, over the policy's shapes
// (kron::SearchShape for auto) and every profitable rank.
StatusOr<Decision> DecideMaxError(const Directive& dir, const match::LayerCandidate& c,
                                  const std::vector<float>& w, const kron::InputStats* stats);

}  // namespace kfc::pipeline
