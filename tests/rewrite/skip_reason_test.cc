// Layers the pipeline leaves dense: each skip reason reported with a detail, and the model still
// valid. The matcher's own reasons, on FindLayers directly: tests/unit/match_test.cc.
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

namespace kfc {
namespace {

using testing::AddRandomInitializer;
using testing::Compress;
using testing::HasInitializer;
using testing::MatMulModel;
using testing::OpCounts;
using testing::ParseModelText;

struct SkipCase {
  std::string name, text, expected_reason;
};

// Keeps ctest's test names readable (gtest would print the struct's bytes).
void PrintTo(const SkipCase& c, std::ostream* os) { *os << c.name; }

class SkipReasonTest : public ::testing::TestWithParam<SkipCase> {};

TEST_P(SkipReasonTest, ReportsReasonAndLeavesModelValid) {
  auto model = ParseModelText(GetParam().text);
  for (const auto& init : std::vector<std::string>{"W", "W2"}) {
    bool referenced = false;
    for (const auto& n : model.graph().node())
      for (const auto& i : n.input()) referenced |= i == init;
    bool exists = HasInitializer(model.graph(), init);
    if (referenced && !exists && init == "W") AddRandomInitializer(&model, init, {64, 64}, 5);
  }
  auto result = Compress(model, 2);
  ASSERT_GE(result.report.layers_size(), 1);
  EXPECT_EQ(result.report.layers(0).skip_reason(), GetParam().expected_reason)
      << result.report.layers(0).skip_detail();
  EXPECT_FALSE(result.report.layers(0).skip_detail().empty());
  EXPECT_TRUE(pipeline::CheckModel(result.model, "out").ok());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SkipReasonTest,
    ::testing::Values(SkipCase{"runtime_weight", R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x, float[64, 64] w) => (float[N, 64] y) { y = MatMul(x, w) })",
                               "weight_not_constant"},
                      SkipCase{"constant_node", R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 2] x) => (float[N] y) {
  w = Constant<value_floats = [1.0, 2.0]>()
  y = MatMul(x, w)
})",
                               "weight_in_constant_node"},
                      SkipCase{"shared", R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x, int64[N] ids) => (float[N, 64] y, float[N, 64] e) {
  y = MatMul(x, W)
  e = Gather(W, ids)
})",
                               "weight_shared"},
                      SkipCase{"vector_input", R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[64] x) => (float[64] y) { y = MatMul(x, W) })",
                               "input_rank_1"},
                      SkipCase{"graph_input", R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x, float[64, 64] W) => (float[N, 64] y) { y = MatMul(x, W) })",
                               "weight_is_graph_input"},
                      SkipCase{"old_opset", R"(<ir_version: 3, opset_import: ["" : 6]>
agraph (float[N, 64] x, float[64, 64] W) => (float[N, 64] y) { y = MatMul(x, W) })",
                               "opset_unsupported"}),
    [](const ::testing::TestParamInfo<SkipCase>& param) { return param.param.name; });

TEST(KronSkipTest, SmallAndUnprofitableAndNonFinite) {
  auto model = MatMulModel("float[N, 64]", "float[N, 64]", 64, 64);
  EXPECT_EQ(Compress(model, 2, 1000000).report.layers(0).skip_reason(), "below_min_params");
  EXPECT_EQ(Compress(model, 64).report.layers(0).skip_reason(), "unprofitable");
  model.mutable_graph()->mutable_initializer(0)->set_float_data(
      70, std::numeric_limits<float>::quiet_NaN());
  auto result = Compress(model, 2);
  EXPECT_EQ(result.report.layers(0).skip_reason(), "non_finite_weight");
  EXPECT_NE(result.report.layers(0).skip_detail().find("NaN at row 1, column 6"), std::string::npos)
      << result.report.layers(0).skip_detail();
}

}  // namespace
}  // namespace kfc
