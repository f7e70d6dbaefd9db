// SPDX-License-Identifier: Apache-2.0
// Rewrite tests for what real exporters produce: inputs of unknown rank (the run-time Reshape
// targets), opsets 7-22, ops newer than the ONNX library (ReduceMean-18, Gelu-20,
// GroupNormalization-21, DFT-20) and custom-domain nodes, which pass through unchanged and are
// reported as not checked by a schema.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "kfc/check/schemas.h"
#include "kfc/check/structure.h"
#include "kfc/check/validate.h"
#include "kfc/match/match.h"
#include "kfc/pipeline/compress.h"
#include "kfc/report/render.h"
#include "onnx/shape_inference/implementation.h"
#include "tests/support/test_util.h"
#include "tests/support/toy_options.h"

namespace kfc {
namespace {

using testing::AddRandomInitializer;
using testing::ParseModelText;

std::map<std::string, int> OpCounts(const onnx::GraphProto& g) {
  std::map<std::string, int> counts;
  for (const auto& n : g.node()) ++counts[n.op_type()];
  return counts;
}

pipeline::Result Compress(const onnx::ModelProto& model, int64_t rank) {
  pipeline::Options options = kfc::testing::ToyOptions();
  options.rank = rank;
  options.min_params = 0;
  auto result = pipeline::CompressModel(model, options);
  EXPECT_TRUE(result.ok()) << result.status().message();
  return result.ok() ? std::move(result).value() : pipeline::Result{};
}

int IrOf(int opset) {
  return opset <= 8    ? 3
         : opset <= 9  ? 4
         : opset <= 10 ? 5
         : opset <= 11 ? 6
         : opset <= 14 ? 7
         : opset <= 18 ? 8
         : opset <= 20 ? 9
                       : 10;
}

// IR 3 wants every initializer listed as a graph input too.
void InitializersAsInputs(onnx::ModelProto* model) {
  if (model->ir_version() >= 4) return;
  for (const auto& t : model->graph().initializer()) {
    auto* in = model->mutable_graph()->add_input();
    in->set_name(t.name());
    auto* tt = in->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(t.data_type());
    for (int64_t d : t.dims()) tt->mutable_shape()->add_dim()->set_dim_value(d);
  }
}

void AddInt64(onnx::ModelProto* model, const std::string& name, const std::vector<int64_t>& v) {
  auto* t = model->mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(static_cast<int64_t>(v.size()));
  for (int64_t x : v) t->add_int64_data(x);
}

// t = MatMul(x, W) and w = MatMul(V, v), where x and v come from Reshapes whose targets are graph
// inputs of unknown length: their rank is known only at run time. (A main-graph input itself
// must declare a shape.) The outputs are flattened so their rank is known.
onnx::ModelProto UnknownRankModel(int opset) {
  auto model = ParseModelText("<ir_version: " + std::to_string(IrOf(opset)) +
                              ", opset_import: [\"\" : " + std::to_string(opset) + R"(]>
agraph (float[N] xs, int64[R] xshape, float[M] vs, int64[Q] vshape) => (float[P] y, float[S] u) {
  x = Reshape(xs, xshape)
  t = MatMul(x, W)
  y = Reshape(t, flat)
  v = Reshape(vs, vshape)
  w = MatMul(V, v)
  u = Reshape(w, flat)
})");
  model.mutable_graph()->mutable_node(1)->set_name("proj");
  model.mutable_graph()->mutable_node(4)->set_name("left");
  AddRandomInitializer(&model, "W", {64, 96}, 1);
  AddRandomInitializer(&model, "V", {48, 64}, 2);
  AddInt64(&model, "flat", {-1});
  InitializersAsInputs(&model);
  return model;
}

TEST(UnknownRankTest, MatMulOnInputOfUnknownRankTakesLeadingDimsAtRunTime) {
  for (int opset : {7, 9, 10, 11, 13, 15, 17, 18, 20, 21, 22}) {
    const std::string label = "opset " + std::to_string(opset);
    auto model = UnknownRankModel(opset);
    const auto layers = match::FindLayers(model);
    ASSERT_EQ(layers.size(), 2u) << label;
    EXPECT_TRUE(layers[0].eligible()) << label << ": " << layers[0].skip_reason;
    EXPECT_EQ(layers[0].input_rank, 0) << label;
    EXPECT_TRUE(layers[1].eligible()) << label << ": " << layers[1].skip_reason;
    EXPECT_TRUE(layers[1].weight_first) << label;

    auto result = Compress(model, 2);
    ASSERT_EQ(result.report.totals().layers_compressed(), 2) << label;
    const auto& g = result.model.graph();
    auto ops = OpCounts(g);
    EXPECT_EQ(ops["Shape"], 2) << label;
    // Shape takes `end` from opset 15; before, a Slice cuts the trailing dims.
    EXPECT_EQ(ops["Slice"], opset >= 15 ? 0 : 2) << label;
    // X W: only the output target needs the leading dims; W X: all three.
    EXPECT_EQ(ops["Concat"], 4) << label;
    EXPECT_EQ(ops["Reshape"], 4 + 6) << label;
    EXPECT_EQ(ops["MatMul"], 4) << label;
    for (const auto& n : g.node()) {
      if (n.op_type() == "Slice") {
        // Attributes before opset 10, inputs from 10.
        EXPECT_EQ(n.attribute_size(), opset < 10 ? 3 : 0) << label;
        EXPECT_EQ(n.input_size(), opset < 10 ? 1 : 3) << label;
      }
      if (n.op_type() == "Shape") {
        EXPECT_EQ(n.attribute_size(), opset >= 15 ? 1 : 0) << label;
      }
    }
    const Status out = pipeline::CheckModel(result.model, "out");
    EXPECT_TRUE(out.ok()) << label << ": " << out.message();
    EXPECT_EQ(result.model.opset_import(0).version(), opset) << label;
  }
}

TEST(UnknownRankTest, KnownRankKeepsConstantTargets) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[B, T, 64] x) => (float[B, T, 96] y) {
  y = MatMul(x, W)
})");
  AddRandomInitializer(&model, "W", {64, 96}, 1);
  auto result = Compress(model, 2);
  ASSERT_EQ(result.report.totals().layers_compressed(), 1);
  auto ops = OpCounts(result.model.graph());
  EXPECT_EQ(ops.count("Shape"), 0u);
  EXPECT_EQ(ops.count("Concat"), 0u);
  EXPECT_EQ(ops["Reshape"], 3);
}

