// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/decide_layer.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kfc/core/logging.h"

namespace kfc::pipeline {
namespace {

Decision FromSearch(kron::ShapeSearchResult search) {
  Decision d;
  d.compress = true;
  d.shape = search.shape;
  d.rank = search.rank;
  d.compared = 0;
  for (const auto& cand : search.candidates) d.compared += cand.rank > 0;
  d.search = std::move(search);
  return d;
}

const char kNoShape[] = "no non-trivial Kronecker shape divides the weight";

}  // namespace

Directive Resolve(const Options& o, const match::LayerCandidate& c) {
  Directive d;
  const PlanEntry* entry = nullptr;
  if (o.plan) {
    d.plan_entry = o.plan->MatchLayer(c);
    if (d.plan_entry >= 0) entry = &o.plan->entries()[static_cast<size_t>(d.plan_entry)];
  }
  if (entry != nullptr && entry->SetsBudget()) {
    d.decided_by = "plan";
    d.budget = entry->skip ? Budget::kSkip : entry->rank > 0 ? Budget::kRank : Budget::kMaxError;
    d.rank = entry->rank;
    d.max_error = entry->max_error;
  } else if (o.rank > 0) {
    d.decided_by = "rank";
    d.budget = Budget::kRank;
    d.rank = o.rank;
  } else if (o.max_error >= 0) {
    d.decided_by = "max_error";
    d.budget = Budget::kMaxError;
    d.max_error = o.max_error;
  } else if (o.ratio > 0) {
    d.decided_by = "ratio";
    d.budget = Budget::kRatio;
  } else {
    d.decided_by = "plan";  // a plan with no mode: layers it does not name stay dense
  }
  ShapePolicy fallback;
  if (d.budget != Budget::kRank) fallback.kind = ShapePolicy::Kind::kAuto;
  d.shape_given = (entry != nullptr && entry->shape) || o.shape.has_value();
  d.shape = entry != nullptr && entry->shape ? *entry->shape : o.shape.value_or(fallback);
  return d;
}

// The shapes a (non-auto) policy allows for the layer: balanced gives the shapes tied for fewest
// parameters per term (only the squarest above kTieSearchMaxElements), a fixed shape that does
// not divide the layer falls back to balanced (*fell_back set). Empty when no non-trivial shape
// exists.
std::vector<kron::KronShape> PolicyShapesQuiet(const ShapePolicy& p, const match::LayerCandidate& c,
                                               bool* fell_back) {
  *fell_back = false;
  const std::vector<kron::KronShape> all = kron::EnumerateShapes(c.k, c.n);
  auto allowed = [&](const kron::KronShape& s) {
    return std::find(all.begin(), all.end(), s) != all.end();
  };
  switch (p.kind) {
    case ShapePolicy::Kind::kAuto:
      return all;
    case ShapePolicy::Kind::kLowRank: {
      const kron::KronShape s = kron::LowRankShape(c.k, c.n);
      if (allowed(s)) return {s};
      return {};
    }
    case ShapePolicy::Kind::kFixed: {
      if (c.k % p.k1 == 0 && c.n % p.n1 == 0) {
        const kron::KronShape s{p.k1, p.n1, c.k / p.k1, c.n / p.n1};
        if (allowed(s)) return {s};
      }
      *fell_back = true;
      break;
    }
    case ShapePolicy::Kind::kBalanced:
      break;
  }
  std::vector<kron::KronShape> tied = kron::TiedDefaultShapes(c.k, c.n);
  if (tied.size() > 1 && c.k * c.n > kTieSearchMaxElements) tied.resize(1);
  return tied;
}

// PolicyShapesQuiet, with a warning when a fixed shape falls back to balanced.
std::vector<kron::KronShape> PolicyShapes(const ShapePolicy& p, const match::LayerCandidate& c) {
  bool fell_back = false;
  std::vector<kron::KronShape> shapes = PolicyShapesQuiet(p, c, &fell_back);
  if (fell_back) {
    Logger().warn(
        "layer '{}': --shape {} {} {}x{}; using the balanced shape", c.node_name, p.Name(),
        c.k % p.k1 == 0 && c.n % p.n1 == 0 ? "is trivial for" : "does not divide", c.k, c.n);
  }
  return shapes;
}

StatusOr<std::vector<double>> Spectrum(const match::LayerCandidate& c, const std::vector<float>& w,
                                       const kron::InputStats* stats, const kron::KronShape& shape,
                                       double* norm) {
  if (stats == nullptr) return kron::SingularValues(w.data(), c.k, c.n, shape, norm);
  KFC_ASSIGN_OR_RETURN(kron::Whitened white, kron::Whiten(w.data(), c.k, c.n, shape, *stats));
  double whitened_norm = 0.0;
  KFC_ASSIGN_OR_RETURN(std::vector<double> s,
                       kron::SingularValues(white.w.data(), c.k, c.n, shape, &whitened_norm));
  // Scaled so that sqrt(tail energy) / norm bounds the data-weighted error from above: exact for
  // the low-rank shapes, through beta for the Kronecker-factored metric of the others.
  for (double& v : s) v *= std::sqrt(white.beta);
  *norm = std::sqrt(white.energy);
  return s;
}

// The largest rank of `shape` that stores fewer parameters than the dense K x N weight.
int64_t MaxProfitableRank(const kron::KronShape& shape, int64_t dense) {
  return std::min(shape.MaxRank(), (dense - 1) / shape.ParamsPerTerm());
}

// Options::node_cost_macs where one run at batch 1 is one row: X 2-D and the weight second. Over
// a sequence ([batch, seq, K]) or the columns of W·X, a run has rows the model does not fix, over
// which the nodes' cost spreads: MACs alone judge there.
int64_t NodeCost(const Options& o, const match::LayerCandidate& c) {
  return c.input_rank == 2 && !c.weight_first ? o.node_cost_macs : 0;
}

// No MACs limit: asked for, or compressing regardless of profit (skip_unprofitable false).
bool Unguarded(const Options& o) { return o.allow_slower || !o.skip_unprofitable; }

// The MACs per row a compressed layer may cost: the dense layer's K*N (-1: no limit).
int64_t MacsLimit(const Options& o, const match::LayerCandidate& c) {
  return Unguarded(o) ? -1 : c.k * c.n;
}

// The largest rank of `shape` that saves parameters and is not slower than dense (unless allowed).
int64_t MaxUsefulRank(const Options& o, const kron::KronShape& shape,
                      const match::LayerCandidate& c) {
  return std::min(MaxProfitableRank(shape, c.k * c.n),
                  kron::MaxRankWithinMacs(shape, MacsLimit(o, c), NodeCost(o, c)));
}

// A layer at rank `rank` of `shape` costs more MACs per row than dense (and that is not allowed).
bool TooSlow(const Options& o, const match::LayerCandidate& c, const kron::KronShape& shape,
             int64_t rank) {
  return !Unguarded(o) &&
         rank * kron::MacsPerTerm(shape) + kron::ExtraNodes(shape) * NodeCost(o, c) > c.k * c.n;
}

std::string SlowerDetail(const Options& o, const match::LayerCandidate& c,
                         const kron::KronShape& shape, int64_t rank) {
  const int64_t fast = kron::MaxRankWithinMacs(shape, c.k * c.n, NodeCost(o, c));
  const int64_t nodes = kron::ExtraNodes(shape);
  return "rank " + std::to_string(rank) + " of " + ShapeText(shape) + " costs " +
         std::to_string(rank * kron::MacsPerTerm(shape)) + " MACs per row" +
         (NodeCost(o, c) > 0
              ? " + " + std::to_string(nodes) + " more node" + (nodes > 1 ? "s" : "") + " (" +
                    std::to_string(nodes * NodeCost(o, c)) + " MACs at batch 1)"
              : "") +
         ", dense " + std::to_string(c.k * c.n) +
         (fast >= 1 ? " (rank <= " + std::to_string(fast) + " would not be slower)"
                    : " (even one term is slower)");
}

namespace {

// -r --shape auto with calibration: every shape at the largest rank the budget allows, rated by its
// whitened spectrum (SearchShape's pruning works on one matrix; each shape whitens differently).
StatusOr<Decision> DecideAutoRankCalibrated(int64_t max_params, int64_t max_macs, int64_t node_cost,
                                            const match::LayerCandidate& c,
                                            const std::vector<float>& w,
                                            const kron::InputStats& stats) {
  Decision best;
  double best_error = 2.0;
  best.compared = 0;
  for (const auto& shape : kron::EnumerateShapes(c.k, c.n)) {
    const int64_t rank = std::min(max_params / shape.ParamsPerTerm(),
                                  kron::MaxRankWithinMacs(shape, max_macs, node_cost));
    if (rank < 1) continue;
    ++best.compared;
    double norm = 0.0;
    KFC_ASSIGN_OR_RETURN(std::vector<double> s, Spectrum(c, w, &stats, shape, &norm));
    const double error = kron::SpectrumError(s, rank, norm);
    if (error < best_error * (1.0 - 1e-9) - 1e-15) {
      best_error = error;
      best.compress = true;
      best.shape = shape;
      best.rank = rank;
    }
  }
  if (!best.compress) {
    return SkipDecision("no_factor_shape",
                        "no shape fits a budget of " + std::to_string(max_params) + " parameters");
  }
  return best;
}

// -r with --shape auto: the budget is what the balanced shape (fewest parameters per term,
// squarest) uses at the requested rank, so auto never makes a layer bigger than balanced would.
StatusOr<Decision> DecideAutoRank(const Options& o, int64_t rank, const match::LayerCandidate& c,
                                  const std::vector<float>& w, const kron::InputStats* stats) {
  auto balanced = kron::DefaultShape(c.k, c.n);
  if (!balanced.ok()) return SkipDecision("no_factor_shape", kNoShape);
  kron::SearchBudget budget;
  budget.max_params = std::min(rank, balanced->MaxRank()) * balanced->ParamsPerTerm();
  budget.max_macs = MacsLimit(o, c);
  budget.node_cost = NodeCost(o, c);
  StatusOr<Decision> d = Decision{};
  if (stats != nullptr) {
    d = DecideAutoRankCalibrated(budget.max_params, budget.max_macs, budget.node_cost, c, w,
                                 *stats);
  } else {
    KFC_ASSIGN_OR_RETURN(kron::ShapeSearchResult search,
                         kron::SearchShape(w.data(), c.k, c.n, budget));
    d = search.found ? FromSearch(std::move(search))
                     : SkipDecision("no_factor_shape", "no shape fits a budget of " +
                                                           std::to_string(budget.max_params) +
                                                           " parameters");
  }
  if (d.ok() && !d->compress) {
    // Some shape fits the parameters, none the MACs.
    for (const auto& shape : kron::EnumerateShapes(c.k, c.n)) {
      if (budget.max_params / shape.ParamsPerTerm() >= 1) {
        return SkipDecision("slower_than_dense", "no shape within a budget of " +
                                                     std::to_string(budget.max_params) +
                                                     " parameters costs at most the dense " +
                                                     std::to_string(c.k * c.n) + " MACs per row");
      }
    }
  }
  return d;
}

// -r with the default policy whose shapes are all slower than dense at the rank asked for: the
// low-rank shape at the parameters that rank of `first` would take, when that is not slower.
Decision SlowerRankFallback(const Options& o, const Directive& dir, const match::LayerCandidate& c,
                            const kron::KronShape& first, int64_t asked) {
  const std::string slower = SlowerDetail(o, c, first, asked);
  const kron::KronShape low = kron::LowRankShape(c.k, c.n);
  const int64_t rank =
      std::min(asked * first.ParamsPerTerm() / low.ParamsPerTerm(), MaxUsefulRank(o, low, c));
  if (dir.shape_given || first == low) return SkipDecision("slower_than_dense", slower);
  if (rank < 1 || TooSlow(o, c, low, rank)) {
    return SkipDecision(
        "slower_than_dense",
        slower + "; low rank too: " + SlowerDetail(o, c, low, std::max<int64_t>(rank, 1)));
  }
  Decision d;
  d.compress = true;
  d.shape = low;
  d.rank = rank;
  d.note = "low rank instead of " + dir.shape.Name() + ": " + slower;
  Logger().info("layer '{}': {}", c.node_name, d.note);
  return d;
}

}  // namespace

// -r: the policy's shape at min(rank, MaxRank); among tied balanced shapes the least error.
StatusOr<Decision> DecideRank(const Options& o, const Directive& dir,
                              const match::LayerCandidate& c, const std::vector<float>& w,
                              const kron::InputStats* stats) {
  if (dir.shape.kind == ShapePolicy::Kind::kAuto) return DecideAutoRank(o, dir.rank, c, w, stats);
  std::vector<kron::KronShape> shapes = PolicyShapes(dir.shape, c);
  if (shapes.empty()) return SkipDecision("no_factor_shape", kNoShape);
  // Never slower than dense: the policy's shapes that are not, at the rank asked for (a rank that
  // saves no parameters is skipped as unprofitable later, the more basic reason).
  const int64_t asked = std::min(dir.rank, shapes.front().MaxRank());
  const kron::KronShape first = shapes.front();
  if (asked * first.ParamsPerTerm() < c.k * c.n) {
    shapes.erase(std::remove_if(shapes.begin(), shapes.end(),
                                [&](const kron::KronShape& s) { return TooSlow(o, c, s, asked); }),
                 shapes.end());
  }
  if (shapes.empty()) return SlowerRankFallback(o, dir, c, first, asked);
  Decision best;
  best.compress = true;
  best.shape = shapes.front();
  // Tied shapes share MaxRank(), so the rank does not depend on which one wins.
  best.rank = std::min(dir.rank, shapes.front().MaxRank());
  best.compared = static_cast<int64_t>(shapes.size());
  if (shapes.size() == 1) return best;
  double best_error = 2.0;
  for (const auto& shape : shapes) {
    double norm = 0.0;
    KFC_ASSIGN_OR_RETURN(std::vector<double> s, Spectrum(c, w, stats, shape, &norm));
    const double error = kron::SpectrumError(s, best.rank, norm);
    Logger().trace("layer '{}': shape {} error {:.6f} at rank {}", c.node_name, ShapeText(shape),
                   error, best.rank);
    // Shapes whose errors agree to rounding (e.g. K x 1 (x) 1 x N and 1 x N (x) K x 1, whose
    // rearrangements are transposes) must not be told apart by BLAS threading noise: only a
    // clearly smaller error displaces the earlier (squarer) shape.
    if (error < best_error * (1.0 - 1e-9) - 1e-15) {
      best_error = error;
      best.shape = shape;
    }
  }
  return best;
}

// --max-error: the fewest parameters whose exact error meets the target, over the policy's shapes
// (kron::SearchShape for auto) and every profitable rank.
StatusOr<Decision> DecideMaxError(const Options& o, const Directive& dir,
                                  const match::LayerCandidate& c, const std::vector<float>& w,
                                  const kron::InputStats* stats) {
  const int64_t dense = c.k * c.n;
  const std::string unmet = "no shape reaches relative error <= " + Num(dir.max_error) +
                            " with fewer than " + std::to_string(dense) + " parameters";
  const std::string slower = "every shape that reaches relative error <= " + Num(dir.max_error) +
                             " with fewer than " + std::to_string(dense) +
                             " parameters costs more than the dense " + std::to_string(dense) +
                             " MACs per row";
  const bool by_macs = o.objective == Objective::kMacs;
  if (dir.shape.kind == ShapePolicy::Kind::kAuto && stats == nullptr) {
    kron::SearchBudget budget;
    budget.max_error = dir.max_error;
    budget.max_macs = MacsLimit(o, c);
    budget.node_cost = NodeCost(o, c);
    budget.objective = by_macs ? kron::SearchObjective::kMacs : kron::SearchObjective::kParams;
    KFC_ASSIGN_OR_RETURN(kron::ShapeSearchResult search,
                         kron::SearchShape(w.data(), c.k, c.n, budget));
    if (!search.found) {
      for (const auto& cand : search.candidates) {
        if (cand.meets_target_above_max_macs) return SkipDecision("slower_than_dense", slower);
      }
      return SkipDecision("error_target_unmet", unmet);
    }
    return FromSearch(std::move(search));
  }
  const std::vector<kron::KronShape> shapes = PolicyShapes(dir.shape, c);
  if (shapes.empty()) return SkipDecision("no_factor_shape", kNoShape);
  Decision best;
  best.compared = static_cast<int64_t>(shapes.size());
  double best_error = 2.0, closest = 2.0;
  bool met_too_slow = false;
  for (const auto& shape : shapes) {
    double norm = 0.0;
    KFC_ASSIGN_OR_RETURN(std::vector<double> s, Spectrum(c, w, stats, shape, &norm));
    for (int64_t r = 1; r <= MaxProfitableRank(shape, dense); ++r) {
      const double error = kron::SpectrumError(s, r, norm);
      if (TooSlow(o, c, shape, r)) {
        met_too_slow = met_too_slow || error <= dir.max_error;
        if (error <= dir.max_error) break;
        continue;
      }
      closest = std::min(closest, error);
      if (error > dir.max_error) continue;
      const int64_t params = r * shape.ParamsPerTerm();
      const int64_t best_params = best.rank * best.shape.ParamsPerTerm();
      const int64_t macs = r * kron::MacsPerTerm(shape);
      const int64_t best_macs = best.rank * kron::MacsPerTerm(best.shape);
      const bool tie = by_macs ? macs == best_macs && params == best_params : params == best_params;
      const bool fewer = by_macs ? macs < best_macs || (macs == best_macs && params < best_params)
                                 : params < best_params;
      if (!best.compress || fewer || (tie && error < best_error * (1.0 - 1e-9) - 1e-15)) {
        best.compress = true;
        best.shape = shape;
        best.rank = r;
        best_error = error;
      }
      break;
    }
  }
  if (!best.compress && met_too_slow) return SkipDecision("slower_than_dense", slower);
  if (!best.compress) {
    return SkipDecision(
        "error_target_unmet",
        unmet + (closest <= 1.0 ? " (least error with a saving: " + Num(closest) + ")" : ""));
  }
  return best;
}

}  // namespace kfc::pipeline
