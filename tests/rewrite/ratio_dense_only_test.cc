// SPDX-License-Identifier: Apache-2.0
// --ratio with a layer whose only option is dense (every shape that saves parameters is slower
// than dense at the default node cost): that weight is not compressible, so the budget goes to the
// other layers alone and the run equals the one with that layer excluded.
#include <gtest/gtest.h>

#include <string>

#include "kfc/pipeline/compress.h"
#include "tests/support/test_util.h"

namespace kfc {
namespace {

// x[B,16,48] -> 48x96 -> 96x48, and z[B,48] -> 48x128 (the shapes of
// testdata/exporters/tf2onnx_opset15.onnx): at node cost 8192 the 2-D-input layer (6144 parameters,
// 6144 MACs per row at batch 1) has no form that is not slower than dense; the first two, whose
// node cost is spread over 16 rows, do.
onnx::ModelProto ThreeLayers() {
  auto model = testing::ParseModelText(
      "<ir_version: 8, opset_import: [\"\" : 13]>\n"
      "agraph (float[B, 16, 48] x, float[B, 48] z) => (float[B, 16, 48] b, float[B, 128] y) {\n"
      "  a = MatMul(x, W1)\n  b = MatMul(a, W2)\n  y = MatMul(z, W3)\n}");
  const char* names[] = {"dense", "dense_1", "head"};
  for (int i = 0; i < 3; ++i) model.mutable_graph()->mutable_node(i)->set_name(names[i]);
  testing::AddRandomInitializer(&model, "W1", {48, 96}, 1);
  testing::AddRandomInitializer(&model, "W2", {96, 48}, 2);
  testing::AddRandomInitializer(&model, "W3", {48, 128}, 3);
  return model;
}

pipeline::Result CompressOrFail(const onnx::ModelProto& model, const pipeline::Options& options) {
  StatusOr<pipeline::Result> r = pipeline::CompressModel(model, options);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? std::move(*r) : pipeline::Result{};
}

TEST(RatioDenseOnlyTest, SlowerThanDenseLayerStaysOutOfTheBudget) {
  const onnx::ModelProto model = ThreeLayers();
  pipeline::Options options;  // the command line's defaults: node cost 8192, min-params 4096
  options.ratio = 0.5;
  const pipeline::Result result = CompressOrFail(model, options);
  ASSERT_EQ(result.report.layers_size(), 3);
  const report::LayerReport& head = result.report.layers(2);
  EXPECT_FALSE(head.compressed());
  EXPECT_EQ(head.skip_reason(), "slower_than_dense");
  double large_after = 0;
  for (int i = 0; i < 2; ++i) {
    const report::LayerReport& l = result.report.layers(i);
    ASSERT_TRUE(l.compressed()) << l.node_name() << ": " << l.skip_reason();
    large_after += l.params_after();
  }
  EXPECT_LE(large_after, 0.5 * (48 * 96 + 96 * 48));
  // Before the fix: 15360 before, and the two large layers squeezed to pay for the head.
  const report::Totals& t = result.report.totals();
  EXPECT_EQ(t.compressible_params_before(), 48 * 96 + 96 * 48);
  EXPECT_EQ(t.compressible_params_after(), large_after);
  EXPECT_TRUE(result.report.ratio_met());

  pipeline::Options excluded = options;
  excluded.exclude = {"^head$"};
  const pipeline::Result reference = CompressOrFail(model, excluded);
  EXPECT_EQ(reference.report.layers(2).skip_reason(), "excluded");
  EXPECT_EQ(reference.report.totals().compressible_params_before(), t.compressible_params_before());
  EXPECT_EQ(reference.report.totals().compressible_params_after(), t.compressible_params_after());
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(result.report.layers(i).rank(), reference.report.layers(i).rank());
    EXPECT_EQ(result.report.layers(i).relative_error(),
              reference.report.layers(i).relative_error());
  }
  // The same graph: nodes and factor bytes.
  EXPECT_EQ(result.model.graph().SerializeAsString(), reference.model.graph().SerializeAsString());
}

}  // namespace
}  // namespace kfc