// paddle2onnx: Reshape(x, Concat(Slice(Shape(x)), [-1])). ONNX 1.12 infers no shape for the
// Reshape; the target's length gives its rank (and data propagation its known dims), so the layer
// gets the constant targets.
TEST(UnknownRankTest, DataPropagationResolvesShapeSliceConcatReshape) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[B, T, 8, 8] x) => (float[B, T, 96] y) {
  s = Shape(x)
  lead = Slice(s, starts, ends)
  target = Concat<axis = 0>(lead, minus_one)
  flat = Reshape(x, target)
  y = MatMul(flat, W)
})");
  AddInt64(&model, "starts", {0});
  AddInt64(&model, "ends", {2});
  AddInt64(&model, "minus_one", {-1});
  AddRandomInitializer(&model, "W", {64, 96}, 1);
  const auto layers = match::FindLayers(model);
  ASSERT_EQ(layers.size(), 1u);
  const auto types = match::InferTypes(model);
  EXPECT_EQ(layers[0].input_rank, 3);
  // The dims data propagation knows come along: B and T from x, the -1 left unknown.
  ASSERT_TRUE(types.count("flat"));
  const auto& dims = types.at("flat").tensor_type().shape();
  ASSERT_EQ(dims.dim_size(), 3);
  EXPECT_EQ(dims.dim(0).dim_param(), "B");
  EXPECT_EQ(dims.dim(1).dim_param(), "T");
  EXPECT_FALSE(dims.dim(2).has_dim_value());
  EXPECT_TRUE(layers[0].eligible()) << layers[0].skip_reason;
}

