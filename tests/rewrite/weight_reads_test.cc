// SPDX-License-Identifier: Apache-2.0
// How often the pipeline reads a weight, counted by the bytes the ExternalDataReader reads from a
// model whose weights all stay in their file: once per factorization in the modes decided from a
// layer's dims (-r with one shape to take: the finite check is made on that read), and at most
// twice per layer in the others (once to check it is finite and decide, once to factorize); and a
// NaN or Inf weight in a later layer leaves
// that layer dense with the same skip reason and detail, whatever the mode and thread count (the
// library's twin of a run whose report lists the layer as skipped, exit 0).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "kfc/io/external_data.h"
#include "kfc/io/model_io.h"
#include "kfc/pipeline/compress.h"
#include "kfc/report/render.h"
#include "tests/support/test_util.h"
#include "tests/support/toy_options.h"

namespace kfc {
namespace {

using pipeline::ShapePolicy;

constexpr int64_t kWeightBytes = 64 * 64 * 4;

// x -> W1 -> W2 -> W3, and W3 read by a second MatMul: four layers, three 64 x 64 float32 weights.
onnx::ModelProto ChainModel() {
  onnx::ModelProto model = testing::ParseModelText(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[N, 64] x) => (float[N, 64] y, float[N, 64] z) {
      h1 = MatMul (x, W1)
      h2 = MatMul (h1, W2)
      y = MatMul (h2, W3)
      z = MatMul (h1, W3)
    }
  )");
  testing::AddRandomInitializer(&model, "W1", {64, 64}, 1);
  testing::AddRandomInitializer(&model, "W2", {64, 64}, 2);
  testing::AddRandomInitializer(&model, "W3", {64, 64}, 3);
  for (int i = 0; i < model.graph().node_size(); ++i) {
    model.mutable_graph()->mutable_node(i)->set_name("l" + std::to_string(i + 1));
  }
  return model;
}

// `model` written to dir/model.onnx with every weight in dir/w.data.
std::string WriteExternal(onnx::ModelProto model, const testing::TempDir& dir) {
  std::string data;
  for (auto& t : *model.mutable_graph()->mutable_initializer()) {
    data += testing::MakeExternal(&t, "w.data", static_cast<int64_t>(data.size()), kWeightBytes);
  }
  testing::WriteText(data, dir.File("w.data"));
  testing::WriteModel(model, dir.File("model.onnx"));
  return dir.File("model.onnx");
}

// Modes whose decision reads no weight (-r with a single shape), by name.
bool DecidedByDims(const std::string& mode) {
  return mode.rfind("-r 4 --shape lowrank", 0) == 0 || mode.rfind("-r 4 --shape 8x8", 0) == 0;
}

std::vector<std::pair<std::string, pipeline::Options>> Modes() {
  std::vector<std::pair<std::string, pipeline::Options>> modes(
      9, {std::string(), kfc::testing::ToyOptions()});
  modes[0].first = "-r 4 (balanced: tied shapes compared)";
  modes[0].second.rank = 4;
  modes[1].first = "-r 4 --shape lowrank (one shape)";
  modes[1].second.rank = 4;
  modes[1].second.shape = ShapePolicy{ShapePolicy::Kind::kLowRank, 0, 0};
  modes[2].first = "-r 4 --shape auto";
  modes[2].second.rank = 4;
  modes[2].second.shape = ShapePolicy{ShapePolicy::Kind::kAuto, 0, 0};
  modes[3].first = "--max-error 0.9";
  modes[3].second.max_error = 0.9;
  modes[4].first = "--max-error 0.9 --shape balanced";
  modes[4].second.max_error = 0.9;
  modes[4].second.shape = ShapePolicy{ShapePolicy::Kind::kBalanced, 0, 0};
  modes[5].first = "--ratio 0.3";
  modes[5].second.ratio = 0.3;
  modes[6].first = "--ratio 0.3 --shape balanced";
  modes[6].second.ratio = 0.3;
  modes[6].second.shape = ShapePolicy{ShapePolicy::Kind::kBalanced, 0, 0};
  modes[7].first = "--ratio 0.9 (some weights kept dense)";
  modes[7].second.ratio = 0.9;
  modes[8].first = "-r 4 --shape 8x8";
  modes[8].second.rank = 4;
  modes[8].second.shape = ShapePolicy{ShapePolicy::Kind::kFixed, 8, 8};
  for (auto& [name, o] : modes) o.min_params = 0;
  return modes;
}

struct Counted {
  int64_t reads = -1;  // weights read, counted in 64 x 64 float32 weights
  report::Report report;
};

Counted CompressCounting(const std::string& path, pipeline::Options options) {
  auto model = io::LoadModel(path);
  EXPECT_TRUE(model.ok()) << model.status().message();
  if (!model.ok()) return {};
  io::ExternalDataReader reader(path);
  auto prepared = io::PrepareExternalData(&*model, &reader, 1024);
  EXPECT_TRUE(prepared.ok()) << prepared.status().message();
  if (!prepared.ok()) return {};
  EXPECT_EQ(prepared->kept, 3);
  const int64_t before = reader.bytes_read();
  options.external_reader = &reader;
  auto result = pipeline::CompressModel(std::move(*model), options);
  EXPECT_TRUE(result.ok()) << result.status().message();
  if (!result.ok()) return {};
  const int64_t bytes = reader.bytes_read() - before;
  EXPECT_EQ(bytes % kWeightBytes, 0) << bytes;
  return {bytes / kWeightBytes, result->report};
}

// Distinct factorizations of the report: its compressed layers but those sharing an earlier
// layer's factors. Each reads its weight once more.
int64_t Factorizations(const report::Report& r) {
  int64_t n = 0;
  for (const auto& l : r.layers()) n += l.skip_reason().empty() && l.shares_factors_with().empty();
  return n;
}

TEST(WeightReadsTest, EachLayerReadsItsWeightAtMostTwiceInEveryMode) {
  testing::TempDir dir;
  const std::string path = WriteExternal(ChainModel(), dir);
  for (const auto& [name, mode] : Modes()) {
    for (int threads : {1, 2}) {
      pipeline::Options o = mode;
      o.threads = threads;
      // All four layers: one read per distinct factorization (the two layers on W3 share
      // theirs), and, unless decided from dims, one read each to check and decide.
      const int64_t deciding_reads = DecidedByDims(name) ? 0 : 1;
      const Counted all = CompressCounting(path, o);
      ASSERT_EQ(all.report.layers_size(), 4) << name;
      EXPECT_GE(Factorizations(all.report), 1) << name;
      EXPECT_EQ(all.reads, 4 * deciding_reads + Factorizations(all.report)) << name;
      if (DecidedByDims(name)) {
        EXPECT_EQ(all.reads, 3) << name;  // each weight once
      }
      // One layer at a time: one read of its weight when decided from dims, else at most two.
      for (const char* weight : {"^W1$", "^W2$"}) {
        o.include = {weight};
        const Counted one = CompressCounting(path, o);
        EXPECT_GE(one.reads, 1) << name << " " << weight;
        EXPECT_LE(one.reads, 1 + deciding_reads) << name << " " << weight;
        EXPECT_EQ(one.reads, deciding_reads + Factorizations(one.report)) << name << " " << weight;
      }
      o.include.clear();
    }
  }
}

TEST(WeightReadsTest, ANonFiniteWeightInALaterLayerLeavesItDenseInEveryMode) {
  onnx::ModelProto model = ChainModel();
  // W2 (the second layer): an infinity at row 3, column 5; W3 (the last two): a NaN at row 62,
  // column 7.
  model.mutable_graph()->mutable_initializer(1)->set_float_data(
      3 * 64 + 5, std::numeric_limits<float>::infinity());
  model.mutable_graph()->mutable_initializer(2)->set_float_data(
      62 * 64 + 7, std::numeric_limits<float>::quiet_NaN());
  testing::TempDir dir;
  const std::string path = WriteExternal(model, dir);
  for (const auto& [name, mode] : Modes()) {
    std::string first_report;
    for (int threads : {1, 2, 3}) {
      pipeline::Options o = mode;
      o.threads = threads;
      const Counted run = CompressCounting(path, o);
      const report::Report& r = run.report;
      ASSERT_EQ(r.layers_size(), 4) << name;
      EXPECT_NE(r.layers(0).skip_reason(), "non_finite_weight") << name;
      EXPECT_EQ(r.layers(1).skip_reason(), "non_finite_weight") << name;
      EXPECT_EQ(r.layers(1).skip_detail(), "weight has an infinity at row 3, column 5") << name;
      for (int i : {2, 3}) {
        EXPECT_EQ(r.layers(i).skip_reason(), "non_finite_weight") << name << " layer " << i;
        EXPECT_EQ(r.layers(i).skip_detail(), "weight has a NaN at row 62, column 7")
            << name << " layer " << i;
      }
      // The non-finite weights are read once (checked, never decided nor factorized); decided
      // from dims, every weight is read once, in factorize, where W2 and W3 fail the check.
      if (DecidedByDims(name)) {
        EXPECT_EQ(Factorizations(r), 1) << name;
        EXPECT_EQ(run.reads, 3) << name;
      } else {
        EXPECT_EQ(run.reads, 4 + Factorizations(r)) << name;
      }
      const std::string json = report::RenderJson(r).value();
      if (threads == 1) first_report = json;
      EXPECT_EQ(json, first_report) << name << ": " << threads << " threads";
    }
  }
}

// A weight large enough for the randomized SVD (1024 x 1024: R is 1024 x 1024) takes the path that
// reads W a block at a time into R and checks it on the way: a NaN there leaves the layer dense
// with the same detail as on the other paths, whether the check is that read (decided from dims)
// or the decision's, and W is read at most once.
TEST(WeightReadsTest, ANonFiniteLargeWeightIsFoundOnTheBlockReadPath) {
  onnx::ModelProto model = testing::ParseModelText(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[N, 1024] x) => (float[N, 1024] y) {
      y = MatMul (x, W)
    }
  )");
  testing::AddRandomInitializer(&model, "W", {1024, 1024}, 4);
  model.mutable_graph()->mutable_node(0)->set_name("big");
  model.mutable_graph()->mutable_initializer(0)->set_float_data(
      700 * 1024 + 3, std::numeric_limits<float>::quiet_NaN());
  onnx::TensorProto& w = *model.mutable_graph()->mutable_initializer(0);
  testing::TempDir dir;
  testing::WriteText(testing::MakeExternal(&w, "w.data", 0, int64_t{1024} * 1024 * 4),
                     dir.File("w.data"));
  testing::WriteModel(model, dir.File("model.onnx"));
  for (const bool by_dims : {true, false}) {
    pipeline::Options o = kfc::testing::ToyOptions();
    o.rank = 4;
    o.min_params = 0;
    if (by_dims) o.shape = ShapePolicy{ShapePolicy::Kind::kFixed, 32, 32};
    auto loaded = io::LoadModel(dir.File("model.onnx"));
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    io::ExternalDataReader reader(dir.File("model.onnx"));
    ASSERT_TRUE(io::PrepareExternalData(&*loaded, &reader, 1024).ok());
    o.external_reader = &reader;
    auto result = pipeline::CompressModel(std::move(*loaded), o);
    ASSERT_TRUE(result.ok()) << result.status().message();
    const report::Report& r = result->report;
    ASSERT_EQ(r.layers_size(), 1);
    EXPECT_EQ(r.layers(0).skip_reason(), "non_finite_weight") << by_dims;
    EXPECT_EQ(r.layers(0).skip_detail(), "weight has a NaN at row 700, column 3") << by_dims;
    // Decided from dims, the block read stops after the block of 32 rows holding row 700 (the
    // 22nd); otherwise the decision's whole read finds it, and the layer is never factorized.
    EXPECT_EQ(reader.bytes_read(), (by_dims ? 22 * 32 : 1024) * int64_t{1024} * 4) << by_dims;
  }
}

}  // namespace
}  // namespace kfc
