// SPDX-License-Identifier: Apache-2.0
// Unit tests for pipeline/calibration: layers that read features along the activation's
// second-to-last axis (MatMul(W, X), Gemm transA=1) take each column of X as a sample.
#include "kfc/pipeline/calibration.h"

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <fstream>

#include "kfc/io/npy.h"
#include "kfc/match/match.h"
#include "tests/support/test_util.h"

namespace kfc::pipeline {
namespace {

// y[B, 48, C] = MatMul(W[48, 32], x[B, 32, C]): the W·X form, K = 32.
onnx::ModelProto WxModel() {
  auto model = testing::ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[B, 32, C] x) => (float[B, 48, C] y) {
  y = MatMul(W, x)
})");
  model.mutable_graph()->mutable_node(0)->set_name("wx");
  testing::AddRandomInitializer(&model, "W", {48, 32}, 5);
  return model;
}

TEST(CalibrationColumnsTest, EachColumnOfTheActivationIsOneSample) {
  const onnx::ModelProto model = WxModel();
  auto probe = BuildProbe(model, "wx.onnx");
  ASSERT_TRUE(probe.ok()) << probe.status().message();
  ASSERT_EQ(probe->sidecar.tensors_size(), 1);
  EXPECT_TRUE(probe->sidecar.tensors(0).columns());
  testing::TempDir dir;
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(probe->sidecar, &json).ok());
  testing::WriteText(json, dir.File(kSidecarName));
  // Two files: [3, 32, 5] and [2, 32, 5] -> 25 columns of 32 features.
  constexpr int64_t K = 32, C = 5;
  const std::vector<float> a = testing::RandomVector(3 * K * C, 11);
  const std::vector<float> b = testing::RandomVector(2 * K * C, 12);
  const std::string name = probe->sidecar.tensors(0).name();
  ASSERT_TRUE(io::WriteNpy(dir.File(name + ".b0.npy"), {3, K, C}, a).ok());
  ASSERT_TRUE(io::WriteNpy(dir.File(name + ".b1.npy"), {2, K, C}, b).ok());

  auto cal = Calibration::Load(dir.path(), model);
  ASSERT_TRUE(cal.ok()) << cal.status().message();
  const auto layers = match::FindLayers(model);
  ASSERT_EQ(layers.size(), 1u);
  ASSERT_TRUE(layers[0].weight_first);
  std::string note;
  auto stats = (*cal)->Stats(layers[0], 0, &note);
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  ASSERT_TRUE(stats->has_value()) << note;

  // The same columns, transposed by hand into rows.
  kron::StatsAccumulator direct(K);
  for (const auto* data : {&a, &b}) {
    const int64_t blocks = static_cast<int64_t>(data->size()) / (K * C);
    for (int64_t blk = 0; blk < blocks; ++blk) {
      for (int64_t j = 0; j < C; ++j) {
        std::vector<float> row(K);
        for (int64_t i = 0; i < K; ++i) row[i] = (*data)[(blk * K + i) * C + j];
        ASSERT_TRUE(direct.Add(row.data(), 1).ok());
      }
    }
  }
  auto want = direct.Finish();
  ASSERT_TRUE(want.ok());
  EXPECT_EQ((*stats)->count, 25);
  EXPECT_EQ((*stats)->mean, want->mean);
  ASSERT_EQ((*stats)->covariance.size(), want->covariance.size());
  for (size_t i = 0; i < want->covariance.size(); ++i) {
    EXPECT_NEAR((*stats)->covariance[i], want->covariance[i], 1e-12) << i;
  }

  // A file whose second-to-last dim is not K is an error naming the file and the layer.
  testing::TempDir bad;
  testing::WriteText(json, bad.File(kSidecarName));
  ASSERT_TRUE(io::WriteNpy(bad.File(name + ".npy"), {2, C, K}, a).ok());
  auto bad_cal = Calibration::Load(bad.path(), model);
  ASSERT_TRUE(bad_cal.ok());
  auto err = (*bad_cal)->Stats(layers[0], 0, &note);
  ASSERT_FALSE(err.ok());
  EXPECT_NE(err.status().message().find("K = 32 second to last"), std::string::npos)
      << err.status().message();
  EXPECT_NE(err.status().message().find("layer 'wx'"), std::string::npos);
}

}  // namespace
}  // namespace kfc::pipeline