// A torch-style block at opset 18 and 20: ReduceMean-18 (axes as an input) and Gelu-20, newer than
// ONNX 1.12's schemas, pass through; the layers after them (input rank now unknown) compress.
TEST(NewerOpsTest, ReduceMean18AndGelu20PassThroughAndAreReported) {
  for (int opset : {18, 20, 21, 22}) {
    const std::string label = "opset " + std::to_string(opset);
    const std::string act = opset >= 20 ? "Gelu(c)" : "Relu(c)";
    auto model = ParseModelText("<ir_version: " + std::to_string(IrOf(opset)) +
                                ", opset_import: [\"\" : " + std::to_string(opset) + R"(]>
agraph (float[B, T, 64] x) => (float[B, T, 96] y) {
  m = ReduceMean<keepdims = 1>(x, axes)
  c = Sub(x, m)
  a = )" + act + R"(
  y = MatMul(a, W)
})");
    AddInt64(&model, "axes", {-1});
    AddRandomInitializer(&model, "W", {64, 96}, 1);
    const Status in = pipeline::CheckModel(model, "in");
    ASSERT_TRUE(in.ok()) << label << ": " << in.message();

    auto result = Compress(model, 2);
    ASSERT_EQ(result.report.totals().layers_compressed(), 1) << label;
    auto ops = OpCounts(result.model.graph());
    EXPECT_EQ(ops["ReduceMean"], 1) << label;
    EXPECT_EQ(ops["Gelu"], opset >= 20 ? 1 : 0) << label;
    // The untouched nodes are byte for byte the input's.
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(result.model.graph().node(i).SerializeAsString(),
                model.graph().node(i).SerializeAsString())
          << label;
    }
    const auto& checks = result.report.checks();
    std::set<std::string> ran;
    for (const auto& c : checks.ran()) ran.insert(c.model() + ":" + c.check());
    EXPECT_TRUE(ran.count("output:structure")) << label;
    EXPECT_TRUE(ran.count("output:onnx_checker")) << label;
    EXPECT_TRUE(ran.count("output:emitted_nodes")) << label;
    std::set<std::string> unchecked;
    for (const auto& u : checks.unchecked()) {
      EXPECT_EQ(u.reason(), "op_newer_than_library") << label;
      unchecked.insert(u.op_type());
    }
    EXPECT_TRUE(unchecked.count("ReduceMean")) << label;
    EXPECT_EQ(unchecked.count("Gelu"), opset >= 20 ? 1u : 0u) << label;
    EXPECT_NE(report::RenderText(result.report).find("not checked by a schema"), std::string::npos);
  }
}

TEST(NewerOpsTest, LayerNormGroupNorm21Dft20AndCustomDomainPassThrough) {
  auto model = ParseModelText(
      R"(<ir_version: 10, opset_import: ["" : 21, "com.microsoft" : 1, "com.example" : 3]>
agraph (float[B, 64] x, float[B, 4, 8, 8] img, float[B, 16, 1] sig)
    => (float[B, 96] y, float[B, 4, 8, 8] gn, float[B, 9, 2] dft) {
  ln = LayerNormalization<axis = -1>(x, ln_scale, ln_bias)
  f = com.microsoft.FastGelu(ln)
  z = com.example.Mystery<alpha = 2.0>(f)
  y = MatMul(z, W)
  gn = GroupNormalization<num_groups = 2>(img, gn_scale, gn_bias)
  dft = DFT<onesided = 1>(sig)
})");
  auto add = [&](const std::string& name, int64_t n, float value) {
    auto* t = model.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_dims(n);
    for (int64_t i = 0; i < n; ++i) t->add_float_data(value);
  };
  add("ln_scale", 64, 1.0f);
  add("ln_bias", 64, 0.0f);
  add("gn_scale", 4, 1.0f);
  add("gn_bias", 4, 0.0f);
  AddRandomInitializer(&model, "W", {64, 96}, 1);
  auto result = Compress(model, 2);
  ASSERT_EQ(result.report.totals().layers_compressed(), 1);
  std::map<std::string, std::string> reasons;
  for (const auto& u : result.report.checks().unchecked()) {
    if (u.model() == "output") reasons[u.op_type()] = u.reason();
  }
  EXPECT_EQ(reasons["com.microsoft.FastGelu"], "custom_domain");
  EXPECT_EQ(reasons["com.example.Mystery"], "custom_domain");
  EXPECT_EQ(reasons["GroupNormalization"], "op_newer_than_library");
  EXPECT_EQ(reasons["DFT"], "op_newer_than_library");
  EXPECT_EQ(reasons.count("LayerNormalization"), 0u) << "LayerNormalization-17 is unchanged";
  EXPECT_EQ(reasons.size(), 4u);
  for (const char* op :
       {"LayerNormalization", "FastGelu", "Mystery", "GroupNormalization", "DFT"}) {
    bool found = false;
    for (const auto& n : result.model.graph().node()) found |= n.op_type() == op;
    EXPECT_TRUE(found) << op;
  }
}

