// SPDX-License-Identifier: Apache-2.0
// --ratio inside the read, check and decide phase, and the compressible-parameter count the report
// shares with it. Internal to pipeline/.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/pipeline/allocate.h"
#include "kfc/pipeline/layer_state.h"
#include "kfc/pipeline/size_error_curve.h"

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

// The source values of the compressible weights: those of the considered layers, less the
// weights whose every considered layer is dense_only (LayerState).
std::set<std::string> CompressibleSources(const std::vector<LayerState>& states);

// One --ratio allocation unit: the layers sharing one weight in one orientation (WeightKey),
// decided together; each option is a (shape, rank) or, last, the dense weight.
struct RatioUnit {
  std::vector<size_t> layers;  // indices into the pipeline's layer list, in layer order
  int64_t dense = 0;           // K * N
  bool slower = false;         // some rank saved parameters but was slower than dense
  std::vector<std::pair<kron::KronShape, int64_t>> choices;  // parallel to group.options[:-1]
  // The options' squared relative errors, parallel to group.options (the dense one: 0); the
  // group's costs are K*N times these (--allocation size-weighted).
  std::vector<double> e2;
  AllocGroup group;
  bool built = false;  // BuildRatioOptions ran
};

// The units of the considered layers the ratio decides (directives resolved), in layer order.
std::vector<RatioUnit> RatioUnits(const std::vector<LayerState>& states);

// BuildRatioOptions' results kept across runs in one process whose options differ only in
// --allocation and lambda (auto's candidates, pipeline/auto_select.h): the options depend on the
// layer, its weight, the calibration and lambda, not on the allocation. Thread-safe.
class RatioOptionsCache {
 public:
  // The key of `layer`'s options under `o`.
  static std::string Key(const Options& o, const LayerState& layer);
  // Copies the cached options into `unit` (its layers untouched); false when absent.
  bool Find(const std::string& key, RatioUnit* unit) const;
  void Put(const std::string& key, const RatioUnit& unit);

 private:
  mutable std::mutex mu_;
  std::map<std::string, RatioUnit> units_;
};

// Unit options from the exact spectra of the policy's shapes of its first layer, whose weight is w:
// every profitable rank that is not slower than dense (unless allowed), then the dense weight.
Status BuildRatioOptions(const Options& o, const LayerState& layer, const std::vector<float>& w,
                         RatioUnit* unit);

// "size-weighted", "per-layer", "uniform", "sensitivity" (--allocation's values).
const char* AllocationName(AllocationObjective a);

// The units' groups with the costs o.allocation minimizes (Options::Allocation; for kUniform,
// the size-weighted costs rank each unit's options). kSensitivity: InvalidArgument naming a
// layer without a measured sensitivity.
StatusOr<std::vector<AllocGroup>> AllocationGroups(const Options& o,
                                                   const std::vector<RatioUnit>& units,
                                                   const std::vector<LayerState>& states);

// --ratio: Allocate (AllocateUniform for --allocation uniform) spreads over `units` (each built,
// its layers considered) what the budget leaves after the other (pinned) layers, minimizing
// o.allocation's cost. A unit with no option besides dense is not compressible: its layers are
// marked dense_only and skipped, outside the budget. Returns why the target cannot be met ("" when
// it can).
// With `curve` (HTML reports), also the allocation's options for the size-error curve, its
// fixed_params less the allocated parameters.
StatusOr<std::string> AllocateRatio(const Options& o, const std::vector<RatioUnit>& units,
                                    std::vector<LayerState>* states, CurveInput* curve = nullptr);

}  // namespace kfc::pipeline
