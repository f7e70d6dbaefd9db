// SPDX-License-Identifier: Apache-2.0
// pipeline::Allocate: the --ratio budget split. Budget respected, optimal where the greedy is
// provably optimal (unit steps, convex costs), locally optimal elsewhere, deterministic ties.
#include "kfc/pipeline/allocate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

namespace kfc::pipeline {
namespace {

// Exhaustive minimum cost over all choices within the budget (small instances only).
double BruteForce(const std::vector<AllocGroup>& groups, int64_t budget) {
  double best = INFINITY;
  std::function<void(size_t, int64_t, double)> go = [&](size_t g, int64_t params, double cost) {
    if (params > budget) return;
    if (g == groups.size()) {
      best = std::min(best, cost);
      return;
    }
    for (const auto& o : groups[g].options) go(g + 1, params + o.params, cost + o.cost);
  };
  go(0, 0, 0.0);
  return best;
}

// Options at params 1..n with convex decreasing costs (a decaying spectrum's tail energy).
AllocGroup ConvexGroup(std::mt19937* rng, int n) {
  std::uniform_real_distribution<double> u(0.1, 1.0);
  std::vector<double> sigma2(static_cast<size_t>(n));
  for (auto& s : sigma2) s = u(*rng);
  std::sort(sigma2.rbegin(), sigma2.rend());
  AllocGroup g;
  for (int r = 1; r <= n; ++r) {
    double tail = 0;  // summed afresh, so full rank costs exactly 0
    for (int t = r; t < n; ++t) tail += sigma2[static_cast<size_t>(t)];
    g.options.push_back({r, tail});
  }
  return g;
}

TEST(AllocateTest, OptimalOnUnitStepConvexGroups) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 30; ++trial) {
    std::vector<AllocGroup> groups;
    for (int g = 0; g < 3; ++g) groups.push_back(ConvexGroup(&rng, 6));
    const int64_t budget = 3 + trial % 13;
    const Allocation a = Allocate(groups, budget);
    ASSERT_TRUE(a.met);
    EXPECT_LE(a.params, budget);
    EXPECT_NEAR(a.cost, BruteForce(groups, budget), 1e-12) << "trial " << trial;
  }
}

TEST(AllocateTest, RespectsBudgetAndIsLocallyOptimalOnArbitraryOptions) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int64_t> p(1, 50);
  std::uniform_real_distribution<double> c(0.0, 10.0);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<AllocGroup> groups(4);
    for (auto& g : groups) {
      for (int i = 0; i < 5; ++i) g.options.push_back({p(rng), c(rng)});
    }
    int64_t cheapest = 0;
    for (const auto& g : groups) {
      int64_t m = g.options[0].params;
      for (const auto& o : g.options) m = std::min(m, o.params);
      cheapest += m;
    }
    const int64_t budget = cheapest + trial * 3;
    const Allocation a = Allocate(groups, budget);
    ASSERT_TRUE(a.met);
    int64_t params = 0;
    double cost = 0;
    for (size_t g = 0; g < groups.size(); ++g) {
      params += groups[g].options[a.choice[g]].params;
      cost += groups[g].options[a.choice[g]].cost;
    }
    EXPECT_EQ(params, a.params);
    EXPECT_DOUBLE_EQ(cost, a.cost);
    EXPECT_LE(a.params, budget);
    // No single group can switch to a cheaper-cost option that still fits.
    for (size_t g = 0; g < groups.size(); ++g) {
      const AllocOption& cur = groups[g].options[a.choice[g]];
      for (const auto& o : groups[g].options) {
        if (a.params - cur.params + o.params <= budget) {
          EXPECT_GE(o.cost, cur.cost) << "trial " << trial << " group " << g;
        }
      }
    }
  }
}

TEST(AllocateTest, UnreachableBudgetReturnsTheCheapestOptionsAndSaysSo) {
  std::vector<AllocGroup> groups(2);
  groups[0].options = {{100, 0.0}, {10, 5.0}};
  groups[1].options = {{200, 0.0}, {20, 7.0}, {30, 1.0}};
  const Allocation a = Allocate(groups, 25);
  EXPECT_FALSE(a.met);
  EXPECT_EQ(a.choice[0], 1u);
  EXPECT_EQ(a.choice[1], 1u);
  EXPECT_EQ(a.params, 30);
  EXPECT_DOUBLE_EQ(a.cost, 12.0);
}

TEST(AllocateTest, TiesGoToTheLowerGroupAndTheResultIsDeterministic) {
  AllocGroup g;
  g.options = {{1, 4.0}, {2, 1.0}};
  const std::vector<AllocGroup> groups = {g, g, g};
  const Allocation a = Allocate(groups, 4);  // room for exactly one upgrade
  EXPECT_EQ(a.choice, (std::vector<size_t>{1, 0, 0}));
  const Allocation b = Allocate(groups, 4);
  EXPECT_EQ(a.choice, b.choice);
}

TEST(AllocateTest, GenerousBudgetTakesTheLeastCostWithTheFewestParameters) {
  std::mt19937 rng(3);
  std::vector<AllocGroup> groups;
  for (int i = 0; i < 4; ++i) groups.push_back(ConvexGroup(&rng, 8));
  for (auto& g : groups) g.options.push_back({100, 0.0});  // the dense option
  const Allocation a = Allocate(groups, 1000);
  EXPECT_TRUE(a.met);
  EXPECT_DOUBLE_EQ(a.cost, 0.0);
  // Full rank (8 parameters, cost 0) already costs nothing: the dense option is never worth it.
  for (size_t i = 0; i < groups.size(); ++i) EXPECT_EQ(a.choice[i], 7u);
  EXPECT_EQ(a.params, 32);
}

}  // namespace
}  // namespace kfc::pipeline
