// Unit tests for kfc/match: the candidates FindLayers yields (attributes, weight sources, scopes,
// order, sharing) and each skip reason with its detail, on ONNX text models, without the pipeline.
#include "kfc/match/match.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kfc/tensor/tensor.h"
#include "tests/support/test_util.h"

namespace kfc::match {
namespace {

using testing::AddRandomInitializer;
using testing::ParseModelText;

std::vector<float> Ones(size_t n) { return std::vector<float>(n, 1.0f); }

// The one candidate of a model with one Gemm/MatMul.
LayerCandidate Only(const onnx::ModelProto& model) {
  const std::vector<LayerCandidate> layers = FindLayers(model);
  EXPECT_EQ(layers.size(), 1u);
  return layers.empty() ? LayerCandidate{} : layers[0];
}

void ExpectSkip(const LayerCandidate& c, const std::string& reason, const std::string& detail) {
  EXPECT_EQ(c.skip_reason, reason) << c.skip_detail;
  EXPECT_NE(c.skip_detail.find(detail), std::string::npos)
      << "detail '" << c.skip_detail << "' lacks '" << detail << "'";
  EXPECT_FALSE(c.eligible());
}

TEST(MatchCandidateTest, GemmCarriesItsAttributesBiasAndWeight) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 96] y) {
  y = Gemm<transB = 1, alpha = 0.5, beta = 2.0>(x, W, C)
})");
  model.mutable_graph()->mutable_node(0)->set_name("fc");
  AddRandomInitializer(&model, "W", {96, 64}, 1);
  AddRandomInitializer(&model, "C", {96}, 2);
  const LayerCandidate c = Only(model);
  EXPECT_TRUE(c.eligible()) << c.skip_reason << ": " << c.skip_detail;
  EXPECT_EQ(c.graph_path, "main");
  EXPECT_TRUE(c.scope.empty());
  EXPECT_EQ(c.node_index, 0);
  EXPECT_EQ(c.node_name, "fc");
  EXPECT_EQ(c.op_type, "Gemm");
  EXPECT_EQ(c.input_name, "x");
  EXPECT_EQ(c.weight_name, "W");
  EXPECT_EQ(c.output_name, "y");
  EXPECT_FALSE(c.trans_a);
  EXPECT_TRUE(c.trans_b);
  EXPECT_FLOAT_EQ(c.alpha, 0.5f);
  EXPECT_FLOAT_EQ(c.beta, 2.0f);
  EXPECT_EQ(c.bias_name, "C");
  EXPECT_EQ(c.k, 64);  // W is stored [N, K] with transB = 1
  EXPECT_EQ(c.n, 96);
  EXPECT_EQ(c.dtype, onnx::TensorProto::FLOAT);
  EXPECT_EQ(c.stored_dtype, onnx::TensorProto::FLOAT);
  EXPECT_EQ(c.input_rank, 2);
  EXPECT_EQ(c.weight_tensor_name, "W");
  EXPECT_EQ(c.source_value, "W");
  EXPECT_EQ(c.source_depth, 0u);
  EXPECT_EQ(c.constant_node, -1);
  EXPECT_TRUE(c.chain.empty());
  EXPECT_EQ(c.sharing_layers, 1);
}

TEST(MatchCandidateTest, MatMulWithTheConstantFirstIsTheWxForm) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[B, 32, 5] x) => (float[B, 48, 5] y) {
  y = MatMul(W, x)
})");
  AddRandomInitializer(&model, "W", {48, 32}, 3);
  const LayerCandidate c = Only(model);
  EXPECT_TRUE(c.eligible()) << c.skip_reason << ": " << c.skip_detail;
  EXPECT_TRUE(c.weight_first);
  EXPECT_TRUE(c.trans_b);
  EXPECT_EQ(c.input_name, "x");
  EXPECT_EQ(c.weight_name, "W");
  EXPECT_EQ(c.k, 32);
  EXPECT_EQ(c.n, 48);
  EXPECT_EQ(c.input_rank, 3);
  EXPECT_EQ(c.input_cols, 5);
  EXPECT_TRUE(ColumnSamples(c));
}

