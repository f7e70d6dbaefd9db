// Unit tests for kfc/graph: walk order and scopes, graph-at-scope, scope keys, name reservation
// and use counts, on a model with an If (one branch holding a Loop) and a GRAPHS attribute.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kfc/graph/names.h"
#include "kfc/graph/scope.h"
#include "kfc/graph/uses.h"
#include "kfc/graph/walk.h"
#include "tests/support/test_util.h"

namespace kfc::graph {
namespace {

// main: If (then: g_then holding a Loop with body g_body; else: g_else), then a node "multi" with
// a GRAPHS attribute of two graphs (g_m0, g_m1).
onnx::ModelProto NestedModel() {
  auto model = testing::ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
g_main (bool cond, int64 trip, float[N, 4] x) => (float[N, 4] y) {
  y = If(cond) <
    then_branch = g_then () => (float[N, 4] a) {
      a = Loop(trip, cond, x) <
        body = g_body (int64 i, bool c_in, float[N, 4] h) => (bool c_out, float[N, 4] h_out) {
          c_out = Identity(c_in)
          h_out = Relu(h)
        }
      >
    },
    else_branch = g_else () => (float[N, 4] b) { b = Relu(x) }
  >
})");
  auto* multi = model.mutable_graph()->add_node();
  multi->set_op_type("Custom");
  multi->set_domain("test");
  multi->set_name("multi");
  auto* plain = multi->add_attribute();  // attribute 0 holds no graph
  plain->set_name("n");
  plain->set_type(onnx::AttributeProto::INT);
  plain->set_i(1);
  auto* graphs = multi->add_attribute();
  graphs->set_name("gs");
  graphs->set_type(onnx::AttributeProto::GRAPHS);
  graphs->add_graphs()->set_name("g_m0");
  auto* m1 = graphs->add_graphs();
  m1->set_name("g_m1");
  m1->add_output()->set_name("x");  // a subgraph naming an outer value as its output
  return model;
}

TEST(GraphWalkTest, GraphsBeforeTheirSubgraphsInNodeAttributeAndIndexOrder) {
  const onnx::ModelProto model = NestedModel();
  std::vector<std::string> names;
  ForEachGraph(model.graph(), [&](const onnx::GraphProto& g) { names.push_back(g.name()); });
  EXPECT_EQ(names,
            (std::vector<std::string>{"g_main", "g_then", "g_body", "g_else", "g_m0", "g_m1"}));
}

TEST(GraphWalkTest, ScopesLeadToTheVisitedGraph) {
  const onnx::ModelProto model = NestedModel();
  std::vector<std::string> keys;
  ForEachGraphInScope(
      model.graph(), [&](const std::vector<const onnx::GraphProto*>& graphs, const Scope& scope) {
        ASSERT_EQ(graphs.size(), scope.size() + 1);
        for (size_t d = 0; d <= scope.size(); ++d) {
          EXPECT_EQ(GraphAt(model, scope, d), graphs[d]) << graphs.back()->name() << " depth " << d;
        }
        keys.push_back(ScopeKey(scope, scope.size()));
      });
  EXPECT_EQ(keys, (std::vector<std::string>{"", "0.0.-1/", "0.0.-1/0.0.-1/", "0.1.-1/", "1.1.0/",
                                            "1.1.1/"}));
}

TEST(GraphWalkTest, ForEachSubgraphIsOneLevel) {
  const onnx::ModelProto model = NestedModel();
  std::vector<std::string> seen;
  for (const auto& node : model.graph().node()) {
    ForEachSubgraph(node, [&](const onnx::GraphProto& g, int attribute, int index) {
      seen.push_back(g.name() + "@" + std::to_string(attribute) + "," + std::to_string(index));
    });
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"g_then@0,-1", "g_else@1,-1", "g_m0@1,0", "g_m1@1,1"}));
}

