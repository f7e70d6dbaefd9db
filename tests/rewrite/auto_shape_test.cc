// SPDX-License-Identifier: Apache-2.0
// --shape auto in a model: never bigger than balanced at the same rank, and finds a planted shape.
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

TEST(AutoShapeTest, NeverBiggerThanBalancedAndNoWorse) {
  auto model = MatMulModel("float[N, 96]", "float[N, 128]", 96, 128);
  for (int64_t rank : {1, 2, 4, 8}) {
    pipeline::Options balanced = kfc::testing::ToyOptions();
    balanced.rank = rank;
    balanced.min_params = 0;
    pipeline::Options automatic = balanced;
    automatic.shape = pipeline::ShapePolicy{pipeline::ShapePolicy::Kind::kAuto};
    automatic.record_candidates = true;
    auto b = pipeline::CompressModel(model, balanced);
    auto a = pipeline::CompressModel(model, automatic);
    ASSERT_TRUE(a.ok() && b.ok());
    const auto& lb = b->report.layers(0);
    const auto& la = a->report.layers(0);
    ASSERT_TRUE(la.compressed()) << la.skip_detail();
    EXPECT_EQ(a->report.shape_policy(), "auto");
    // Budget: what the squarest balanced shape uses at this rank.
    EXPECT_LE(la.params_after(), lb.params_after()) << "rank " << rank;
    EXPECT_LE(la.relative_error(), lb.relative_error() * (1 + 1e-9)) << "rank " << rank;
    EXPECT_GE(la.lowrank_rank(), 1);
    EXPECT_GE(la.lowrank_relative_error(), la.relative_error() * (1 - 1e-9));
    EXPECT_GT(la.candidates_size(), 10);
    EXPECT_TRUE(pipeline::CheckModel(a->model, "auto").ok());
  }
}

TEST(AutoShapeTest, FindsPlantedKroneckerShapeInAModel) {
  // W = sum of 2 terms A_t (x) B_t with A_t: 2x64 and B_t: 48x2 (K = 96, N = 128): 224
  // parameters per term, the fewest possible here, so it fits the budget of -r 2.
  auto model = MatMulModel("float[N, 96]", "float[N, 128]", 96, 128);
  const auto a = testing::RandomVector(2 * 128, 1), b = testing::RandomVector(2 * 96, 2);
  auto* w = model.mutable_graph()->mutable_initializer(0);
  for (int64_t i = 0; i < 96; ++i)
    for (int64_t j = 0; j < 128; ++j) {
      float v = 0;
      for (int t = 0; t < 2; ++t)
        v += a[t * 128 + (i / 48) * 64 + j / 2] * b[t * 96 + (i % 48) * 2 + j % 2];
      w->set_float_data(static_cast<int>(i * 128 + j), v);
    }
  pipeline::Options options = kfc::testing::ToyOptions();
  options.rank = 2;
  options.shape = pipeline::ShapePolicy{pipeline::ShapePolicy::Kind::kAuto};
  auto result = pipeline::CompressModel(model, options);
  ASSERT_TRUE(result.ok());
  const auto& l = result->report.layers(0);
  ASSERT_TRUE(l.compressed());
  EXPECT_LT(l.relative_error(), 1e-5);
  EXPECT_EQ(l.k1(), 2);
  EXPECT_EQ(l.n1(), 64);
  EXPECT_GT(l.lowrank_relative_error(), 0.1) << "plain SVD cannot represent a Kronecker sum";
  EXPECT_TRUE(l.candidates().empty()) << "candidates only when asked for";
}

}  // namespace
}  // namespace kfc
