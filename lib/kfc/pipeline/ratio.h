// --ratio inside the decide phase, and the compressible-parameter count the report shares with it.
// Internal to pipeline/.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/pipeline/layer_state.h"
#include "kfc/pipeline/size_error_curve.h"
#include "kfc/pipeline/weights.h"

namespace kfc::pipeline {

// Parameters of the compressible weights after compression, each distinct weight counted once:
// its dense copy if a considered layer leaves it dense, plus each distinct set of factors
// (rewrite::FactorIdentity::FactorsKey).
struct CompressibleCount {
  std::map<std::string, int64_t> dense;  // source value -> K*N
  std::set<std::string> dense_kept;
  std::map<std::string, int64_t> factors;  // factors key -> parameters

  // Layer s, left dense or factorized at `shape` and `rank`.
  void AddDense(const LayerState& s);
  void AddFactors(const LayerState& s, const kron::KronShape& shape, int64_t rank);
  double Before() const;
  double After() const;
};

// --ratio: the layers the ratio decides are grouped by weight, each group's options come from its
// spectra, and Allocate spreads what the budget leaves after the other (pinned) layers. Returns
// why the target cannot be met ("" when it can). With `curve` (HTML reports), also the
// allocation's options for the size-error curve, its fixed_params less the allocated parameters.
StatusOr<std::string> AllocateRatio(const Options& o, const Weights& weights,
                                    std::vector<LayerState>* states, CurveInput* curve = nullptr);

}  // namespace kfc::pipeline
