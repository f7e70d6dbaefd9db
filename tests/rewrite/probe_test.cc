// Rewrite tests for rewrite/probe: layer inputs exposed as main-graph outputs, from the main graph
// and through an If; new names avoid every name of the model, value_info and sparse ones included.
#include "kfc/rewrite/probe.h"

#include <gtest/gtest.h>

#include "kfc/pipeline/compress.h"
#include "tests/support/test_util.h"

namespace kfc::rewrite {
namespace {

using testing::AddRandomInitializer;
using testing::ParseModelText;

TEST(ProbeTest, NewNamesAvoidValueInfoAndSparseInitializerNames) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 64] y) { y = MatMul(x, W) })");
  model.mutable_graph()->mutable_node(0)->set_name("proj");
  AddRandomInitializer(&model, "W", {64, 64}, 1);
  auto* vi = model.mutable_graph()->add_value_info();  // names a value nothing makes
  vi->set_name("kfc_calib_0");
  vi->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  auto* sp = model.mutable_graph()->add_sparse_initializer();
  sp->add_dims(4);
  sp->mutable_values()->set_name("kfc_calib_0/identity");
  sp->mutable_values()->set_data_type(onnx::TensorProto::FLOAT);
  sp->mutable_values()->add_dims(1);
  sp->mutable_values()->add_float_data(1.0f);
  sp->mutable_indices()->set_data_type(onnx::TensorProto::INT64);
  sp->mutable_indices()->add_dims(1);
  sp->mutable_indices()->add_int64_data(0);
  auto exposed = ExposeLayerInputs(&model);
  ASSERT_TRUE(exposed.ok()) << exposed.status().message();
  ASSERT_EQ(exposed->size(), 1u);
  const ExposedInput& e = (*exposed)[0];
  EXPECT_EQ(e.name, "kfc_calib_0_1");
  EXPECT_EQ(e.source, "x");
  EXPECT_EQ(e.k, 64);
  EXPECT_FALSE(e.columns);
  EXPECT_EQ(e.layers, std::vector<std::string>{"proj"});
  const onnx::GraphProto& g = model.graph();
  ASSERT_EQ(g.output_size(), 2);
  EXPECT_EQ(g.output(1).name(), "kfc_calib_0_1");
  ASSERT_EQ(g.node_size(), 2);
  EXPECT_EQ(g.node(1).op_type(), "Identity");
  EXPECT_EQ(g.node(1).name(), "kfc_calib_0_1/identity");
  EXPECT_EQ(g.node(1).input(0), "x");
}

TEST(ProbeTest, InputInAnIfBranchLeavesThroughTheIf) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (bool cond, float[N, 64] x) => (float[N, 64] y) {
  y = If(cond) <
    then_branch = g1 () => (float[N, 64] a) { r = Relu(x)
                                               a = MatMul(r, W) },
    else_branch = g2 () => (float[N, 64] b) { b = Relu(x) }
  >
})");
  model.mutable_graph()->mutable_node(0)->set_name("branch");
  AddRandomInitializer(&model, "W", {64, 64}, 1);
  auto exposed = ExposeLayerInputs(&model);
  ASSERT_TRUE(exposed.ok()) << exposed.status().message();
  ASSERT_EQ(exposed->size(), 1u);
  EXPECT_EQ((*exposed)[0].source, "r");
  const onnx::NodeProto& if_node = model.graph().node(0);
  ASSERT_EQ(if_node.output_size(), 2);
  const onnx::GraphProto& then_g = if_node.attribute(0).g();
  const onnx::GraphProto& else_g = if_node.attribute(1).g();
  ASSERT_EQ(then_g.output_size(), 2);
  ASSERT_EQ(else_g.output_size(), 2);
  EXPECT_EQ(then_g.node(then_g.node_size() - 1).op_type(), "Identity");
  EXPECT_EQ(then_g.node(then_g.node_size() - 1).input(0), "r");
  const onnx::NodeProto& empty = else_g.node(else_g.node_size() - 1);
  EXPECT_EQ(empty.op_type(), "Constant");
  ASSERT_EQ(empty.attribute(0).t().dims_size(), 2);
  EXPECT_EQ(empty.attribute(0).t().dims(0), 0);   // no rows
  EXPECT_EQ(empty.attribute(0).t().dims(1), 64);  // K on the feature axis
  const onnx::GraphProto& g = model.graph();
  ASSERT_EQ(g.output_size(), 2);
  EXPECT_EQ(g.node(g.node_size() - 1).input(0), if_node.output(1));
  const Status check = pipeline::CheckModel(model, "probe");
  EXPECT_TRUE(check.ok()) << check.message();
}

}  // namespace
}  // namespace kfc::rewrite
