// SPDX-License-Identifier: Apache-2.0
// Calibration memory is bounded (issue 18, item 5): statistics of at least kParkMinBytes are parked
// in a scratch file as soon as they are computed, and read back only while one layer's decision or
// factorization uses them, so at most one copy per worker thread is in memory at once, whatever
// the number of calibrated activations; outputs are the same bytes as a run that keeps them all.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kfc/io/model_stream.h"
#include "kfc/io/npy.h"
#include "kfc/pipeline/calibration.h"
#include "kfc/pipeline/compress.h"
#include "tests/support/test_util.h"

namespace kfc::pipeline {
namespace {

constexpr int64_t kK = 384;  // 1.1 MiB of covariance per activation: parked
constexpr int kActivations = 6;

// Six layers on six activations of width kK, and a seventh reading the first activation again
// (its statistics come from the cache).
onnx::ModelProto SixActivations() {
  std::string inputs, outputs, body;
  for (int i = 0; i < kActivations; ++i) {
    const std::string n = std::to_string(i);
    inputs += (i ? ", " : "") + std::string("float[N, 384] x") + n;
    outputs += (i ? ", " : "") + std::string("float[N, 8] y") + n;
    body += "  y" + n + " = MatMul(x" + n + ", W" + n + ")\n";
  }
  body += "  z = MatMul(x0, V)\n";
  onnx::ModelProto model =
      testing::ParseModelText("<ir_version: 8, opset_import: [\"\" : 17]>\ng (" + inputs +
                              ") => (" + outputs + ", float[N, 8] z) {\n" + body + "}");
  for (int i = 0; i < kActivations; ++i) {
    testing::AddRandomInitializer(&model, "W" + std::to_string(i), {kK, 8},
                                  static_cast<uint32_t>(i + 1));
  }
  testing::AddRandomInitializer(&model, "V", {kK, 8}, 99);
  for (int i = 0; i < model.graph().node_size(); ++i) {
    model.mutable_graph()->mutable_node(i)->set_name("l" + std::to_string(i));
  }
  return model;
}

// The probe's sidecar and 40 rows per activation in dir.
void WriteCalibration(const onnx::ModelProto& model, const testing::TempDir& dir) {
  auto probe = BuildProbe(model, "six.onnx");
  ASSERT_TRUE(probe.ok()) << probe.status().message();
  ASSERT_EQ(probe->sidecar.tensors_size(), kActivations);
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(probe->sidecar, &json).ok());
  testing::WriteText(json, dir.File(kSidecarName));
  for (int t = 0; t < kActivations; ++t) {
    const std::string name = probe->sidecar.tensors(t).name();
    const std::vector<float> rows = testing::RandomVector(40 * kK, static_cast<uint32_t>(t + 20));
    ASSERT_TRUE(io::WriteNpy(dir.File(name + ".npy"), {40, kK}, rows).ok());
  }
}

TEST(CalibrationMemoryTest, AtMostOneStatisticsCopyPerThreadInEveryMode) {
  const onnx::ModelProto model = SixActivations();
  testing::TempDir dir;
  WriteCalibration(model, dir);
  std::vector<std::pair<std::string, Options>> modes(4);
  modes[0].first = "-r 2";
  modes[0].second.rank = 2;
  modes[1].first = "-r 2 --shape lowrank";
  modes[1].second.rank = 2;
  modes[1].second.shape = ShapePolicy{ShapePolicy::Kind::kLowRank, 0, 0};
  modes[2].first = "--max-error 0.95";
  modes[2].second.max_error = 0.95;
  modes[3].first = "--ratio 0.5";
  modes[3].second.ratio = 0.5;
  for (auto& [name, mode] : modes) {
    std::string first;
    for (int threads : {1, 2}) {
      Options o = mode;
      o.calibration_dir = dir.path();
      o.min_params = 0;
      o.threads = threads;
      ResetStatsInMemoryPeak();
      ASSERT_EQ(StatsInMemory(), 0) << name;
      auto result = CompressModel(model, o);
      ASSERT_TRUE(result.ok()) << name << ": " << result.status().message();
      int calibrated = 0;
      for (const auto& l : result->report.layers()) calibrated += l.calibrated();
      EXPECT_GE(calibrated, 1) << name;
      // Seven layers on six activations of 1.1 MiB statistics each: without parking all six are
      // held from the decision to the factorization.
      EXPECT_GE(StatsInMemoryPeak(), 1) << name;
      EXPECT_LE(StatsInMemoryPeak(), threads) << name << ", " << threads << " threads";
      EXPECT_EQ(StatsInMemory(), 0) << name;
      auto bytes = io::SerializeModel(result->model);
      ASSERT_TRUE(bytes.ok());
      if (threads == 1) first = *bytes;
      EXPECT_EQ(*bytes, first) << name << ": " << threads << " threads";
    }
  }
}

TEST(CalibrationMemoryTest, ParkedStatisticsReadBackEqualTheComputedOnes) {
  const onnx::ModelProto model = SixActivations();
  testing::TempDir dir;
  WriteCalibration(model, dir);
  auto cal = Calibration::Load(dir.path(), model);
  ASSERT_TRUE(cal.ok()) << cal.status().message();
  const auto layers = match::FindLayers(model);
  ASSERT_EQ(layers.size(), 7u);
  for (size_t i : {size_t{0}, size_t{3}, size_t{6}}) {  // l6 reads x0: from the cache
    std::string note;
    auto whole = (*cal)->Stats(layers[i], 0, &note);
    ASSERT_TRUE(whole.ok() && whole->has_value()) << note;
    EXPECT_EQ((*whole)->covariance.size(), static_cast<size_t>(kK * kK));
    ParkedStats parked;
    auto stats = (*cal)->Stats(layers[i], 0, &note, &parked);
    ASSERT_TRUE(stats.ok() && stats->has_value()) << note;
    ASSERT_TRUE(parked.parked());
    EXPECT_TRUE((*stats)->covariance.empty());
    EXPECT_EQ((*stats)->mean, (*whole)->mean);
    {
      StatsInUse in_use(parked, &**stats);
      ASSERT_TRUE(in_use.Load().ok());
      EXPECT_EQ(StatsInMemory(), 1);
      EXPECT_EQ((*stats)->covariance, (*whole)->covariance);
    }
    EXPECT_TRUE((*stats)->covariance.empty());
    EXPECT_EQ(StatsInMemory(), 0);
  }
}

}  // namespace
}  // namespace kfc::pipeline
