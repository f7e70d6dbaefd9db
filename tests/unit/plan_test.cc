// SPDX-License-Identifier: Apache-2.0
// --plan files: text and JSON parse to the same entries, every invalid entry is an error naming
// it, matching is first-wins, and the --shape policy parses and prints back.
#include "kfc/pipeline/plan.h"

#include <gtest/gtest.h>

#include "tests/support/test_util.h"

namespace kfc::pipeline {
namespace {

bool Contains(const std::string& s, const std::string& needle) {
  return s.find(needle) != std::string::npos;
}

TEST(ShapePolicyTest, ParsesAndPrintsBack) {
  for (const std::string text : {"balanced", "lowrank", "auto", "16x32", "784x1"}) {
    auto p = ShapePolicy::Parse(text);
    ASSERT_TRUE(p.ok()) << text << ": " << p.status().message();
    EXPECT_EQ(p->Name(), text);
  }
  EXPECT_EQ(ShapePolicy::Parse("default")->Name(), "balanced");
  EXPECT_EQ(ShapePolicy::Parse("low-rank")->Name(), "lowrank");
  for (const std::string bad :
       {"", "0x3", "3x0", "ax3", "3x", "x3", "auto2", "3x-1", "1234567890x2", " 4x4", "4x4 "}) {
    auto p = ShapePolicy::Parse(bad);
    ASSERT_FALSE(p.ok()) << "'" << bad << "'";
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(p.status().message(), "'" + bad + "'")) << p.status().message();
  }
}

TEST(PlanTest, TextAndJsonGiveTheSameEntries) {
  const std::string text = R"(
# comment lines are fine in text format
layers { name: "fc1" shape: "lowrank" rank: 16 }
layers { regex: "^dec" max_error: 0.05 }
layers { regex: "head" skip: true }
layers { name: "fc9" shape: "auto" }
)";
  const std::string json = R"({"layers": [
    {"name": "fc1", "shape": "lowrank", "rank": 16},
    {"regex": "^dec", "max_error": 0.05},
    {"regex": "head", "skip": true},
    {"name": "fc9", "shape": "auto"}]})";
  for (const auto& [src, is_json] : {std::pair{text, false}, std::pair{json, true}}) {
    auto plan = Plan::Parse(src, is_json, "plan 'p'");
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    const auto& e = plan->entries();
    ASSERT_EQ(e.size(), 4u);
    EXPECT_EQ(e[0].name, "fc1");
    EXPECT_EQ(e[0].rank, 16);
    EXPECT_EQ(e[0].shape->Name(), "lowrank");
    EXPECT_EQ(e[1].regex, "^dec");
    EXPECT_DOUBLE_EQ(e[1].max_error, 0.05);
    EXPECT_FALSE(e[1].shape.has_value());
    EXPECT_TRUE(e[2].skip);
    EXPECT_FALSE(e[3].SetsBudget());
    EXPECT_EQ(e[3].shape->Name(), "auto");
  }
}

TEST(PlanTest, MaxErrorZeroIsATargetNotUnset) {
  auto plan = Plan::Parse("layers { name: \"a\" max_error: 0 }", false, "plan");
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_DOUBLE_EQ(plan->entries()[0].max_error, 0.0);
  EXPECT_TRUE(plan->entries()[0].SetsBudget());
}

