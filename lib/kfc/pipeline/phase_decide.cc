// SPDX-License-Identifier: Apache-2.0
// read, check and decide: each considered layer's directive (its plan entry or the mode) and
// calibration statistics, then, in one parallel task per layer, its weight read once, checked to
// be finite (NaN or Inf: the layer stays dense, `non_finite_weight`) and its shape and rank
// decided from that same read (--ratio: the options of its weight's allocation unit too); --ratio
// then allocates its layers together. The factorization reads the weight a second time, except
// for layers decided from their dims alone (-r with one shape to take): those are not read here,
// and factorize reads and checks them once (LayerState::check_in_factorize).
#include <algorithm>
#include <cmath>
#include <optional>

#include "kfc/core/logging.h"
#include "kfc/kron/factorize.h"
#include "kfc/kron/weighted.h"
#include "kfc/pipeline/decide_layer.h"
#include "kfc/pipeline/phases.h"
#include "kfc/pipeline/ratio.h"

namespace kfc::pipeline {
namespace {

// Layer s's calibration statistics (Calibration::Stats, Kronecker-factored by k1 when K is too
// large): calibrated, or the note saying why not. Returns the warning a fallback to weight-only
// logs ("" for none).
StatusOr<std::string> LoadStats(const Options& o, Calibration* calibration, int64_t k1,
                                LayerState* s) {
  const match::LayerCandidate& c = *s->c;
  std::string note;
  auto stats = calibration->Stats(c, k1, &note, &s->stats_parked);
  if (!stats.ok()) return stats.status().WithContext("layer '" + c.node_name + "'");
  s->stats = std::move(*stats);
  if (s->stats && o.calibration_regularization) s->stats->lambda = *o.calibration_regularization;
  s->calibrated = s->stats.has_value();
  if (!s->stats) {
    s->calibration_note = "weight-only: " + note;
    return "layer '" + c.node_name + "': calibration falls back to weight-only: " + note;
  }
  if (!note.empty()) s->calibration_note = note;
  return std::string();
}

// What one layer's task and the statistics before it found, each kept until all layers are done so
// that errors are reported for the first failing layer in graph order, in the order of the steps.
struct LayerOutcome {
  Status stats;               // loading its calibration statistics
  std::string stats_warning;  // its fallback to weight-only
  Status read;                // reading its weight
  std::string not_finite;     // where its weight holds NaN or Inf
  Status decided;             // deciding it
  Status ratio;               // building its --ratio unit's options
};

// Layer s's decision from its weight w; --ratio layers are decided by AllocateRatio.
StatusOr<Decision> DecideLayer(const Options& o, const LayerState& s, const std::vector<float>& w) {
  const match::LayerCandidate& c = *s.c;
  switch (s.dir.budget) {
    case Budget::kSkip:
      return s.dir.plan_entry >= 0
                 ? SkipDecision("plan_skip",
                                "plan entry " + std::to_string(s.dir.plan_entry + 1) + " skips it")
                 : SkipDecision("not_in_plan", "no plan entry matches and no mode was given");
    case Budget::kRank:
      return DecideRank(o, s.dir, c, w, StatsOf(s));
    case Budget::kMaxError:
      return DecideMaxError(o, s.dir, c, w, StatsOf(s));
    case Budget::kRatio:
      break;  // AllocateRatio, for all such layers at once
  }
  return Decision{};
}

// Whether layer s's decision needs no weight: -r with one shape to take (fixed, low-rank, or
// balanced without ties: DecideRank then reads dims only). Not for weights factorized in double
// (checked as float32 here, read as float64 there), nor when statistics are loaded after the
// decision (K above kMaxCalibratedK with calibration).
bool DecidedByDims(const LayerState& s, bool calibrating) {
  const match::LayerCandidate& c = *s.c;
  if (s.dir.budget != Budget::kRank || s.dir.shape.kind == ShapePolicy::Kind::kAuto) return false;
  if (c.dtype == onnx::TensorProto::DOUBLE && !s.stats) return false;
  if (calibrating && c.k > kMaxCalibratedK) return false;
  bool fell_back = false;
  return PolicyShapesQuiet(s.dir.shape, c, &fell_back).size() <= 1;
}

// One layer's task: read, check, decide, and when s is the first layer of a --ratio unit, build
// the unit's options; the weight is read once for all of them. A layer decided by its dims that
// will be factorized is not read: factorize reads and checks it (its only read).
void ReadCheckAndDecide(const Options& o, const Weights& weights, bool calibrating, LayerState* s,
                        RatioUnit* unit, LayerOutcome* r) {
  const match::LayerCandidate& c = *s->c;
  const std::string layer = "layer '" + c.node_name + "'";
  std::optional<Decision> by_dims;
  if (unit == nullptr && r->stats.ok() && DecidedByDims(*s, calibrating)) {
    StatusOr<Decision> d = DecideLayer(o, *s, {});
    if (d.ok()) {
      // Exactly the layers factorize makes a job for; the others are read and checked here, so
      // that a NaN or Inf gives them `non_finite_weight` as before.
      if (d->compress && Profitable(o, c, *d) && !TooSlow(o, c, d->shape, d->rank)) {
        s->dec = std::move(*d);
        s->check_in_factorize = true;
        return;
      }
      by_dims = std::move(*d);
    }
  }
  StatusOr<std::vector<float>> w = weights.Matrix(c);
  if (!w.ok()) {
    r->read = w.status().WithContext(layer);
    return;
  }
  const StatusOr<double> finite = kron::CheckedFrobeniusNorm(w->data(), c.k, c.n);
  if (!finite.ok()) {
    r->not_finite = finite.status().message();
    return;
  }
  if (!r->stats.ok()) return;
  // The statistics' arrays, parked since they were computed, in memory for this task only.
  StatsInUse stats(s->stats_parked, s->stats && !by_dims ? &*s->stats : nullptr);
  if (Status loaded = stats.Load(); !loaded.ok()) {
    r->decided = loaded.WithContext(layer);
    return;
  }
  StatusOr<Decision> d = by_dims ? std::move(*by_dims) : DecideLayer(o, *s, *w);
  if (!d.ok()) {
    r->decided = d.status().WithContext(layer);
    return;
  }
  s->dec = std::move(*d);
  if (unit != nullptr) r->ratio = BuildRatioOptions(o, *s, *w, unit).WithContext(layer);
}

// The units without their non-finite layers, the empty ones dropped, in the order of their first
// layers; a unit whose first layer was not finite is built from its new first layer (only when
// layers with one WeightKey differ in finiteness, which equal weights cannot).
Status KeepFiniteUnits(const Options& o, const Weights& weights,
                       const std::vector<LayerState>& states, std::vector<RatioUnit>* units) {
  std::vector<RatioUnit> kept;
  for (RatioUnit& unit : *units) {
    std::vector<size_t> layers;
    for (size_t i : unit.layers) {
      if (states[i].considered) layers.push_back(i);
    }
    if (layers.empty()) continue;
    if (layers.front() != unit.layers.front()) {
      RatioUnit rebuilt;
      LayerState s = states[layers.front()];
      StatsInUse stats(s.stats_parked, s.stats ? &*s.stats : nullptr);
      Status built = stats.Load();
      auto w = weights.Matrix(*s.c);
      if (built.ok()) built = w.ok() ? BuildRatioOptions(o, s, *w, &rebuilt) : w.status();
      KFC_RETURN_IF_ERROR(built.WithContext("layer '" + s.c->node_name + "'"));
      unit = std::move(rebuilt);
    }
    unit.layers = std::move(layers);
    kept.push_back(std::move(unit));
  }
  std::stable_sort(kept.begin(), kept.end(), [](const RatioUnit& a, const RatioUnit& b) {
    return a.layers.front() < b.layers.front();
  });
  *units = std::move(kept);
  return Status::Ok();
}

}  // namespace

StatusOr<DecideOutcome> ReadAndDecide(const Options& o, const Weights& weights,
                                      Calibration* calibration, std::vector<LayerState>* states) {
  DecideOutcome out;
  const std::vector<size_t> order = ConsideredLayers(*states);
  // alpha scales every factor: NaN or Inf would give non-finite factors (issue 18).
  for (size_t i : order) {
    const match::LayerCandidate& c = *(*states)[i].c;
    if (!std::isfinite(c.alpha)) {
      return InvalidArgument("layer '" + c.node_name + "': Gemm alpha is " +
                             (std::isnan(c.alpha) ? "NaN"
                              : c.alpha > 0       ? "Inf"
                                                  : "-Inf") +
                             "; the layer's output would not be finite");
    }
  }
  std::vector<LayerOutcome> outcome(states->size());
  for (size_t i : order) {
    LayerState& s = (*states)[i];
    s.dir = Resolve(o, *s.c);
    s.directed = true;
    // Layers too wide for K x K statistics are decided without them, then get
    // Kronecker-factored statistics for the decided shape (below).
    if (calibration != nullptr && s.c->k <= kMaxCalibratedK) {
      StatusOr<std::string> warning = LoadStats(o, calibration, 0, &s);
      if (warning.ok()) {
        outcome[i].stats_warning = std::move(*warning);
      } else {
        outcome[i].stats = warning.status();
      }
    }
  }
  std::vector<RatioUnit> units;
  if (o.ratio > 0) units = RatioUnits(*states);
  std::vector<RatioUnit*> unit_at(states->size(), nullptr);  // by a unit's first layer
  for (RatioUnit& unit : units) unit_at[unit.layers.front()] = &unit;

  ProgressMeter deciding(o, "deciding", CandidatesAt(*states, order));
  KFC_RETURN_IF_ERROR(RunParallel(o, order.size(), [&](size_t j) -> Status {
    const size_t i = order[j];
    ReadCheckAndDecide(o, weights, calibration != nullptr, &(*states)[i], unit_at[i], &outcome[i]);
    // The layer's candidate shapes shared one whitening; a thread holds at most one layer's.
    kron::ReleaseWhiteningCache();
    deciding.Done(j);
    return Status::Ok();
  }));

  out.read = 0;
  for (size_t i : order) out.read += !(*states)[i].check_in_factorize;
  // In the order the steps ran as separate passes: reading; then the statistics and decisions of
  // the finite weights.
  for (size_t i : order) {
    if (!outcome[i].read.ok()) return outcome[i].read;
  }
  for (size_t i : order) {
    if (!outcome[i].not_finite.empty()) {
      (*states)[i].SkipNonFinite(outcome[i].not_finite);
      continue;
    }
    if (!outcome[i].stats.ok()) return outcome[i].stats;
    if (!outcome[i].stats_warning.empty()) Logger().warn("{}", outcome[i].stats_warning);
  }
  for (size_t i : order) {
    if (!outcome[i].decided.ok()) return outcome[i].decided;
  }
  for (size_t i : order) {
    if (!outcome[i].ratio.ok()) return outcome[i].ratio;
  }
  out.layers = static_cast<int64_t>(ConsideredLayers(*states).size());

  if (o.ratio > 0) {
    KFC_RETURN_IF_ERROR(KeepFiniteUnits(o, weights, *states, &units));
    KFC_ASSIGN_OR_RETURN(
        out.ratio_shortfall,
        AllocateRatio(o, units, states, o.record_charts ? &out.ratio_curve : nullptr));
  }
  for (LayerState& s : *states) {
    if (calibration == nullptr || !s.considered || s.c->k <= kMaxCalibratedK || !s.dec.compress) {
      continue;
    }
    const kron::KronShape& shape = s.dec.shape;
    KFC_ASSIGN_OR_RETURN(
        const std::string warning,
        LoadStats(o, calibration, shape.k1 > 1 && shape.k2 > 1 ? shape.k1 : 0, &s));
    if (!warning.empty()) Logger().warn("{}", warning);
  }
  deciding.Finish();
  return out;
}

}  // namespace kfc::pipeline
