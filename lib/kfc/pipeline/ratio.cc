// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/ratio.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include "kfc/core/logging.h"
#include "kfc/pipeline/allocate.h"
#include "kfc/pipeline/decide_layer.h"
#include "kfc/pipeline/phases.h"

namespace kfc::pipeline {

std::string RatioOptionsCache::Key(const Options& o, const LayerState& layer) {
  char lambda[32];
  std::snprintf(lambda, sizeof(lambda), "%.17g",
                o.calibration_regularization.value_or(kron::kCalibrationRegularization));
  return layer.c->graph_path + "|" + layer.c->node_name + "|" + layer.c->weight_name + "|" +
         o.calibration_dir + "|" + lambda;
}

bool RatioOptionsCache::Find(const std::string& key, RatioUnit* unit) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = units_.find(key);
  if (it == units_.end()) return false;
  std::vector<size_t> layers = std::move(unit->layers);
  *unit = it->second;
  unit->layers = std::move(layers);
  return true;
}

void RatioOptionsCache::Put(const std::string& key, const RatioUnit& unit) {
  std::lock_guard<std::mutex> lock(mu_);
  units_[key] = unit;
}

Status BuildRatioOptions(const Options& o, const LayerState& layer, const std::vector<float>& w,
                         RatioUnit* unit) {
  const std::string key = o.ratio_cache != nullptr ? RatioOptionsCache::Key(o, layer) : "";
  if (o.ratio_cache != nullptr && o.ratio_cache->Find(key, unit)) return Status::Ok();
  const match::LayerCandidate& c = *layer.c;
  const ShapePolicy& policy = layer.dir.shape;
  const kron::InputStats* stats = StatsOf(layer);
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
      unit->e2.push_back(RoundSignificant(e2));
      unit->group.options.push_back({r * shape.ParamsPerTerm(), weight * unit->e2.back()});
    }
  }
  unit->e2.push_back(0.0);
  unit->group.options.push_back({unit->dense, 0.0});
  unit->built = true;
  if (o.ratio_cache != nullptr) o.ratio_cache->Put(key, *unit);
  return Status::Ok();
}

std::vector<RatioUnit> RatioUnits(const std::vector<LayerState>& states) {
  std::vector<RatioUnit> units;
  std::map<std::string, size_t> unit_of;
  for (size_t i = 0; i < states.size(); ++i) {
    const LayerState& s = states[i];
    if (!s.considered || s.dir.budget != Budget::kRatio) continue;
    auto [it, fresh] = unit_of.emplace(WeightKey(s), units.size());
    if (fresh) units.emplace_back();
    units[it->second].layers.push_back(i);
  }
  return units;
}

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

const char* AllocationName(AllocationObjective a) {
  switch (a) {
    case AllocationObjective::kSizeWeighted:
      return "size-weighted";
    case AllocationObjective::kPerLayer:
      return "per-layer";
    case AllocationObjective::kUniform:
      return "uniform";
    case AllocationObjective::kSensitivity:
      return "sensitivity";
  }
  return "?";
}

StatusOr<std::vector<AllocGroup>> AllocationGroups(const Options& o,
                                                   const std::vector<RatioUnit>& units,
                                                   const std::vector<LayerState>& states) {
  std::vector<AllocGroup> groups;
  for (const auto& u : units) {
    groups.push_back(u.group);
    double scale = 0;  // the cost per unit of e^2
    switch (o.allocation) {
      case AllocationObjective::kSizeWeighted:
      case AllocationObjective::kUniform:
        continue;
      case AllocationObjective::kPerLayer:
        scale = 1.0;
        break;
      case AllocationObjective::kSensitivity:
        // Layers sharing the weight each add their own effect on the outputs.
        for (size_t i : u.layers) {
          const std::string& name = states[i].c->node_name;
          auto it = o.layer_sensitivity.find(name);
          if (it == o.layer_sensitivity.end()) {
            return InvalidArgument("--allocation sensitivity: layer '" + name +
                                   "' has no measured sensitivity");
          }
          scale += it->second;
        }
        break;
    }
    std::vector<AllocOption>& options = groups.back().options;
    for (size_t k = 0; k < options.size(); ++k) options[k].cost = scale * u.e2[k];
  }
  return groups;
}

