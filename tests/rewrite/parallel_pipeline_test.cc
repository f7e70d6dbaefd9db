// SPDX-License-Identifier: Apache-2.0
// The pipeline on several threads: reading, deciding and factorizing layers in parallel gives the
// same output bytes and the same report as one thread, in every mode; a model whose weights
// stay in their external file (read layer by layer) compresses to the same bytes as the same
// model loaded whole; and factors spilled as they are produced (CompressFile) give the same bytes
// as factors kept in memory (CompressModel, then SaveModel), and leave no file behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "kfc/io/external_data.h"
#include "kfc/io/file_digest.h"
#include "kfc/io/model_io.h"
#include "kfc/pipeline/compress.h"
#include "kfc/report/render.h"
#include "tests/support/test_util.h"
#include "tests/support/toy_options.h"

namespace kfc {
namespace {

namespace fs = std::filesystem;
using pipeline::ShapePolicy;
using testing::AddRandomInitializer;
using testing::ParseModelText;

const std::string kFashion = std::string(KFC_SOURCE_DIR) + "/testdata/fashion_mlp.onnx";
const std::string kDigits = std::string(KFC_SOURCE_DIR) + "/testdata/digits_mlp.onnx";

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Output {
  std::string model, report;
};

Output CompressWith(const onnx::ModelProto& model, pipeline::Options options, int threads) {
  options.threads = threads;
  auto result = pipeline::CompressModel(model, options);
  EXPECT_TRUE(result.ok()) << result.status().message();
  if (!result.ok()) return {};
  auto bytes = io::SerializeModel(result->model);
  auto json = report::RenderJson(result->report);
  EXPECT_TRUE(bytes.ok() && json.ok());
  return {*bytes, *json};
}

TEST(ParallelPipelineTest, AnyThreadCountGivesTheSameBytesInEveryMode) {
  auto model = io::LoadModel(kDigits);
  ASSERT_TRUE(model.ok()) << model.status().message();
  std::vector<std::pair<std::string, pipeline::Options>> modes(5);
  modes[0].first = "-r 4 (balanced)";
  modes[0].second.rank = 4;
  modes[1].first = "-r 4 --shape auto";
  modes[1].second.rank = 4;
  modes[1].second.shape = ShapePolicy{ShapePolicy::Kind::kAuto, 0, 0};
  modes[2].first = "--max-error 0.6";
  modes[2].second.max_error = 0.6;
  modes[3].first = "--ratio 0.1";
  modes[3].second.ratio = 0.1;
  modes[4].first = "--ratio 0.25 --shape balanced";
  modes[4].second.ratio = 0.25;
  modes[4].second.shape = ShapePolicy{ShapePolicy::Kind::kBalanced, 0, 0};
  for (auto& [name, options] : modes) {
    options.min_params = 0;  // all three layers
    const Output one = CompressWith(*model, options, 1);
    ASSERT_FALSE(one.model.empty()) << name;
    for (int threads : {2, 3}) {
      const Output many = CompressWith(*model, options, threads);
      EXPECT_TRUE(many.model == one.model) << name << ": " << threads << " threads";
      EXPECT_EQ(many.report, one.report) << name << ": " << threads << " threads";
    }
  }
}

// Layers large enough for the randomized SVD (R at least 1024 x 1024),
// whose products run in fixed blocks that idle threads help with: one big layer alone (every
// thread but one helps it), then several (helpers only in the tail). --threads 1 to 4 give the
// same bytes and report.
TEST(ParallelPipelineTest, BlockedProductsGiveTheSameBytesForAnyThreadCount) {
  auto one_layer = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 1024] x) => (float[N, 2048] y) {
  y = MatMul(x, W1)
})");
  AddRandomInitializer(&one_layer, "W1", {1024, 2048}, 11);
  auto several = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 1024] x) => (float[N, 1024] y) {
  h1 = MatMul(x, W1)
  h2 = MatMul(h1, W2)
  h3 = MatMul(h2, W3)
  y = MatMul(h3, W4)
})");
  AddRandomInitializer(&several, "W1", {1024, 2048}, 12);
  AddRandomInitializer(&several, "W2", {2048, 1024}, 13);
  AddRandomInitializer(&several, "W3", {1024, 1024}, 14);
  AddRandomInitializer(&several, "W4", {1024, 1024}, 15);
  for (const auto* model : {&one_layer, &several}) {
    pipeline::Options options = kfc::testing::ToyOptions();
    options.rank = 6;
    // A fixed shape (R is 1024 x 1024 or 1024 x 2048): balanced would compare tied shapes' exact
    // spectra, seconds of work that is not what this test is about.
    options.shape = ShapePolicy{ShapePolicy::Kind::kFixed, 32, 32};
    const Output one = CompressWith(*model, options, 1);
    ASSERT_FALSE(one.model.empty());
    for (int threads : {2, 3, 4}) {
      const Output many = CompressWith(*model, options, threads);
      EXPECT_TRUE(many.model == one.model) << threads << " threads";
      EXPECT_EQ(many.report, one.report) << threads << " threads";
    }
  }
}

