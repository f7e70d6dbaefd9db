// decide: each considered layer's directive (its plan entry or the mode), its calibration
// statistics, and its shape and rank, in parallel; --ratio then allocates its layers together.
#include "kfc/core/logging.h"
#include "kfc/pipeline/decide_layer.h"
#include "kfc/pipeline/phases.h"
#include "kfc/pipeline/ratio.h"

namespace kfc::pipeline {
namespace {

// Layer s's calibration statistics (Calibration::Stats, Kronecker-factored by k1 when K is too
// large): calibrated, or the note saying why not.
Status LoadStats(Calibration* calibration, int64_t k1, LayerState* s) {
  const match::LayerCandidate& c = *s->c;
  std::string note;
  auto stats = calibration->Stats(c, k1, &note);
  if (!stats.ok()) return stats.status().WithContext("layer '" + c.node_name + "'");
  s->stats = std::move(*stats);
  s->calibrated = s->stats.has_value();
  if (!s->stats) {
    s->calibration_note = "weight-only: " + note;
    Logger().warn("layer '{}': calibration falls back to weight-only: {}", c.node_name, note);
  } else if (!note.empty()) {
    s->calibration_note = note;
  }
  return Status::Ok();
}

// Whether deciding layer s reads its weight: comparing shapes or ranks does; -r at a policy that
// allows one shape does not (the factorization reads it later).
bool NeedsWeight(const LayerState& s) {
  bool fell_back = false;
  switch (s.dir.budget) {
    case Budget::kRank:
      return s.dir.shape.kind == ShapePolicy::Kind::kAuto ||
             PolicyShapesQuiet(s.dir.shape, *s.c, &fell_back).size() > 1;
    case Budget::kMaxError:
      return true;
    default:
      return false;
  }
}

StatusOr<Decision> DecideLayer(const Options& o, const Weights& weights, const LayerState& s) {
  const match::LayerCandidate& c = *s.c;
  std::vector<float> w;
  if (NeedsWeight(s)) {
    KFC_ASSIGN_OR_RETURN(w, weights.Matrix(c));
  }
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

}  // namespace

StatusOr<DecideOutcome> Decide(const Options& o, const Weights& weights, Calibration* calibration,
                               std::vector<LayerState>* states) {
  DecideOutcome out;
  for (LayerState& s : *states) {
    if (!s.considered) continue;
    s.dir = Resolve(o, *s.c);
    s.directed = true;
    // Layers too wide for K x K statistics are decided without them, then get
    // Kronecker-factored statistics for the decided shape (below).
    if (calibration != nullptr && s.c->k <= kMaxCalibratedK) {
      KFC_RETURN_IF_ERROR(LoadStats(calibration, 0, &s));
    }
  }

  const std::vector<size_t> order = ConsideredLayers(*states);
  out.layers = static_cast<int64_t>(order.size());
  ProgressMeter deciding(o, "deciding", CandidatesAt(*states, order));
  KFC_RETURN_IF_ERROR(RunParallel(o, order.size(), [&](size_t j) -> Status {
    LayerState& s = (*states)[order[j]];
    StatusOr<Decision> d = DecideLayer(o, weights, s);
    if (!d.ok()) return d.status().WithContext("layer '" + s.c->node_name + "'");
    s.dec = std::move(*d);
    deciding.Done(j);
    return Status::Ok();
  }));
  if (o.ratio > 0) {
    KFC_ASSIGN_OR_RETURN(
        out.ratio_shortfall,
        AllocateRatio(o, weights, states, o.record_charts ? &out.ratio_curve : nullptr));
  }
  for (LayerState& s : *states) {
    if (calibration == nullptr || !s.considered || s.c->k <= kMaxCalibratedK || !s.dec.compress) {
      continue;
    }
    const kron::KronShape& shape = s.dec.shape;
    KFC_RETURN_IF_ERROR(LoadStats(calibration, shape.k1 > 1 && shape.k2 > 1 ? shape.k1 : 0, &s));
  }
  deciding.Finish();
  return out;
}

}  // namespace kfc::pipeline