TEST(NewerOpsTest, CustomDomainAtOpset17IsCheckedNodeByNode) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 17, "com.microsoft" : 1]>
agraph (float[B, 64] x) => (float[B, 96] y) {
  f = com.microsoft.FastGelu(x)
  y = MatMul(f, W)
})");
  AddRandomInitializer(&model, "W", {64, 96}, 1);
  auto result = Compress(model, 2);
  ASSERT_EQ(result.report.totals().layers_compressed(), 1);
  ASSERT_EQ(result.report.checks().unchecked_size(), 2);  // in the input and in the output
  for (const auto& u : result.report.checks().unchecked()) {
    EXPECT_EQ(u.op_type(), "com.microsoft.FastGelu");
    EXPECT_EQ(u.reason(), "custom_domain");
    EXPECT_EQ(u.nodes_size(), 1);
  }
  EXPECT_EQ(result.report.checks().unchecked(0).model(), "input");
  EXPECT_EQ(result.report.checks().unchecked(1).model(), "output");
}

// Cast-19's `saturate` is unknown to the library's Cast-13 schema: the whole-model checker rejects
// it, node by node it is reported as not checked, and the model compresses.
TEST(NewerOpsTest, AttributeNewerThanTheLibrarySchemaIsNotCheckedNotFatal) {
  auto model = ParseModelText(R"(<ir_version: 9, opset_import: ["" : 19]>
agraph (double[B, 64] x) => (float[B, 96] y) {
  c = Cast<to = 1, saturate = 0>(x)
  y = MatMul(c, W)
})");
  AddRandomInitializer(&model, "W", {64, 96}, 1);
  const Status in = pipeline::CheckModel(model, "in");
  ASSERT_TRUE(in.ok()) << in.message();
  auto result = Compress(model, 2);
  ASSERT_EQ(result.report.totals().layers_compressed(), 1);
  ASSERT_EQ(result.report.checks().unchecked_size(), 2);  // input and output
  EXPECT_EQ(result.report.checks().unchecked(0).op_type(), "Cast");
  EXPECT_EQ(result.report.checks().unchecked(0).reason(), "op_newer_than_library");
  EXPECT_NE(result.report.checks().unchecked(0).detail().find("saturate"), std::string::npos)
      << result.report.checks().unchecked(0).detail();
}

TEST(CheckTest, StructureErrorsNameTheNodeAndValue) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 20]>
agraph (float[4] x) => (float[4] y) {
  a = Gelu(x)
  y = Relu(a)
})");
  ASSERT_TRUE(check::CheckStructure(model, "m").ok());
  // Out of topological order.
  model.mutable_graph()->mutable_node()->SwapElements(0, 1);
  Status s = check::CheckStructure(model, "m");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("reads 'a', which is not defined before it"), std::string::npos)
      << s.message();
  // Through the pipeline's check too, even though Gelu-20 has no library schema.
  s = pipeline::CheckModel(model, "m");
  EXPECT_FALSE(s.ok());
  model.mutable_graph()->mutable_node()->SwapElements(0, 1);
  // A name defined twice.
  model.mutable_graph()->mutable_node(1)->set_output(0, "a");
  s = check::CheckStructure(model, "m");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'a' is defined twice"), std::string::npos) << s.message();
}

