// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/allocate.h"

#include <algorithm>
#include <cassert>
#include <numeric>
#include <queue>
#include <tuple>

namespace kfc::pipeline {
namespace {

// Option indices by params ascending, keeping only those that cost strictly less than every
// option with fewer (or as many) parameters: the Pareto front.
std::vector<size_t> ParetoFront(const std::vector<AllocOption>& options) {
  std::vector<size_t> order(options.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::tie(options[a].params, options[a].cost) <
           std::tie(options[b].params, options[b].cost);
  });
  std::vector<size_t> front;
  for (size_t i : order) {
    if (front.empty() || options[i].cost < options[front.back()].cost) front.push_back(i);
  }
  return front;
}

// The lower convex hull of a Pareto front (params ascending, cost descending).
std::vector<size_t> LowerHull(const std::vector<AllocOption>& options,
                              const std::vector<size_t>& front) {
  std::vector<size_t> hull;
  for (size_t i : front) {
    while (hull.size() >= 2) {
      const AllocOption& a = options[hull[hull.size() - 2]];
      const AllocOption& b = options[hull.back()];
      const AllocOption& c = options[i];
      // b lies on or above the segment a-c: drop it.
      const double cross = (static_cast<double>(b.params - a.params)) * (c.cost - a.cost) -
                           (static_cast<double>(c.params - a.params)) * (b.cost - a.cost);
      if (cross <= 0) {
        hull.pop_back();
      } else {
        break;
      }
    }
    hull.push_back(i);
  }
  return hull;
}

}  // namespace

std::vector<size_t> LowerConvexHull(const std::vector<AllocOption>& options) {
  return LowerHull(options, ParetoFront(options));
}

Allocation Allocate(const std::vector<AllocGroup>& groups, int64_t budget) {
  const size_t n = groups.size();
  std::vector<std::vector<size_t>> fronts(n), hulls(n);
  std::vector<size_t> hull_pos(n, 0);
  Allocation out;
  out.choice.resize(n);
  for (size_t g = 0; g < n; ++g) {
    assert(!groups[g].options.empty());
    fronts[g] = ParetoFront(groups[g].options);
    hulls[g] = LowerHull(groups[g].options, fronts[g]);
    out.choice[g] = fronts[g].front();
    out.params += groups[g].options[out.choice[g]].params;
  }
  out.met = out.params <= budget;
  if (!out.met) {
    for (size_t g = 0; g < n; ++g) out.cost += groups[g].options[out.choice[g]].cost;
    return out;
  }

  // Step 2: hull steps by cost reduction per parameter, best first.
  using Step = std::tuple<double, int64_t, size_t>;  // (slope, -group, group) for a max-heap
  auto slope_of = [&](size_t g) {
    const AllocOption& a = groups[g].options[hulls[g][hull_pos[g]]];
    const AllocOption& b = groups[g].options[hulls[g][hull_pos[g] + 1]];
    return (a.cost - b.cost) / static_cast<double>(b.params - a.params);
  };
  std::priority_queue<Step> heap;
  for (size_t g = 0; g < n; ++g) {
    if (hulls[g].size() > 1) heap.emplace(slope_of(g), -static_cast<int64_t>(g), g);
  }
  while (!heap.empty()) {
    const size_t g = std::get<2>(heap.top());
    heap.pop();
    const AllocOption& cur = groups[g].options[hulls[g][hull_pos[g]]];
    const AllocOption& next = groups[g].options[hulls[g][hull_pos[g] + 1]];
    if (out.params - cur.params + next.params > budget) {
      // The next hull point does not fit (often the dense form, whose cost 0 hides the ranks
      // below it from the hull): go on along the hull of the options that still fit.
      const int64_t allowed = budget - out.params + cur.params;
      std::vector<size_t> fitting;
      for (size_t i : fronts[g]) {
        const AllocOption& o = groups[g].options[i];
        if (o.params >= cur.params && o.params <= allowed) fitting.push_back(i);
      }
      hulls[g] = LowerHull(groups[g].options, fitting);
      hull_pos[g] = 0;
      if (hulls[g].size() > 1) heap.emplace(slope_of(g), -static_cast<int64_t>(g), g);
      continue;
    }
    out.params += next.params - cur.params;
    ++hull_pos[g];
    out.choice[g] = hulls[g][hull_pos[g]];
    if (hull_pos[g] + 1 < hulls[g].size()) heap.emplace(slope_of(g), -static_cast<int64_t>(g), g);
  }

  // Step 3: spend what is left on the single best fitting improvement, repeatedly.
  for (;;) {
    double best_gain = 0.0;
    size_t best_g = n, best_i = 0;
    for (size_t g = 0; g < n; ++g) {
      const AllocOption& cur = groups[g].options[out.choice[g]];
      for (size_t i : fronts[g]) {
        const AllocOption& o = groups[g].options[i];
        if (o.params <= cur.params || out.params - cur.params + o.params > budget) continue;
        if (cur.cost - o.cost > best_gain) {
          best_gain = cur.cost - o.cost;
          best_g = g;
          best_i = i;
        }
      }
    }
    if (best_g == n) break;
    out.params +=
        groups[best_g].options[best_i].params - groups[best_g].options[out.choice[best_g]].params;
    out.choice[best_g] = best_i;
  }
  for (size_t g = 0; g < n; ++g) out.cost += groups[g].options[out.choice[g]].cost;
  return out;
}

namespace {

// AllocateUniform's choice at fraction f.
Allocation UniformAt(const std::vector<AllocGroup>& groups, const std::vector<int64_t>& sizes,
                     const std::vector<std::vector<size_t>>& fronts, double f) {
  Allocation out;
  out.choice.resize(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::vector<AllocOption>& o = groups[g].options;
    const double cap = f * static_cast<double>(sizes[g]);
    size_t pick = fronts[g].front();
    for (size_t i = 0; i < o.size(); ++i) {
      if (static_cast<double>(o[i].params) > cap) continue;
      const AllocOption& p = o[pick];
      if (static_cast<double>(p.params) > cap || o[i].cost < p.cost ||
          (o[i].cost == p.cost && o[i].params < p.params)) {
        pick = i;
      }
    }
    out.choice[g] = pick;
    out.params += o[pick].params;
    out.cost += o[pick].cost;
  }
  return out;
}

}  // namespace

Allocation AllocateUniform(const std::vector<AllocGroup>& groups, const std::vector<int64_t>& sizes,
                           int64_t budget) {
  assert(groups.size() == sizes.size());
  std::vector<std::vector<size_t>> fronts(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    assert(!groups[g].options.empty() && sizes[g] > 0);
    fronts[g] = ParetoFront(groups[g].options);
  }
  Allocation best = UniformAt(groups, sizes, fronts, 0.0);
  best.met = best.params <= budget;
  if (!best.met) return best;
  Allocation top = UniformAt(groups, sizes, fronts, 1.0);
  if (top.params <= budget) {
    top.met = true;
    return top;
  }
  double lo = 0.0, hi = 1.0;  // lo fits, hi does not
  while (hi - lo > 1e-9) {
    const double mid = 0.5 * (lo + hi);
    Allocation at = UniformAt(groups, sizes, fronts, mid);
    if (at.params <= budget) {
      lo = mid;
      best = std::move(at);
    } else {
      hi = mid;
    }
  }
  best.met = true;
  return best;
}

}  // namespace kfc::pipeline