TEST(ParallelPipelineTest, WeightsLeftInTheirFileGiveTheSameOutputAsWeightsLoadedWhole) {
  testing::TempDir dir;
  // The Fashion MLP with every initializer of over 64 KiB moved to an external file.
  auto model = io::LoadModel(kFashion);
  ASSERT_TRUE(model.ok());
  io::SaveOptions save;
  save.external_data = true;
  save.threshold = 64 * 1024 + 1;
  ASSERT_TRUE(io::SaveModel(&*model, dir.File("in.onnx"), save).ok());
  ASSERT_GT(fs::file_size(dir.File("in.onnx.data")), 2000000u);

  pipeline::Options options = kfc::testing::ToyOptions();
  options.rank = 8;
  options.exclude = {"^fc2$"};  // a layer kept dense: copied from file to file
  options.threads = 2;
  for (bool external_out : {false, true}) {
    options.save.external_data = external_out;
    const std::string sub = external_out ? "ext" : "inline";
    fs::create_directories(dir.File("lazy_" + sub));
    fs::create_directories(dir.File("whole_" + sub));
    auto lazy = pipeline::CompressFile(dir.File("in.onnx"), dir.File("lazy_" + sub + "/out.onnx"),
                                       options, false);
    ASSERT_TRUE(lazy.ok()) << lazy.status().message();
    // The reference: the same model loaded whole, through the library.
    auto whole = io::LoadModel(dir.File("in.onnx"));
    ASSERT_TRUE(whole.ok() && io::LoadExternalData(&*whole, dir.File("in.onnx")).ok());
    // Given the input file's digest, as CompressFile records it in the provenance.
    pipeline::Options same_input = options;
    same_input.input_sha256 = io::FileSha256(dir.File("in.onnx")).value();
    auto result = pipeline::CompressModel(*whole, same_input);
    ASSERT_TRUE(result.ok()) << result.status().message();
    ASSERT_TRUE(
        io::SaveModel(&result->model, dir.File("whole_" + sub + "/out.onnx"), options.save).ok());
    // The reports agree but for the paths and the file sizes (counted as if inline, from the
    // external tensors' dims, which differs from a serialized size by a few header bytes).
    auto comparable = [](report::Report r) {
      r.clear_input();
      r.clear_output();
      r.clear_output_written();
      r.clear_external_data_file();
      r.clear_external_data_automatic();
      r.clear_dry_run();
      r.mutable_totals()->clear_file_bytes_before();
      r.mutable_totals()->clear_file_bytes_after();
      r.mutable_totals()->clear_file_ratio();
      return report::RenderJson(r).value();
    };
    EXPECT_EQ(comparable(*lazy), comparable(result->report)) << sub;
    EXPECT_NEAR(lazy->totals().file_bytes_before(), result->report.totals().file_bytes_before(),
                1e-3 * result->report.totals().file_bytes_before());
    EXPECT_TRUE(ReadAll(dir.File("lazy_" + sub + "/out.onnx")) ==
                ReadAll(dir.File("whole_" + sub + "/out.onnx")))
        << sub;
    if (external_out) {
      EXPECT_TRUE(ReadAll(dir.File("lazy_ext/out.onnx.data")) ==
                  ReadAll(dir.File("whole_ext/out.onnx.data")));
    }
  }
}