TEST(CheckTest, SubgraphsSeeOuterValuesDefinedBeforeTheirNodeOnly) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 20]>
agraph (bool c, float[4] x) => (float[4] y) {
  a = Gelu(x)
  y = If(c) <then_branch = g1 () => (float[4] t) { t = Relu(a) },
              else_branch = g2 () => (float[4] e) { e = Neg(a) }>
})");
  ASSERT_TRUE(check::CheckStructure(model, "m").ok());
  // The branch reads 'b', which its enclosing graph defines only after the If.
  auto* g = model.mutable_graph();
  *g->add_node() = g->node(0);
  g->mutable_node(2)->set_output(0, "b");
  g->mutable_node(1)->mutable_attribute(0)->mutable_g()->mutable_node(0)->set_input(0, "b");
  const Status s = check::CheckStructure(model, "m");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("reads 'b', which is not defined before it"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("main/#1/"), std::string::npos) << s.message();
}

TEST(CheckTest, StandardOpAtAKnownOpsetStillFailsTheChecker) {
  // Gelu does not exist at opset 17: the library is authoritative there.
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 17]>
agraph (float[4] x) => (float[4] y) {
  y = Gelu(x)
})");
  const Status s = pipeline::CheckModel(model, "m");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("fails the ONNX checker"), std::string::npos) << s.message();
}

TEST(CheckTest, SchemaLookUpKnowsWhichOpsChangedAfterTheLibrary) {
  EXPECT_GE(check::LibraryOpset(""), 17);
  EXPECT_EQ(check::LibraryOpset("com.microsoft"), 0);
  EXPECT_NE(check::LookUp("MatMul", "", 21).schema, nullptr);
  EXPECT_NE(check::LookUp("Reshape", "", 21).schema, nullptr);  // types only after 14
  EXPECT_NE(check::LookUp("ReduceMean", "", 17).schema, nullptr);
  if (check::LibraryOpset("") < 18) {
    EXPECT_EQ(check::LookUp("ReduceMean", "", 18).reason, "op_newer_than_library");
    EXPECT_EQ(check::LookUp("Split", "", 18).reason, "op_newer_than_library");
    EXPECT_EQ(check::LookUp("Gelu", "", 20).reason, "op_newer_than_library");
  }
  EXPECT_EQ(check::LookUp("FusedMatMul", "com.microsoft", 1).reason, "custom_domain");
  EXPECT_EQ(check::LookUp("Gelu", "", 17).reason, "unknown_op");
}

TEST(SummaryTest, NothingCompressedCountsSkipReasons) {
  report::Report r;
  r.mutable_totals()->set_layers_found(3);
  r.mutable_totals()->set_layers_compressed(0);
  for (const char* reason : {"weight_not_constant", "below_min_params", "weight_not_constant"}) {
    r.add_layers()->set_skip_reason(reason);
  }
  EXPECT_EQ(report::CompressedSummary(r),
            "0 of 3 layers compressed: 2 weight_not_constant, 1 below_min_params");
  r.mutable_totals()->set_layers_compressed(1);
  EXPECT_EQ(report::CompressedSummary(r), "1 of 3 layers compressed");
}

TEST(TotalsTest, ConstantNodeWeightsCountLikeInitializers) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[B, 64] x) => (float[B, 96] y) {
  w = Constant()
  y = MatMul(x, w)
})");
  auto* attr = model.mutable_graph()->mutable_node(0)->add_attribute();
  attr->set_name("value");
  attr->set_type(onnx::AttributeProto::TENSOR);
  onnx::ModelProto scratch;
  AddRandomInitializer(&scratch, "w", {64, 96}, 3);
  *attr->mutable_t() = scratch.graph().initializer(0);
  auto result = Compress(model, 2);
  ASSERT_EQ(result.report.totals().layers_compressed(), 1);
  EXPECT_EQ(result.report.totals().model_params_before(), 64 * 96);
  EXPECT_LT(result.report.totals().model_params_after(), 64 * 96);
  EXPECT_GT(result.report.totals().model_params_after(), 0);
}

}  // namespace
}  // namespace kfc