TEST(MatchCandidateTest, IdentityAndCastChainIsFollowedToTheInitializer) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 16] x) => (float[N, 8] y) {
  a = Identity(W16)
  w = Cast<to = 1>(a)
  y = MatMul(x, w)
})");
  *model.mutable_graph()->add_initializer() =
      tensor::EncodeFromFloat("W16", onnx::TensorProto::FLOAT16, {16, 8}, Ones(128));
  const LayerCandidate c = Only(model);
  EXPECT_TRUE(c.eligible()) << c.skip_reason << ": " << c.skip_detail;
  EXPECT_EQ(c.node_index, 2);
  EXPECT_EQ(c.chain, (std::vector<int>{1, 0}));  // from the consumer towards the source
  EXPECT_EQ(c.weight_tensor_name, "W16");
  EXPECT_EQ(c.source_value, "W16");
  EXPECT_EQ(c.stored_dtype, onnx::TensorProto::FLOAT16);
  EXPECT_EQ(c.dtype, onnx::TensorProto::FLOAT);  // what the Cast makes
  EXPECT_EQ(c.k, 16);
  EXPECT_EQ(c.n, 8);
}

TEST(MatchCandidateTest, ConstantNodeIsASource) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 16] x) => (float[N, 8] y) {
  w = Constant()
  y = MatMul(x, w)
})");
  auto* value = model.mutable_graph()->mutable_node(0)->add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  *value->mutable_t() = tensor::EncodeFromFloat("", onnx::TensorProto::FLOAT, {16, 8}, Ones(128));
  const LayerCandidate c = Only(model);
  EXPECT_TRUE(c.eligible()) << c.skip_reason << ": " << c.skip_detail;
  EXPECT_EQ(c.constant_node, 0);
  EXPECT_TRUE(c.weight_tensor_name.empty());
  EXPECT_EQ(c.source_value, "w");
  EXPECT_EQ(c.k, 16);
  EXPECT_EQ(c.n, 8);
}

// If node first, a main-graph MatMul after it: the main graph's layers come first, then each
// branch's, with their scope and an outer initializer's depth.
TEST(MatchCandidateTest, SubgraphLayersComeAfterTheirGraphsAndCarryTheirScope) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (bool cond, float[N, 64] x) => (float[N, 64] y, float[N, 64] z) {
  y = If(cond) <
    then_branch = g1 () => (float[N, 64] a) { a = MatMul(x, W) },
    else_branch = g2 () => (float[N, 64] b) { b = MatMul(x, W) }
  >
  z = MatMul(x, V)
})");
  model.mutable_graph()->mutable_node(0)->set_name("branch");
  AddRandomInitializer(&model, "W", {64, 64}, 4);
  AddRandomInitializer(&model, "V", {64, 64}, 5);
  const std::vector<LayerCandidate> layers = FindLayers(model);
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(layers[0].graph_path, "main");
  EXPECT_EQ(layers[0].weight_name, "V");
  EXPECT_EQ(layers[0].node_index, 1);
  EXPECT_EQ(layers[1].graph_path, "main/branch/then_branch");
  EXPECT_EQ(layers[2].graph_path, "main/branch/else_branch");
  for (int i = 1; i <= 2; ++i) {
    const LayerCandidate& c = layers[static_cast<size_t>(i)];
    EXPECT_TRUE(c.eligible()) << c.skip_reason << ": " << c.skip_detail;
    ASSERT_EQ(c.scope.size(), 1u);
    EXPECT_EQ(c.scope[0].node, 0);
    EXPECT_EQ(c.scope[0].attribute, i - 1);
    EXPECT_EQ(c.scope[0].graph, -1);
    EXPECT_EQ(c.source_depth, 0u);  // W is the main graph's
    EXPECT_EQ(c.sharing_layers, 2);
    EXPECT_EQ(c.source_value, "W");
  }
  EXPECT_EQ(layers[0].sharing_layers, 1);
}

