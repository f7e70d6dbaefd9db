// SPDX-License-Identifier: Apache-2.0
// Layers in float16, bfloat16 and float64: factors computed and stored in the layer's dtype, the
// reported error that of the stored factors, and bfloat16 below opset 13 skipped with the op.
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

// A model whose layer computes in `dtype`: MatMul, or Gemm(transB=1) with a bias and beta.
onnx::ModelProto DTypeModel(int32_t dtype, bool gemm, int opset = 13) {
  const std::string t = onnx::Utils::DataTypeUtils::ToDataTypeString(dtype);
  auto model = ParseModelText(
      "<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset) + "]>\nagraph (" + t +
      "[N, 64] x) => (" + t + "[N, 96] y) {\n" +
      (gemm ? "  y = Gemm<transB = 1, beta = 0.5>(x, W, C)\n" : "  y = MatMul(x, W)\n") + "}");
  const auto w = testing::RandomVector(64 * 96, 11), c = testing::RandomVector(96, 12);
  std::vector<int64_t> w_dims = gemm ? std::vector<int64_t>{96, 64} : std::vector<int64_t>{64, 96};
  *model.mutable_graph()->add_initializer() = tensor::EncodeFromFloat("W", dtype, w_dims, w);
  if (gemm)
    *model.mutable_graph()->add_initializer() = tensor::EncodeFromFloat("C", dtype, {96}, c);
  return model;
}

TEST(DTypeTest, LayersComputeAndStoreFactorsInTheirOwnDtype) {
  for (int32_t dtype :
       {onnx::TensorProto::FLOAT16, onnx::TensorProto::BFLOAT16, onnx::TensorProto::DOUBLE}) {
    for (bool gemm : {false, true}) {
      const std::string label = tensor::DTypeName(dtype) + (gemm ? " Gemm" : " MatMul");
      auto model = DTypeModel(dtype, gemm);
      ASSERT_TRUE(pipeline::CheckModel(model, "in").ok()) << label;
      auto result = Compress(model, 3);
      const auto& l = result.report.layers(0);
      ASSERT_TRUE(l.compressed()) << label << ": " << l.skip_reason() << " " << l.skip_detail();
      EXPECT_EQ(l.dtype(), tensor::DTypeName(dtype));
      EXPECT_EQ(l.weight_bytes_after(), l.params_after() * tensor::DTypeSize(dtype)) << label;
      const Status check = pipeline::CheckModel(result.model, "out");
      EXPECT_TRUE(check.ok()) << label << ": " << check.message();
      for (const auto& t : result.model.graph().initializer()) {
        if (t.data_type() == onnx::TensorProto::INT64) continue;  // Reshape shapes
        EXPECT_EQ(t.data_type(), dtype) << label << ": initializer " << t.name();
        auto values = tensor::DecodeToFloat(t);
        ASSERT_TRUE(values.ok());
        EXPECT_EQ(*values, tensor::RoundToDType(dtype, *values));
      }
      EXPECT_FALSE(HasInitializer(result.model.graph(), "W"));
      // beta is folded into C, except in float64, which the float32 decoder would round.
      EXPECT_EQ(OpCounts(result.model.graph())["Mul"], gemm && dtype == onnx::TensorProto::DOUBLE)
          << label;
      EXPECT_EQ(OpCounts(result.model.graph())["Cast"], 0) << label;
    }
  }
}

// The reported error is that of the factors as stored: rounding to float16 or bfloat16 shows up
// at full rank, where the float32 factorization is exact.
TEST(DTypeTest, ReportedErrorIsThatOfTheStoredFactors) {
  for (int32_t dtype : {onnx::TensorProto::FLOAT16, onnx::TensorProto::BFLOAT16}) {
    auto model = DTypeModel(dtype, false);
    pipeline::Options options = kfc::testing::ToyOptions();
    options.rank = 1000;
    options.min_params = 0;
    options.skip_unprofitable = false;
    auto result = pipeline::CompressModel(model, options);
    ASSERT_TRUE(result.ok()) << result.status().message();
    const auto& l = result->report.layers(0);
    ASSERT_TRUE(l.compressed());
    const auto& f = *result->layers[0].factors;
    EXPECT_EQ(f.a, tensor::RoundToDType(dtype, f.a));
    EXPECT_EQ(f.b, tensor::RoundToDType(dtype, f.b));
    auto w = tensor::DecodeToFloat(model.graph().initializer(0));
    ASSERT_TRUE(w.ok());
    const std::vector<float> w_hat = kron::Reconstruct(f);
    double diff = 0, norm = 0;
    for (size_t i = 0; i < w->size(); ++i) {
      diff += (double{(*w)[i]} - w_hat[i]) * (double{(*w)[i]} - w_hat[i]);
      norm += double{(*w)[i]} * (*w)[i];
    }
    const double expected = std::sqrt(diff / norm);
    const double unit = dtype == onnx::TensorProto::FLOAT16 ? 1e-3 : 1e-2;  // about 2^-11, 2^-8
    EXPECT_GT(l.relative_error(), unit / 10) << tensor::DTypeName(dtype);
    EXPECT_LT(l.relative_error(), unit * 10) << tensor::DTypeName(dtype);
    EXPECT_NEAR(l.relative_error(), expected, 1e-6 * expected) << tensor::DTypeName(dtype);
  }
}