namespace {

// The skip of a unit whose only option is its dense weight.
Decision DenseOnlyDecision(const RatioUnit& unit) {
  if (unit.slower) {
    return SkipDecision("slower_than_dense",
                        "every Kronecker shape and rank that saves parameters costs more than "
                        "the dense " +
                            std::to_string(unit.dense) + " MACs per row");
  }
  return SkipDecision("kept_dense", "no Kronecker shape saves parameters");
}

}  // namespace

std::set<std::string> CompressibleSources(const std::vector<LayerState>& states) {
  std::set<std::string> sources;
  for (const LayerState& s : states) {
    if (s.considered && !s.dense_only) sources.insert(s.c->source_value);
  }
  return sources;
}

StatusOr<std::string> AllocateRatio(const Options& o, const std::vector<RatioUnit>& candidates,
                                    std::vector<LayerState>* states, CurveInput* curve) {
  std::vector<RatioUnit> units;  // those with an option besides dense
  for (const RatioUnit& unit : candidates) {
    if (!unit.choices.empty()) {
      units.push_back(unit);
      continue;
    }
    for (size_t i : unit.layers) {
      (*states)[i].dense_only = true;
      (*states)[i].dec = DenseOnlyDecision(unit);
    }
  }
  const std::set<std::string> compressible = CompressibleSources(*states);
  CompressibleCount all, pinned;
  for (size_t i = 0; i < states->size(); ++i) {
    const LayerState& s = (*states)[i];
    if (!s.considered || !compressible.count(s.c->source_value)) continue;
    all.dense[s.c->source_value] = s.c->k * s.c->n;
    if (s.dir.budget != Budget::kRatio) {
      if (s.dec.compress && Profitable(o, *s.c, s.dec) &&
          !TooSlow(o, *s.c, s.dec.shape, s.dec.rank)) {
        pinned.AddFactors(s, s.dec.shape, s.dec.rank);
      } else {
        pinned.AddDense(s);
      }
    }
  }
  if (units.empty()) return std::string();
  const double before = all.Before();
  const int64_t target = static_cast<int64_t>(std::floor(o.ratio * before + 1e-9));
  const int64_t pinned_after = static_cast<int64_t>(pinned.After());
  KFC_ASSIGN_OR_RETURN(const std::vector<AllocGroup> groups, AllocationGroups(o, units, *states));
  Allocation alloc;
  if (o.allocation == AllocationObjective::kUniform) {
    std::vector<int64_t> sizes;
    for (const auto& u : units) sizes.push_back(u.dense);
    alloc = AllocateUniform(groups, sizes, target - pinned_after);
  } else {
    alloc = Allocate(groups, target - pinned_after);
  }
  if (curve != nullptr) {
    // The chart's groups (size-weighted: the curve's error is the size-weighted RMS error,
    // whatever the allocation minimized); the parameters outside them are completed from the
    // report's totals.
    curve->total_weight = before;
    for (size_t u = 0; u < units.size(); ++u) {
      curve->fixed_params -= static_cast<double>(units[u].group.options[alloc.choice[u]].params);
      curve->groups.push_back(units[u].group);
    }
  }
  Logger().info(
      "--ratio {} ({} allocation): {} of {} compressible parameters allocated to {} "
      "weights ({})",
      o.ratio, AllocationName(o.allocation), alloc.params + pinned_after, target, units.size(),
      alloc.met ? "target met" : "target missed");
  for (size_t u = 0; u < units.size(); ++u) {
    const RatioUnit& unit = units[u];
    const size_t pick = alloc.choice[u];
    for (size_t i : unit.layers) {
      Decision& d = (*states)[i].dec;
      if (pick + 1 == unit.group.options.size()) {
        d = SkipDecision("kept_dense", "the --ratio allocation keeps this weight dense");
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