TEST(PlanTest, InvalidEntriesAreErrorsNamingTheEntry) {
  const std::pair<std::string, std::string> cases[] = {
      {"layers { name: \"a\" regex: \"b\" rank: 2 }", "entry 1: give exactly one of"},
      {"layers { rank: 2 }", "entry 1: give exactly one of"},
      {"layers { name: \"ok\" rank: 1 } layers { name: \"a\" rank: 2 skip: true }",
       "entry 2: layer 'a': give at most one of"},
      {"layers { name: \"a\" max_error: 1.5 }", "max_error must be in [0, 1]"},
      {"layers { name: \"a\" rank: -3 }", "rank must be at least 1"},
      {"layers { name: \"a\" shape: \"3y4\" rank: 2 }", "got '3y4'"},
      {"layers { name: \"a\" }", "sets none of"},
      {"layers { regex: \"(\" rank: 2 }", "regex '('"},
      {"layers { name: \"a\" bogus: 1 }", "line 1 column"},
      {"plan_schema_version: 2", "newer than this tool's"},
  };
  for (const auto& [text, needle] : cases) {
    auto plan = Plan::Parse(text, false, "plan 'p.txt'");
    ASSERT_FALSE(plan.ok()) << text;
    EXPECT_EQ(plan.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(plan.status().message(), "plan 'p.txt'")) << plan.status().message();
    EXPECT_TRUE(Contains(plan.status().message(), needle)) << plan.status().message();
  }
  auto bad_json = Plan::Parse("{\"layers\": [{\"name\": 3", true, "plan 'p.json'");
  ASSERT_FALSE(bad_json.ok());
  EXPECT_TRUE(Contains(bad_json.status().message(), "not a valid JSON plan"));
}

TEST(PlanTest, FirstMatchingEntryWinsByNodeOrWeightName) {
  auto plan = Plan::Parse(R"(
layers { name: "fc1" rank: 4 }
layers { regex: "fc" rank: 8 }
layers { name: "shared.weight" skip: true }
)",
                          false, "plan");
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->Match("fc1", "w1"), 0);
  EXPECT_EQ(plan->Match("fc2", "w2"), 1);
  EXPECT_EQ(plan->Match("", "fc3.weight"), 1);  // regex searches the weight name too
  EXPECT_EQ(plan->Match("proj", "shared.weight"), 2);
  EXPECT_EQ(plan->Match("proj", "other"), -1);
}

TEST(PlanTest, LoadChoosesTheFormatByExtensionAndNamesMissingFiles) {
  testing::TempDir dir;
  testing::WriteText("{\"layers\": [{\"name\": \"a\", \"rank\": 2}]}", dir.File("p.json"));
  testing::WriteText("layers { name: \"a\" rank: 2 }", dir.File("p.txt"));
  for (const std::string f : {"p.json", "p.txt"}) {
    auto plan = Plan::Load(dir.File(f));
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    EXPECT_EQ(plan->entries().at(0).rank, 2);
  }
  auto missing = Plan::Load(dir.File("nope.txt"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(missing.status().message(), "nope.txt")) << missing.status().message();
  auto folder = Plan::Load(dir.path());
  ASSERT_FALSE(folder.ok());
  EXPECT_TRUE(Contains(folder.status().message(), "is a directory"));
}

TEST(PlanTest, RenderedPlanParsesBackWithTheSameDecisions) {
  report::Report rep;
  rep.set_tool_version("0.1.0");
  rep.set_input("m.onnx");
  auto* a = rep.add_layers();
  a->set_node_name("fc1");
  a->set_weight_name("w1");
  a->set_decided_by("ratio");
  a->set_compressed(true);
  a->set_k1(4);
  a->set_n1(8);
  a->set_k2(16);
  a->set_n2(12);
  a->set_rank(3);
  auto* b = rep.add_layers();
  b->set_weight_name("w2");  // unnamed node: the weight name identifies it
  b->set_decided_by("ratio");
  b->set_skip_reason("kept_dense");
  auto* c = rep.add_layers();
  c->set_node_name("small");
  c->set_skip_reason("below_min_params");  // never considered: not in the plan
  for (bool json : {false, true}) {
    auto text = RenderPlan(rep, json);
    ASSERT_TRUE(text.ok()) << text.status().message();
    auto plan = Plan::Parse(*text, json, "rendered");
    ASSERT_TRUE(plan.ok()) << plan.status().message() << "\n" << *text;
    ASSERT_EQ(plan->entries().size(), 2u) << *text;
    EXPECT_EQ(plan->entries()[0].name, "fc1");
    EXPECT_EQ(plan->entries()[0].rank, 3);
    EXPECT_EQ(plan->entries()[0].shape->Name(), "4x8");
    EXPECT_EQ(plan->entries()[1].name, "w2");
    EXPECT_TRUE(plan->entries()[1].skip);
  }
}

}  // namespace
}  // namespace kfc::pipeline
