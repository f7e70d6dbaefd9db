// Rewrite tests for layers inside If branches and Loop bodies: rewritten in place, factors placed
// where the weight was, names unique across scopes, outer weights shared or left alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "kfc/graph/walk.h"
#include "kfc/io/model_io.h"
#include "kfc/kron/factorize.h"
#include "kfc/match/match.h"
#include "kfc/pipeline/compress.h"
#include "kfc/tensor/tensor.h"
#include "onnx/defs/data_type_utils.h"
#include "onnx/shape_inference/implementation.h"
#include "tests/support/rewrite_helpers.h"
#include "tests/support/test_util.h"

namespace kfc {
namespace {

using testing::AddRandomInitializer;
using testing::Compress;
using testing::HasInitializer;
using testing::MatMulModel;
using testing::OpCounts;
using testing::ParseModelText;

// Every initializer name in every graph, and every node name, must stay unique across scopes.
void ExpectUniqueNames(const onnx::ModelProto& model) {
  std::multiset<std::string> inits, nodes;
  graph::ForEachGraph(model.graph(), [&](const onnx::GraphProto& g) {
    for (const auto& t : g.initializer()) inits.insert(t.name());
    for (const auto& n : g.node()) {
      if (!n.name().empty()) nodes.insert(n.name());
    }
  });
  for (const auto& n : inits) EXPECT_EQ(inits.count(n), 1u) << "initializer " << n;
  for (const auto& n : nodes) EXPECT_EQ(nodes.count(n), 1u) << "node " << n;
}

TEST(SubgraphTest, GemmInEachIfBranchIsRewrittenInPlace) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (bool cond, float[N, 64] x) => (float[N, 96] y) {
  y = If(cond) <
    then_branch = g1 () => (float[N, 96] a) {
      a = Gemm<transB = 1>(x, Wt, C)
    },
    else_branch = g2 () => (float[N, 96] b) {
      r = Relu(x)
      b = Gemm(r, We)
    }
  >
})");
  auto* if_node = model.mutable_graph()->mutable_node(0);
  if_node->set_name("branch");
  onnx::ModelProto holder;  // AddRandomInitializer works on a model's main graph
  AddRandomInitializer(&holder, "Wt", {96, 64}, 1);
  AddRandomInitializer(&holder, "C", {96}, 2);
  AddRandomInitializer(&holder, "We", {64, 96}, 3);
  auto* then_g = if_node->mutable_attribute(0)->mutable_g();
  auto* else_g = if_node->mutable_attribute(1)->mutable_g();
  *then_g->add_initializer() = holder.graph().initializer(0);
  *then_g->add_initializer() = holder.graph().initializer(1);
  *else_g->add_initializer() = holder.graph().initializer(2);
  then_g->mutable_node(0)->set_name("fc");  // the same node name in both branches
  else_g->mutable_node(1)->set_name("fc");
  ASSERT_TRUE(pipeline::CheckModel(model, "in").ok());

  auto result = Compress(model, 2);
  ASSERT_EQ(result.report.layers_size(), 2);
  for (const auto& l : result.report.layers()) {
    EXPECT_TRUE(l.compressed()) << l.graph() << ": " << l.skip_reason() << " " << l.skip_detail();
  }
  EXPECT_EQ(result.report.layers(0).graph(), "main/branch/then_branch");
  EXPECT_EQ(result.report.layers(1).graph(), "main/branch/else_branch");
  const Status check = pipeline::CheckModel(result.model, "out");
  EXPECT_TRUE(check.ok()) << check.message();
  const auto& out_if = result.model.graph().node(0);
  for (const auto& attr : out_if.attribute()) {
    auto ops = OpCounts(attr.g());
    EXPECT_EQ(ops["Gemm"], 0) << attr.name();
    EXPECT_EQ(ops["MatMul"], 2) << attr.name();
    // The factors live in the branch that held the weight; the dense weight is gone.
    EXPECT_FALSE(HasInitializer(attr.g(), "Wt"));
    EXPECT_FALSE(HasInitializer(attr.g(), "We"));
    EXPECT_GE(attr.g().initializer_size(), 5) << attr.name();
  }
  EXPECT_EQ(result.model.graph().initializer_size(), 0);
  ExpectUniqueNames(result.model);
}

