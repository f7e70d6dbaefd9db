// SPDX-License-Identifier: Apache-2.0
// Weights that reach the layer through a Constant node or Identity/Cast chains, and weights shared
// by several layers: followed, factorized once, and removed only when nothing else reads them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "kfc/io/model_io.h"
#include "kfc/kron/factorize.h"
#include "kfc/match/match.h"
#include "kfc/pipeline/compress.h"
#include "kfc/tensor/tensor.h"
#include "onnx/defs/data_type_utils.h"
#include "onnx/shape_inference/implementation.h"
#include "tests/support/rewrite_helpers.h"
#include "tests/support/test_util.h"
#include "tests/support/toy_options.h"

namespace kfc {
namespace {

using testing::AddRandomInitializer;
using testing::Compress;
using testing::HasInitializer;
using testing::MatMulModel;
using testing::OpCounts;
using testing::ParseModelText;

// A 64 x 64 float tensor with seeded data, as an attribute or an initializer.
onnx::TensorProto RandomTensor(const std::string& name, int32_t dtype, uint32_t seed) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(dtype);
  t.add_dims(64);
  t.add_dims(64);
  for (float v : testing::RandomVector(64 * 64, seed)) {
    if (dtype == onnx::TensorProto::FLOAT) {
      t.add_float_data(v);
    } else {  // float16 bit patterns, via a float32 -> half truncation good enough for tests
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      const uint32_t sign = (bits >> 16) & 0x8000, exp = (bits >> 23) & 0xFF;
      const uint32_t half = exp < 113 ? sign : sign | ((exp - 112) << 10) | ((bits >> 13) & 0x3FF);
      t.add_int32_data(static_cast<int32_t>(half));
    }
  }
  return t;
}

TEST(WeightSourceTest, ConstantNodeWithEmptyNameIsCompressedAndRemoved) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 64] y) {
  w = Constant<value = float[1] {0.0}>()
  y = MatMul(x, w)
})");
  auto* value = model.mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_t();
  *value = RandomTensor("", onnx::TensorProto::FLOAT, 3);
  model.mutable_graph()->mutable_node(0)->clear_name();
  ASSERT_TRUE(pipeline::CheckModel(model, "in").ok());
  auto result = Compress(model, 2);
  ASSERT_EQ(result.report.totals().layers_compressed(), 1) << result.report.layers(0).skip_detail();
  auto ops = OpCounts(result.model.graph());
  EXPECT_EQ(ops["Constant"], 0) << "the Constant fed only this layer";
  EXPECT_EQ(ops["MatMul"], 2);
  EXPECT_TRUE(pipeline::CheckModel(result.model, "out").ok());
}

TEST(WeightSourceTest, IdentityAndCastChainsFromFloat16AreFollowed) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 64] y) {
  a = Identity(W16)
  b = Cast<to = 1>(a)
  c = Identity(b)
  y = MatMul(x, c)
})");
  *model.mutable_graph()->add_initializer() = RandomTensor("W16", onnx::TensorProto::FLOAT16, 4);
  ASSERT_TRUE(pipeline::CheckModel(model, "in").ok());
  auto result = Compress(model, 2);
  const auto& l = result.report.layers(0);
  ASSERT_TRUE(l.compressed()) << l.skip_reason() << ": " << l.skip_detail();
  EXPECT_EQ(l.dtype(), "float32");
  EXPECT_EQ(OpCounts(result.model.graph())["Cast"], 0);
  EXPECT_EQ(OpCounts(result.model.graph())["Identity"], 0);
  EXPECT_FALSE(HasInitializer(result.model.graph(), "W16"));
  EXPECT_TRUE(pipeline::CheckModel(result.model, "out").ok());
}

TEST(WeightSourceTest, ChainValueUsedElsewhereIsShared) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 64] y, float[64, 64] z) {
  b = Cast<to = 1>(W16)
  y = MatMul(x, b)
  z = Relu(b)
})");
  *model.mutable_graph()->add_initializer() = RandomTensor("W16", onnx::TensorProto::FLOAT16, 4);
  auto result = Compress(model, 2);
  EXPECT_EQ(result.report.layers(0).skip_reason(), "weight_shared");
}

TEST(SharedWeightTest, FactorizedOnceAndCountedOnce) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 64] y) {
  t = MatMul(x, W)
  y = MatMul(t, W)
})");
  model.mutable_graph()->mutable_node(0)->set_name("first");
  model.mutable_graph()->mutable_node(1)->set_name("second");
  AddRandomInitializer(&model, "W", {64, 64}, 8);
  auto result = Compress(model, 2);
  ASSERT_EQ(result.report.totals().layers_compressed(), 2);
  const auto& a = result.report.layers(0);
  const auto& b = result.report.layers(1);
  EXPECT_EQ(a.shares_factors_with(), "");
  EXPECT_EQ(b.shares_factors_with(), "first");
  EXPECT_GT(a.params_after(), 0);
  EXPECT_EQ(b.params_after(), 0);
  EXPECT_EQ(a.relative_error(), b.relative_error());
  EXPECT_FALSE(HasInitializer(result.model.graph(), "W"));
  // One A stack and one B stack serve both layers.
  int factor_tensors = 0;
  for (const auto& t : result.model.graph().initializer()) factor_tensors += t.data_type() == 1;
  EXPECT_EQ(factor_tensors, 2);
  // Plus the three shared Reshape shapes: [0, k1, k2], [0, mid, mid] and [0, N].
  EXPECT_EQ(result.report.totals().model_params_after(), a.params_after() + 3 + 3 + 2);
  EXPECT_TRUE(pipeline::CheckModel(result.model, "out").ok());
}

TEST(SharedWeightTest, SharedConstantStaysWhileAnotherLayerReadsIt) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 64] y) {
  w = Constant<value = float[1] {0.0}>()
  t = MatMul(x, w)
  y = MatMul(t, w)
})");
  model.mutable_graph()->mutable_node(1)->set_name("keep_me_dense");
  model.mutable_graph()->mutable_node(2)->set_name("compress_me");
  *model.mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_t() =
      RandomTensor("", onnx::TensorProto::FLOAT, 2);
  pipeline::Options options = kfc::testing::ToyOptions();
  options.rank = 2;
  options.min_params = 0;
  options.exclude = {"keep_me"};
  auto result = pipeline::CompressModel(model, options);
  ASSERT_TRUE(result.ok()) << result.status().message();
  EXPECT_EQ(result->report.layers(0).skip_reason(), "excluded");
  EXPECT_TRUE(result->report.layers(1).compressed());
  EXPECT_EQ(OpCounts(result->model.graph())["Constant"], 1) << "the dense layer still reads it";
}

}  // namespace
}  // namespace kfc
