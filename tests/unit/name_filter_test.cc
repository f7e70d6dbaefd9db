// SPDX-License-Identifier: Apache-2.0
// --include / --exclude through the pipeline: long names, bad patterns.
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

TEST(NameFilterTest, LongNamesDoNotOverflowTheStack) {
  // libstdc++'s std::regex recursed per character and crashed near 50,000 characters.
  auto model = MatMulModel("float[N, 64]", "float[N, 64]", 64, 64);
  model.mutable_graph()->mutable_node(0)->set_name(std::string(200000, 'a'));
  pipeline::Options options = kfc::testing::ToyOptions();
  options.rank = 2;
  options.exclude = {"a*c", "(a|b)*c"};
  auto result = pipeline::CompressModel(model, options);
  ASSERT_TRUE(result.ok()) << result.status().message();
  EXPECT_TRUE(result->report.layers(0).compressed());
  options.exclude = {"^a+$"};
  result = pipeline::CompressModel(model, options);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->report.layers(0).skip_reason(), "excluded");
}

TEST(NameFilterTest, BadPatternIsInvalidArgument) {
  pipeline::Options options = kfc::testing::ToyOptions();
  options.rank = 2;
  options.include = {"(["};
  const Status s = pipeline::ValidateOptions(options);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("regex '(['"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace kfc