TEST(SubgraphTest, LoopBodyOnAnOuterInitializerGetsFactorsInTheMainGraph) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (int64 trip, bool cond, float[N, 64] x) => (float[N, 64] y) {
  y = Loop(trip, cond, x) <
    body = loop_body (int64 i, bool c_in, float[N, 64] h) => (bool c_out, float[N, 64] h_out) {
      c_out = Identity(c_in)
      m = MatMul(h, W)
      h_out = Relu(m)
    }
  >
})");
  AddRandomInitializer(&model, "W", {64, 64}, 4);
  model.mutable_graph()
      ->mutable_node(0)
      ->mutable_attribute(0)
      ->mutable_g()
      ->mutable_node(1)
      ->set_name("step");
  ASSERT_TRUE(pipeline::CheckModel(model, "in").ok());
  auto result = Compress(model, 2);
  ASSERT_EQ(result.report.layers_size(), 1);
  const auto& l = result.report.layers(0);
  ASSERT_TRUE(l.compressed()) << l.skip_reason() << " " << l.skip_detail();
  EXPECT_EQ(l.graph(), "main/#0/body");
  const Status check = pipeline::CheckModel(result.model, "out");
  EXPECT_TRUE(check.ok()) << check.message();
  EXPECT_FALSE(HasInitializer(result.model.graph(), "W"));
  EXPECT_TRUE(HasInitializer(result.model.graph(), "step.kfc_a"));
  const auto& body = result.model.graph().node(0).attribute(0).g();
  EXPECT_EQ(body.initializer_size(), 0);
  EXPECT_EQ(body.input_size(), 3) << "Loop binds body inputs by position";
  EXPECT_EQ(OpCounts(body)["MatMul"], 2);
  EXPECT_EQ(OpCounts(body)["Reshape"], 3);
}

TEST(SubgraphTest, OuterWeightSharedByTwoBranchesIsFactorizedOnce) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (bool cond, float[N, 64] x) => (float[N, 64] y) {
  y = If(cond) <
    then_branch = g1 () => (float[N, 64] a) { a = MatMul(x, W) },
    else_branch = g2 () => (float[N, 64] b) { r = Relu(x)  b = MatMul(r, W) }
  >
})");
  AddRandomInitializer(&model, "W", {64, 64}, 5);
  auto result = Compress(model, 2);
  ASSERT_EQ(result.report.totals().layers_compressed(), 2);
  EXPECT_EQ(result.report.layers(1).params_after(), 0) << "shares the first branch's factors";
  EXPECT_FALSE(HasInitializer(result.model.graph(), "W"));
  int factors = 0;
  for (const auto& t : result.model.graph().initializer()) factors += t.data_type() == 1;
  EXPECT_EQ(factors, 2);
  EXPECT_TRUE(pipeline::CheckModel(result.model, "out").ok());
}

TEST(SubgraphTest, OuterWeightAlsoReadDenseInTheMainGraphStays) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (bool cond, float[N, 64] x) => (float[N, 64] y, float[64, 64] w_out) {
  w_out = Relu(W)
  y = If(cond) <
    then_branch = g1 () => (float[N, 64] a) { a = MatMul(x, W) },
    else_branch = g2 () => (float[N, 64] b) { b = Relu(x) }
  >
})");
  AddRandomInitializer(&model, "W", {64, 64}, 5);
  auto result = Compress(model, 2);
  EXPECT_EQ(result.report.layers(0).skip_reason(), "weight_shared");
}

TEST(SubgraphTest, WeightFromAnOuterNodeIsSkippedWithTheOp) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (bool cond, float[N, 64] x) => (float[N, 64] y) {
  w = Identity(W)
  y = If(cond) <
    then_branch = g1 () => (float[N, 64] a) { a = MatMul(x, w) },
    else_branch = g2 () => (float[N, 64] b) { b = Relu(x) }
  >
})");
  AddRandomInitializer(&model, "W", {64, 64}, 5);
  auto result = Compress(model, 2);
  EXPECT_EQ(result.report.layers(0).skip_reason(), "weight_outer_node");
  EXPECT_NE(result.report.layers(0).skip_detail().find("Identity"), std::string::npos);
}

}  // namespace
}  // namespace kfc