TEST(MatchCandidateTest, UnnamedNodesAreNamedByIndexInThePath) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (int64 trip, bool cond, float[N, 64] x) => (float[N, 64] y) {
  y = Loop(trip, cond, x) <
    body = loop_body (int64 i, bool c_in, float[N, 64] h) => (bool c_out, float[N, 64] h_out) {
      c_out = Identity(c_in)
      h_out = MatMul(h, W)
    }
  >
})");
  AddRandomInitializer(&model, "W", {64, 64}, 4);
  const LayerCandidate c = Only(model);
  EXPECT_EQ(c.graph_path, "main/#0/body");
  EXPECT_EQ(c.node_index, 1);
  EXPECT_TRUE(c.eligible()) << c.skip_reason << ": " << c.skip_detail;
}

TEST(MatchCandidateTest, DefaultOpsetIsTheDefaultDomains) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["com.example" : 2, "" : 15]>
agraph (float[N, 4] x) => (float[N, 4] y) { y = Relu(x) })");
  EXPECT_EQ(DefaultOpset(model), 15);
  model.clear_opset_import();
  EXPECT_EQ(DefaultOpset(model), 0);
  EXPECT_TRUE(FindLayers(model).empty());
}

// --- skip reasons ---

TEST(MatchSkipTest, WeightNotConstant) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x, float[64, 64] w) => (float[N, 64] y) { y = MatMul(x, w) })");
  ExpectSkip(Only(model), "weight_not_constant", "neither input is a constant");
  auto gemm = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[64, N] x) => (float[64, N] y) { y = Gemm(A, x) })");
  AddRandomInitializer(&gemm, "A", {64, 64}, 1);
  ExpectSkip(Only(gemm), "weight_not_constant", "only Gemm's first input A is constant");
}

TEST(MatchSkipTest, ConstantNodeWithoutATensor) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 2] x) => (float[N] y) {
  w = Constant<value_floats = [1.0, 2.0]>()
  y = MatMul(x, w)
})");
  ExpectSkip(Only(model), "weight_in_constant_node", "value_float");
}

TEST(MatchSkipTest, WeightFromANodeOfAnEnclosingGraph) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (bool cond, float[N, 64] x) => (float[N, 64] y) {
  w = Identity(W)
  y = If(cond) <
    then_branch = g1 () => (float[N, 64] a) { a = MatMul(x, w) },
    else_branch = g2 () => (float[N, 64] b) { b = Relu(x) }
  >
})");
  AddRandomInitializer(&model, "W", {64, 64}, 5);
  ExpectSkip(Only(model), "weight_outer_node", "Identity node of an enclosing graph");
}

TEST(MatchSkipTest, InitializerThatIsAlsoAGraphInput) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x, float[64, 64] W) => (float[N, 64] y) { y = MatMul(x, W) })");
  AddRandomInitializer(&model, "W", {64, 64}, 5);
  ExpectSkip(Only(model), "weight_is_graph_input", "callers may override it");
  model.set_ir_version(3);  // before IR 4 every initializer is an input: nothing to override
  model.mutable_opset_import(0)->set_version(8);
  EXPECT_TRUE(Only(model).eligible()) << Only(model).skip_reason;
}