// Large factors (128 KiB stacked constants at -r 64; 4 KiB, kept in memory, at -r 2) in the main
// graph and in an If branch; one weight read by two MatMuls (factorized once), two more with the
// same bytes (deduplicated by content: one at the same alpha, one at another); and one Gemm on W1
// whose alpha differs from 1 only in the 7th digit, so it needs constants of its own.
TEST(ParallelPipelineTest, SpilledFactorsGiveTheSameBytesAsFactorsInMemory) {
  onnx::ModelProto model = testing::ParseModelText(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[N, 256] x, bool c) => (float[N, 1024] y1, float[N, 1024] y2, float[N, 1024] y3,
                                    float[N, 1024] y4, float[N, 1024] y5, float[N, 1024] y6) {
      y1 = MatMul (x, W1)
      y2 = MatMul (x, W1)
      y3 = Gemm <alpha = 0.5> (x, W2)
      y4 = MatMul (x, W3)
      y5 = If (c) <then_branch = t () => (float[N, 1024] a) { a = MatMul (x, Wt) },
                   else_branch = e () => (float[N, 1024] b) { b = MatMul (x, W1) }>
      y6 = Gemm <alpha = 1.0000001> (x, W1)
    }
  )");
  testing::AddRandomInitializer(&model, "W1", {256, 1024}, 1);
  *model.mutable_graph()->add_initializer() = model.graph().initializer(0);
  model.mutable_graph()->mutable_initializer(1)->set_name("W2");
  *model.mutable_graph()->add_initializer() = model.graph().initializer(0);
  model.mutable_graph()->mutable_initializer(2)->set_name("W3");
  onnx::ModelProto branch;
  testing::AddRandomInitializer(&branch, "Wt", {256, 1024}, 2);
  *model.mutable_graph()->mutable_node(4)->mutable_attribute(0)->mutable_g()->add_initializer() =
      branch.graph().initializer(0);
  testing::TempDir dir;
  testing::WriteModel(model, dir.File("in.onnx"));

  for (int64_t rank : {64, 2}) {
    for (bool external_out : {false, true}) {
      if (rank == 2 && external_out) continue;
      pipeline::Options options = kfc::testing::ToyOptions();
      options.rank = rank;
      options.threads = 2;
      options.save.external_data = external_out;
      const std::string sub = std::to_string(rank) + (external_out ? "_ext" : "_inline");
      fs::create_directories(dir.File("spilled_" + sub));
      fs::create_directories(dir.File("memory_" + sub));
      auto spilled = pipeline::CompressFile(
          dir.File("in.onnx"), dir.File("spilled_" + sub + "/out.onnx"), options, false);
      ASSERT_TRUE(spilled.ok()) << spilled.status().message();
      // Given the input file's digest, as CompressFile records it in the provenance.
      pipeline::Options same_input = options;
      same_input.input_sha256 = io::FileSha256(dir.File("in.onnx")).value();
      auto result = pipeline::CompressModel(model, same_input);
      ASSERT_TRUE(result.ok()) << result.status().message();
      EXPECT_EQ(result->report.layers(1).shares_factors_with(),
                result->report.layers(0).node_name());
      for (const auto& layer : result->report.layers()) {
        if (layer.op_type() == "Gemm" && layer.weight_name() == "W1") {
          EXPECT_GT(layer.params_after(), 0) << "alpha 1.0000001 needs constants of its own";
        }
      }
      ASSERT_TRUE(
          io::SaveModel(&result->model, dir.File("memory_" + sub + "/out.onnx"), options.save)
              .ok());
      std::vector<std::string> files = {"out.onnx"};
      if (external_out) files.push_back("out.onnx.data");
      for (const auto& file : files) {
        EXPECT_TRUE(ReadAll(dir.File("spilled_" + sub + "/" + file)) ==
                    ReadAll(dir.File("memory_" + sub + "/" + file)))
            << sub << " " << file;
      }
      // W3 holds W1's bytes: its layer uses W1's constants (the spill compares content).
      auto written = io::LoadModel(dir.File("spilled_" + sub + "/out.onnx"));
      ASSERT_TRUE(written.ok()) << written.status().message();
      std::map<std::string, std::vector<std::string>> inputs;
      for (const auto& node : written->graph().node()) {
        inputs[node.name()].assign(node.input().begin(), node.input().end());
      }
      EXPECT_EQ(inputs["y4/kfc_matmul_1"][1], inputs["y1/kfc_matmul_1"][1]) << sub;
      EXPECT_EQ(inputs["y4/kfc_matmul_2"][0], inputs["y1/kfc_matmul_2"][0]) << sub;
      EXPECT_NE(inputs["y3/kfc_matmul_2"][0], inputs["y1/kfc_matmul_2"][0]) << "alpha 0.5";
      EXPECT_NE(inputs["y6/kfc_matmul_2"][0], inputs["y1/kfc_matmul_2"][0]) << "alpha 1.0000001";
      std::vector<std::string> listed;
      for (const auto& e : fs::directory_iterator(dir.File("spilled_" + sub))) {
        listed.push_back(e.path().filename().string());
      }
      std::sort(listed.begin(), listed.end());
      EXPECT_EQ(listed, files) << "nothing but the output is left in its folder";
      result->report.clear_input();
      spilled->clear_input();
      spilled->clear_output();
      spilled->clear_output_written();
      spilled->clear_external_data_file();
      spilled->clear_dry_run();
      EXPECT_EQ(report::RenderJson(*spilled).value(), report::RenderJson(result->report).value())
          << sub;
    }
  }
}

}  // namespace
}  // namespace kfc
