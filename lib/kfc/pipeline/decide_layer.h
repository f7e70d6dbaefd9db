// SPDX-License-Identifier: Apache-2.0
// Per-layer decision policies of the decide phase: which budget a layer gets (Resolve), which
// shapes its policy allows, and the shape and rank for -r and --max-error. Internal to pipeline/.
#pragma once

#include <cstdint>
#include <string>
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

// The MACs per row each node a compressed form adds counts as (Options::node_cost_macs): only
// where a run at batch 1 is one row (X 2-D, weight second); 0 elsewhere.
int64_t NodeCost(const Options& o, const match::LayerCandidate& c);

// Never slower than dense (Options::objective): no limit when asked for (allow_slower) or when
// compressing regardless of profit (skip_unprofitable false).
bool Unguarded(const Options& o);
// The MACs per row a compressed layer may cost: the dense layer's K*N (-1: no limit).
int64_t MacsLimit(const Options& o, const match::LayerCandidate& c);
// The largest rank of `shape` that saves parameters and is not slower than dense (unless allowed).
int64_t MaxUsefulRank(const Options& o, const kron::KronShape& shape,
                      const match::LayerCandidate& c);
// Layer c at rank `rank` of `shape` costs more MACs per row than dense (its extra nodes counted at
// Options::node_cost_macs each), and that is not allowed.
bool TooSlow(const Options& o, const match::LayerCandidate& c, const kron::KronShape& shape,
             int64_t rank);
// The skip detail of `slower_than_dense`: both MAC counts, the extra nodes' cost, and the largest
// rank that is not slower.
std::string SlowerDetail(const Options& o, const match::LayerCandidate& c,
                         const kron::KronShape& shape, int64_t rank);

// -r: the policy's shape at min(rank, MaxRank); among tied balanced shapes the least error; a
// shape slower than dense at that rank is not taken. When none is left and the shape policy is the
// default (not --shape or a plan's), the low-rank shape at the same parameter budget if it is not
// slower (Decision::note says so), else `slower_than_dense`.
StatusOr<Decision> DecideRank(const Options& o, const Directive& dir,
                              const match::LayerCandidate& c, const std::vector<float>& w,
                              const kron::InputStats* stats);

// --max-error: the fewest parameters (Objective::kMacs: MACs) whose exact error meets the target,
// over the policy's shapes (kron::SearchShape for auto) and every profitable rank that is not
// slower than dense (`slower_than_dense` when only slower ones meet it).
StatusOr<Decision> DecideMaxError(const Options& o, const Directive& dir,
                                  const match::LayerCandidate& c, const std::vector<float>& w,
                                  const kron::InputStats* stats);

}  // namespace kfc::pipeline
