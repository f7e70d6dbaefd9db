#include "kfc/pipeline/ratio.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "kfc/core/logging.h"
#include "kfc/pipeline/allocate.h"
#include "kfc/pipeline/decide_layer.h"
#include "kfc/pipeline/phases.h"

namespace kfc::pipeline {
namespace {

// One --ratio allocation unit: the layers sharing one weight in one orientation, decided
// together; each option is a (shape, rank) or, last, the dense weight.
struct RatioUnit {
  std::vector<size_t> layers;  // indices into the pipeline's layer list
  int64_t dense = 0;           // K * N
  bool slower = false;         // some rank saved parameters but was slower than dense
  std::vector<std::pair<kron::KronShape, int64_t>> choices;  // parallel to group.options[:-1]
  AllocGroup group;
};

// Options of a unit from the exact spectra of the policy's shapes: every profitable rank that is
// not slower than dense (unless allowed).
Status BuildRatioOptions(const Options& o, const ShapePolicy& policy,
                         const match::LayerCandidate& c, const std::vector<float>& w,
                         const kron::InputStats* stats, RatioUnit* unit) {
  unit->dense = c.k * c.n;
  const double weight = static_cast<double>(unit->dense);
  for (const auto& shape : PolicyShapes(policy, c)) {
    const int64_t r_max = MaxUsefulRank(o, shape, c);
    unit->slower = unit->slower || r_max < MaxProfitableRank(shape, unit->dense);
    if (r_max < 1) continue;
    double norm = 0.0;
    KFC_ASSIGN_OR_RETURN(std::vector<double> s, Spectrum(c, w, stats, shape, &norm));
    // Squared error for every rank at once: the energy left after the first r values.
    double kept = 0.0, total = 0.0;
    for (double v : s) total += v * v;
    const double denominator = norm * norm;
    for (int64_t r = 1; r <= r_max; ++r) {
      const double sv = r - 1 < static_cast<int64_t>(s.size()) ? s[static_cast<size_t>(r - 1)] : 0;
      kept += sv * sv;
      const double e2 = denominator > 0 ? std::max(0.0, total - kept) / denominator : 0.0;
      unit->choices.push_back({shape, r});
      unit->group.options.push_back({r * shape.ParamsPerTerm(), weight * RoundSignificant(e2)});
    }
  }
  unit->group.options.push_back({unit->dense, 0.0});
  return Status::Ok();
}

}  // namespace

void CompressibleCount::AddDense(const LayerState& s) {
  dense[s.c->source_value] = s.c->k * s.c->n;
  dense_kept.insert(s.c->source_value);
}

void CompressibleCount::AddFactors(const LayerState& s, const kron::KronShape& shape,
                                   int64_t rank) {
  dense[s.c->source_value] = s.c->k * s.c->n;
  factors[IdentityOf(s, shape, rank).FactorsKey()] = rank * shape.ParamsPerTerm();
}

double CompressibleCount::Before() const {
  double sum = 0;
  for (const auto& [name, n] : dense) sum += static_cast<double>(n);
  return sum;
}

double CompressibleCount::After() const {
  double sum = 0;
  for (const auto& name : dense_kept) sum += static_cast<double>(dense.at(name));
  for (const auto& [key, p] : factors) sum += static_cast<double>(p);
  return sum;
}

StatusOr<std::string> AllocateRatio(const Options& o, const Weights& weights,
                                    std::vector<LayerState>* states, CurveInput* curve) {
  std::vector<RatioUnit> units;
  std::map<std::string, size_t> unit_of;
  CompressibleCount all, pinned;
  for (size_t i = 0; i < states->size(); ++i) {
    const LayerState& s = (*states)[i];
    if (!s.considered) continue;
    all.dense[s.c->source_value] = s.c->k * s.c->n;
    if (s.dir.budget != Budget::kRatio) {
      if (s.dec.compress && Profitable(o, *s.c, s.dec) &&
          !TooSlow(o, *s.c, s.dec.shape, s.dec.rank)) {
        pinned.AddFactors(s, s.dec.shape, s.dec.rank);
      } else {
        pinned.AddDense(s);
      }
      continue;
    }
    auto [it, fresh] = unit_of.emplace(WeightKey(s), units.size());
    if (fresh) units.emplace_back();
    units[it->second].layers.push_back(i);
  }
  if (units.empty()) return std::string();
  KFC_RETURN_IF_ERROR(RunParallel(o, units.size(), [&](size_t u) -> Status {
    const LayerState& s = (*states)[units[u].layers.front()];
    auto w = weights.Matrix(*s.c);
    Status built =
        w.ok() ? BuildRatioOptions(o, s.dir.shape, *s.c, *w, StatsOf(s), &units[u]) : w.status();
    return built.WithContext("layer '" + s.c->node_name + "'");
  }));
  const double before = all.Before();
  const int64_t target = static_cast<int64_t>(std::floor(o.ratio * before + 1e-9));
  const int64_t pinned_after = static_cast<int64_t>(pinned.After());
  std::vector<AllocGroup> groups;
  for (const auto& u : units) groups.push_back(u.group);
  const Allocation alloc = Allocate(groups, target - pinned_after);
  if (curve != nullptr) {
    // The chart's groups; the parameters outside them are completed from the report's totals.
    curve->total_weight = before;
    for (size_t u = 0; u < units.size(); ++u) {
      curve->fixed_params -= static_cast<double>(units[u].group.options[alloc.choice[u]].params);
    }
    curve->groups = groups;
  }
  Logger().info("--ratio {}: {} of {} compressible parameters allocated to {} weights ({})",
                o.ratio, alloc.params + pinned_after, target, units.size(),
                alloc.met ? "target met" : "target missed");
  for (size_t u = 0; u < units.size(); ++u) {
    const RatioUnit& unit = units[u];
    const size_t pick = alloc.choice[u];
    for (size_t i : unit.layers) {
      Decision& d = (*states)[i].dec;
      if (pick + 1 == unit.group.options.size()) {
        if (unit.choices.empty() && unit.slower) {
          d = SkipDecision("slower_than_dense",
                           "every Kronecker shape and rank that saves parameters costs more "
                           "than the dense " +
                               std::to_string(unit.dense) + " MACs per row");
          continue;
        }
        d = SkipDecision("kept_dense", unit.choices.empty()
                                           ? "no Kronecker shape saves parameters"
                                           : "the --ratio allocation keeps this weight dense");
        continue;
      }
      d.compress = true;
      d.shape = unit.choices[pick].first;
      d.rank = unit.choices[pick].second;
      d.compared =
          static_cast<int64_t>(PolicyShapes((*states)[i].dir.shape, *(*states)[i].c).size());
    }
  }
  if (alloc.met) return std::string();
  return "even the cheapest option of every layer needs " +
         std::to_string(alloc.params + pinned_after) + " parameters";
}

}  // namespace kfc::pipeline