TEST(MatchSkipTest, DtypesTheRewriteCannotEmit) {
  auto ints = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (int32[N, 4] x) => (int32[N, 4] y) { y = MatMul(x, W) })");
  auto* w = ints.mutable_graph()->add_initializer();
  w->set_name("W");
  w->set_data_type(onnx::TensorProto::INT32);
  w->add_dims(4);
  w->add_dims(4);
  for (int i = 0; i < 16; ++i) w->add_int32_data(i);
  ExpectSkip(Only(ints), "unsupported_dtype", "weight dtype int32");

  auto bf16 = ParseModelText(R"(<ir_version: 7, opset_import: ["" : 12]>
agraph (float[N, 16] x) => (float[N, 8] y) {
  w = Cast<to = 16>(W)
  xb = Cast<to = 16>(x)
  yb = MatMul(xb, w)
  y = Cast<to = 1>(yb)
})");
  AddRandomInitializer(&bf16, "W", {16, 8}, 2);
  ExpectSkip(Only(bf16), "dtype_unsupported_at_opset", "at opset 12 does not accept bfloat16");
}

TEST(MatchSkipTest, WeightNot2dOrEmpty) {
  auto cube = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 4, 4] x) => (float[N, 4, 4] y) { y = MatMul(x, W) })");
  AddRandomInitializer(&cube, "W", {4, 4, 4}, 1);
  ExpectSkip(Only(cube), "weight_not_2d", "rank 3, expected 2");
  auto empty = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 0] x) => (float[N, 4] y) { y = MatMul(x, W) })");
  AddRandomInitializer(&empty, "W", {0, 4}, 1);
  ExpectSkip(Only(empty), "empty_weight", "zero dimension");
}

TEST(MatchSkipTest, SharedWeights) {
  // A value on the weight path read by something else: the path cannot go.
  auto chain = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 64] y, float[64, 64] z) {
  w = Identity(W)
  y = MatMul(x, w)
  z = Relu(w)
})");
  AddRandomInitializer(&chain, "W", {64, 64}, 1);
  ExpectSkip(Only(chain), "weight_shared", "'w' is used 2 times");
  // The source itself also read by another op: its dense copy would stay.
  auto gather = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x, int64[N] ids) => (float[N, 64] y, float[N, 64] e) {
  y = MatMul(x, W)
  e = Gather(W, ids)
})");
  AddRandomInitializer(&gather, "W", {64, 64}, 1);
  ExpectSkip(Only(gather), "weight_shared", "also used by another op");
  // Two layers on one source share it.
  auto two = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 64] y) {
  h = MatMul(x, W)
  y = MatMul(h, W)
})");
  AddRandomInitializer(&two, "W", {64, 64}, 1);
  const std::vector<LayerCandidate> layers = FindLayers(two);
  ASSERT_EQ(layers.size(), 2u);
  for (const auto& c : layers) {
    EXPECT_TRUE(c.eligible()) << c.skip_reason << ": " << c.skip_detail;
    EXPECT_EQ(c.sharing_layers, 2);
  }
}

TEST(MatchSkipTest, InputRankUnknownOrOne) {
  auto vector_input = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[64] x) => (float[64] y) { y = MatMul(x, W) })");
  AddRandomInitializer(&vector_input, "W", {64, 64}, 1);
  ExpectSkip(Only(vector_input), "input_rank_1", "'x' is a vector");
  auto unknown = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 64] y) { y = MatMul(x, W) })");
  AddRandomInitializer(&unknown, "W", {64, 64}, 1);
  unknown.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->clear_shape();
  ExpectSkip(Only(unknown), "unknown_input_rank", "rank of input 'x' is unknown");
}

TEST(MatchSkipTest, OldOpsetAndMalformedNodes) {
  auto old = ParseModelText(R"(<ir_version: 3, opset_import: ["" : 6]>
agraph (float[N, 64] x, float[64, 64] W) => (float[N, 64] y) { y = MatMul(x, W) })");
  AddRandomInitializer(&old, "W", {64, 64}, 1);
  ExpectSkip(Only(old), "opset_unsupported", "below 7");
  auto one_input = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 64] y) { y = MatMul(x, W) })");
  one_input.mutable_graph()->mutable_node(0)->mutable_input()->RemoveLast();
  ExpectSkip(Only(one_input), "malformed_node", "fewer than 2 inputs");
}

}  // namespace
}  // namespace kfc::match