// Float64 layers are factorized in double and their factors stored without passing through
// float32: a planted Kronecker sum whose last term is 1e-9 of the rest (below float32's reach:
// rounding W alone costs about 3e-8) comes back to double rounding, and the reported error is the
// exact one against the float64 W.
TEST(DTypeTest, Float64IsFactorizedAndStoredInDouble) {
  const kron::KronShape shape{4, 8, 16, 12};  // K = 64, N = 96
  std::mt19937 rng(6401);
  std::normal_distribution<double> normal(0.0, 1.0);
  kron::KronFactors planted;
  planted.shape = shape;
  planted.rank = 3;
  for (int i = 0; i < 3 * 32; ++i) planted.a.push_back(normal(rng) * (i < 2 * 32 ? 1.0 : 1e-9));
  for (int i = 0; i < 3 * 192; ++i) planted.b.push_back(normal(rng));
  const std::vector<double> w = kron::Reconstruct<double>(planted);  // 64 x 96
  for (bool gemm : {false, true}) {
    auto model = ParseModelText(
        "<ir_version: 8, opset_import: [\"\" : 13]>\nagraph (double[N, 64] x) => (double[N, 96] "
        "y) {\n" +
        std::string(gemm ? "  y = Gemm<transB = 1>(x, W)\n" : "  y = MatMul(x, W)\n") + "}");
    *model.mutable_graph()->add_initializer() =
        gemm ? tensor::EncodeFromDouble("W", onnx::TensorProto::DOUBLE, {96, 64},
                                        tensor::Transpose(w, 64, 96))
             : tensor::EncodeFromDouble("W", onnx::TensorProto::DOUBLE, {64, 96}, w);
    for (int64_t rank : {2, 3}) {
      const std::string label =
          std::string(gemm ? "Gemm" : "MatMul") + " rank " + std::to_string(rank);
      pipeline::Options options = kfc::testing::ToyOptions();
      options.rank = rank;
      options.min_params = 0;
      options.shape = *pipeline::ShapePolicy::Parse("4x8");
      auto result = pipeline::CompressModel(model, options);
      ASSERT_TRUE(result.ok()) << result.status().message();
      const auto& l = result->report.layers(0);
      ASSERT_TRUE(l.compressed()) << label << ": " << l.skip_reason();
      const kron::KronFactors& f = *result->layers[0].factors;
      const std::vector<double> w_hat = kron::Reconstruct<double>(f);
      ASSERT_EQ(w_hat.size(), w.size());
      double diff = 0, norm = 0;
      for (size_t i = 0; i < w.size(); ++i) {
        diff += (w[i] - w_hat[i]) * (w[i] - w_hat[i]);
        norm += w[i] * w[i];
      }
      const double dense = std::sqrt(diff / norm);
      if (rank == 3) {
        EXPECT_LT(dense, 1e-12) << label;
        EXPECT_LT(l.relative_error(), 1e-12) << label;
      } else {
        EXPECT_GT(dense, 1e-11) << label;
        EXPECT_LT(dense, 1e-8) << label;
        EXPECT_NEAR(l.relative_error(), dense, 1e-14) << label;
      }
      // The factor initializers hold f's doubles exactly (alpha is 1; stacking only reorders).
      for (const auto& t : result->model.graph().initializer()) {
        if (t.data_type() == onnx::TensorProto::INT64) continue;
        EXPECT_EQ(t.data_type(), onnx::TensorProto::DOUBLE) << label << ": " << t.name();
        auto stored = tensor::DecodeToDouble(t);
        ASSERT_TRUE(stored.ok());
        std::vector<double> expected = t.name().find("kfc_a") != std::string::npos ? f.a : f.b;
        std::sort(stored->begin(), stored->end());
        std::sort(expected.begin(), expected.end());
        EXPECT_EQ(*stored, expected) << label << ": " << t.name();
      }
    }
  }
}

TEST(DTypeTest, Bfloat16BelowOpset13IsSkippedWithTheOp) {
  // ONNX 1.12's checker rejects this model (MatMul-9 has no bfloat16), so ask the matcher.
  auto model = DTypeModel(onnx::TensorProto::BFLOAT16, false, 11);
  auto layers = match::FindLayers(model);
  ASSERT_EQ(layers.size(), 1u);
  EXPECT_EQ(layers[0].skip_reason, "dtype_unsupported_at_opset");
  EXPECT_NE(layers[0].skip_detail.find("opset 11"), std::string::npos) << layers[0].skip_detail;
  EXPECT_NE(layers[0].skip_detail.find("bfloat16"), std::string::npos) << layers[0].skip_detail;
}

}  // namespace
}  // namespace kfc