TEST(GraphWalkTest, MutableWalkSeesEditsAndDescendsAfterThem) {
  onnx::ModelProto model = NestedModel();
  std::vector<std::string> visited;
  ForEachMutableGraph(model.mutable_graph(), [&](onnx::GraphProto* g, const Scope& scope) {
    visited.push_back(g->name());
    g->set_name(g->name() + "/" + std::to_string(scope.size()));
  });
  EXPECT_EQ(visited.size(), 6u);
  EXPECT_EQ(model.graph().name(), "g_main/0");
  EXPECT_EQ(GraphAt(model, {{0, 0, -1}, {0, 0, -1}}, 2)->name(), "g_body/2");
  EXPECT_EQ(GraphAt(model, {{1, 1, 1}}, 1)->name(), "g_m1/1");
}

TEST(GraphScopeTest, GraphAtRejectsScopesTheModelDoesNotHave) {
  onnx::ModelProto model = NestedModel();
  EXPECT_EQ(GraphAt(model, {}, 0), &model.graph());
  EXPECT_EQ(GraphAt(model, {}, 1), nullptr) << "depth beyond the scope";
  EXPECT_EQ(GraphAt(model, {{5, 0, -1}}, 1), nullptr) << "no node 5";
  EXPECT_EQ(GraphAt(model, {{0, 7, -1}}, 1), nullptr) << "no attribute 7";
  EXPECT_EQ(GraphAt(model, {{1, 0, -1}}, 1), nullptr) << "attribute 0 holds no graph";
  EXPECT_EQ(GraphAt(model, {{1, 1, 2}}, 1), nullptr) << "GRAPHS has 2 entries";
  EXPECT_EQ(GraphAt(model, {{1, 1, -1}}, 1), nullptr) << "GRAPHS is not a GRAPH";
  const Scope body = {{0, 0, -1}, {0, 0, -1}};
  EXPECT_EQ(GraphAt(model, body, 1)->name(), "g_then");
  const onnx::GraphProto* found = GraphAt(model, body, 2);
  EXPECT_EQ(MutableGraphAt(&model, body, 2), found);
  EXPECT_EQ(ScopeKey(body, 1), "0.0.-1/");
  EXPECT_EQ(ScopeKey(body, 5), "0.0.-1/0.0.-1/");
}

TEST(GraphNamesTest, EveryKindOfNameIsReservedInEveryGraph) {
  onnx::ModelProto model = NestedModel();
  auto* sparse = model.mutable_graph()->add_sparse_initializer();
  sparse->mutable_values()->set_name("sp_values");
  sparse->mutable_indices()->set_name("sp_indices");
  model.mutable_graph()->add_value_info()->set_name("vi");
  model.mutable_graph()->add_initializer()->set_name("init");
  NameGenerator names;
  ReserveNames(model.graph(), &names);
  for (const char* used : {"sp_values", "sp_indices", "vi", "init", "cond", "trip", "x", "y", "a",
                           "b", "c_in", "c_out", "h", "h_out", "multi"}) {
    EXPECT_TRUE(names.IsUsed(used)) << used;
  }
  EXPECT_EQ(names.Unique("vi"), "vi_1");
  EXPECT_FALSE(names.IsUsed("unused"));
}

TEST(GraphUsesTest, NodeInputsAndGraphOutputsOfEveryGraphCount) {
  const UseCounts uses = CountUses(NestedModel().graph());
  EXPECT_EQ(uses.at("y"), 1);      // main output
  EXPECT_EQ(uses.at("cond"), 2);   // If, and the Loop inside the then branch
  EXPECT_EQ(uses.at("x"), 3);      // the Loop, the else branch's Relu, g_m1's output
  EXPECT_EQ(uses.at("h"), 1);      // the body's Relu
  EXPECT_EQ(uses.at("c_out"), 1);  // the body's output
  EXPECT_EQ(uses.count("i"), 0u);  // a body input nothing reads
  EXPECT_EQ(uses.count("h_out"), 1u);
}

}  // namespace
}  // namespace kfc::graph
