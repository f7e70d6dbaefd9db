// SPDX-License-Identifier: Apache-2.0
// --allocation objectives (pipeline/ratio.h AllocationGroups, allocate.h AllocateUniform) on small
// synthetic curves: each objective's costs are what it says, the allocator then favors the layer
// the objective says, and every budget is respected.
#include <gtest/gtest.h>

#include <cmath>

#include "kfc/pipeline/allocate.h"
#include "kfc/pipeline/ratio.h"

namespace kfc::pipeline {
namespace {

// A unit of `dense` parameters whose options are 10%..90% of them, with squared relative errors
// (1 - f)^2 (the same convex curve for every size), then the dense weight.
RatioUnit Unit(int64_t dense, size_t layer) {
  RatioUnit u;
  u.dense = dense;
  u.layers = {layer};
  for (int t = 1; t <= 9; ++t) {
    const double f = t / 10.0;
    const double e2 = (1 - f) * (1 - f);
    u.choices.push_back({kron::KronShape{1, 1, 1, 1}, t});
    u.e2.push_back(e2);
    u.group.options.push_back({dense * t / 10, static_cast<double>(dense) * e2});
  }
  u.e2.push_back(0.0);
  u.group.options.push_back({dense, 0.0});
  u.built = true;
  return u;
}

struct Fixture {
  match::LayerCandidate big, small;
  std::vector<LayerState> states{2};
  std::vector<RatioUnit> units;
  Fixture() {
    big.node_name = "big";
    small.node_name = "small";
    states[0].c = &big;
    states[1].c = &small;
    units = {Unit(1000, 0), Unit(100, 1)};
  }
  // The fraction of its dense parameters each unit gets under `o` within `budget`.
  std::pair<double, double> Fractions(const Options& o, int64_t budget, Allocation* out = nullptr) {
    auto groups = AllocationGroups(o, units, states);
    EXPECT_TRUE(groups.ok()) << groups.status().message();
    Allocation a = o.allocation == AllocationObjective::kUniform
                       ? AllocateUniform(*groups, {1000, 100}, budget)
                       : Allocate(*groups, budget);
    EXPECT_TRUE(a.met);
    EXPECT_LE(a.params, budget);
    if (out != nullptr) *out = a;
    return {units[0].group.options[a.choice[0]].params / 1000.0,
            units[1].group.options[a.choice[1]].params / 100.0};
  }
};

Options With(AllocationObjective a) {
  Options o;
  o.ratio = 0.5;
  o.allocation = a;
  return o;
}

TEST(AllocationObjectiveTest, CostsAreWhatEachObjectiveSays) {
  Fixture f;
  f.units[1].layers = {1};
  Options o = With(AllocationObjective::kSizeWeighted);
  auto g = AllocationGroups(o, f.units, f.states);
  ASSERT_TRUE(g.ok());
  EXPECT_DOUBLE_EQ((*g)[0].options[0].cost, 1000 * 0.81);  // unchanged: K*N * e^2
  EXPECT_DOUBLE_EQ((*g)[1].options[0].cost, 100 * 0.81);
  o.allocation = AllocationObjective::kPerLayer;
  g = AllocationGroups(o, f.units, f.states);
  ASSERT_TRUE(g.ok());
  EXPECT_DOUBLE_EQ((*g)[0].options[0].cost, 0.81);
  EXPECT_DOUBLE_EQ((*g)[1].options[0].cost, 0.81);
  EXPECT_DOUBLE_EQ((*g)[1].options.back().cost, 0.0);
  o.allocation = AllocationObjective::kSensitivity;
  o.layer_sensitivity = {{"big", 2.0}, {"small", 30.0}};
  g = AllocationGroups(o, f.units, f.states);
  ASSERT_TRUE(g.ok());
  EXPECT_DOUBLE_EQ((*g)[0].options[1].cost, 2.0 * 0.64);
  EXPECT_DOUBLE_EQ((*g)[1].options[1].cost, 30.0 * 0.64);
}

TEST(AllocationObjectiveTest, SensitivityOfLayersSharingAWeightAdds) {
  Fixture f;
  f.units.resize(1);
  f.units[0].layers = {0, 1};  // both layers use the big weight
  Options o = With(AllocationObjective::kSensitivity);
  o.layer_sensitivity = {{"big", 2.0}, {"small", 3.0}};
  auto g = AllocationGroups(o, f.units, f.states);
  ASSERT_TRUE(g.ok());
  EXPECT_DOUBLE_EQ((*g)[0].options[0].cost, 5.0 * 0.81);
}

TEST(AllocationObjectiveTest, MissingSensitivityIsAnErrorNamingTheLayer) {
  Fixture f;
  Options o = With(AllocationObjective::kSensitivity);
  o.layer_sensitivity = {{"big", 1.0}};
  auto g = AllocationGroups(o, f.units, f.states);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("layer 'small'"), std::string::npos);
}

TEST(AllocationObjectiveTest, EachObjectiveFavorsTheLayerItSays) {
  Fixture f;
  const int64_t budget = 550;  // half of the 1100 parameters
  // Size-weighted: the big layer's error weighs 10x, and a parameter buys 10x less of it: with
  // the same error curve, both keep the same fraction.
  auto [big_sw, small_sw] = f.Fractions(With(AllocationObjective::kSizeWeighted), budget);
  EXPECT_DOUBLE_EQ(big_sw, 0.5);
  EXPECT_DOUBLE_EQ(small_sw, 0.5);
  // Per-layer: each layer's relative error alike; a parameter buys 10x more of the small
  // layer's error, so the small layer keeps the larger fraction.
  auto [big_pl, small_pl] = f.Fractions(With(AllocationObjective::kPerLayer), budget);
  EXPECT_LT(big_pl, small_pl);
  // Uniform: the same fraction everywhere, here and where size-weighted would differ (below).
  auto [big_u, small_u] = f.Fractions(With(AllocationObjective::kUniform), budget);
  EXPECT_DOUBLE_EQ(big_u, 0.5);
  EXPECT_DOUBLE_EQ(small_u, 0.5);
  for (size_t k = 0; k + 1 < f.units[1].e2.size(); ++k) {
    f.units[1].e2[k] *= f.units[1].e2[k];  // the small layer's error now falls faster
    f.units[1].group.options[k].cost = 100 * f.units[1].e2[k];
  }
  // At 640 parameters: size-weighted moves parameters to the big layer (0.6 and 0.4: cost
  // 160 + 13 against 250 + 6 at 0.5 each); uniform stays at the common fraction that fits.
  auto [big_sw2, small_sw2] = f.Fractions(With(AllocationObjective::kSizeWeighted), 640);
  EXPECT_DOUBLE_EQ(big_sw2, 0.6);
  EXPECT_DOUBLE_EQ(small_sw2, 0.4);
  auto [big_u2, small_u2] = f.Fractions(With(AllocationObjective::kUniform), 640);
  EXPECT_DOUBLE_EQ(big_u2, 0.5);
  EXPECT_DOUBLE_EQ(small_u2, 0.5);
  f.units[1] = Unit(100, 1);
  // Sensitivity: proportional to K*N it is the size-weighted allocation; a small layer that
  // matters 100x more to the outputs gets more than under size-weighted.
  Options s = With(AllocationObjective::kSensitivity);
  s.layer_sensitivity = {{"big", 1000.0}, {"small", 100.0}};
  auto [big_s1, small_s1] = f.Fractions(s, budget);
  EXPECT_DOUBLE_EQ(big_s1, big_sw);
  EXPECT_DOUBLE_EQ(small_s1, small_sw);
  s.layer_sensitivity = {{"big", 1.0}, {"small", 100.0}};
  auto [big_s2, small_s2] = f.Fractions(s, budget);
  EXPECT_GT(small_s2, small_sw);
  EXPECT_GT(small_s2, big_s2);
}

TEST(AllocationObjectiveTest, EveryObjectiveRespectsEveryBudget) {
  for (auto a : {AllocationObjective::kSizeWeighted, AllocationObjective::kPerLayer,
                 AllocationObjective::kUniform, AllocationObjective::kSensitivity}) {
    for (int64_t budget = 110; budget <= 1100; budget += 37) {
      Fixture f;
      Options o = With(a);
      o.layer_sensitivity = {{"big", 3.0}, {"small", 7.0}};
      Allocation out;
      f.Fractions(o, budget, &out);
      EXPECT_LE(out.params, budget) << AllocationName(a) << " budget " << budget;
    }
  }
}

TEST(AllocateTest, ADenseFormThatDoesNotFitDoesNotStopTheLayer) {
  // Two layers of 4096 parameters, ranks of 128 parameters, a flat spectrum (e^2 = 1 - r/64):
  // on each hull, rank 1 goes straight to the dense form (cost 0 at 4096), which never fits a
  // budget of 4096. The layer whose error costs 1e10 times more must still get every rank left.
  std::vector<AllocGroup> groups(2);
  for (int g = 0; g < 2; ++g) {
    const double weight = g == 0 ? 1.0 : 1e-10;
    for (int r = 1; r <= 31; ++r) groups[g].options.push_back({128 * r, weight * (1 - r / 64.0)});
    groups[g].options.push_back({4096, 0.0});
  }
  const Allocation a = Allocate(groups, 4096);
  ASSERT_TRUE(a.met);
  EXPECT_EQ(groups[0].options[a.choice[0]].params, 3968);  // rank 31
  EXPECT_EQ(groups[1].options[a.choice[1]].params, 128);   // rank 1
}

TEST(AllocateUniformTest, CheapestOptionsWhenNothingFitsAndTheirTotalAboveBudget) {
  std::vector<AllocGroup> groups(2);
  groups[0].options = {{50, 1.0}, {100, 0.0}};
  groups[1].options = {{30, 2.0}, {60, 0.0}};
  Allocation a = AllocateUniform(groups, {100, 60}, 70);
  EXPECT_FALSE(a.met);
  EXPECT_EQ(a.params, 80);
  a = AllocateUniform(groups, {100, 60}, 80);
  EXPECT_TRUE(a.met);
  EXPECT_EQ(a.choice, (std::vector<size_t>{0, 0}));
  a = AllocateUniform(groups, {100, 60}, 160);
  EXPECT_TRUE(a.met);
  EXPECT_EQ(a.params, 160);
  EXPECT_DOUBLE_EQ(a.cost, 0.0);
}

TEST(AllocateUniformTest, PicksTheLeastCostOptionUnderTheCap) {
  std::vector<AllocGroup> groups(1);
  // Two shapes interleaved: at most 50 parameters, the option of 40 costs least.
  groups[0].options = {{20, 5.0}, {30, 4.0}, {40, 1.0}, {45, 2.0}, {60, 0.5}, {100, 0.0}};
  Allocation a = AllocateUniform(groups, {100}, 50);
  EXPECT_TRUE(a.met);
  EXPECT_EQ(a.choice[0], 2u);
}

}  // namespace
}  // namespace kfc::pipeline
