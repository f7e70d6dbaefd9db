// SPDX-License-Identifier: Apache-2.0
// Never slower than dense: over a sweep of weight shapes, modes (-r, --max-error, --ratio, plans)
// and shape policies, no compressed layer costs more MACs per input row than the dense layer,
// unless allow_slower; where nothing qualifies the layer is skipped as `slower_than_dense`; and
// --objective macs gives no more MACs than params at the same error target.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kfc/kron/factorize.h"
#include "kfc/pipeline/compress.h"
#include "tests/support/test_util.h"
#include "tests/support/toy_options.h"

namespace kfc {
namespace {

using pipeline::Objective;
using pipeline::ShapePolicy;

// y = MatMul(x, W), W K x N seeded uniform: a spread spectrum, where slow shapes tempt most.
onnx::ModelProto RandomMatMul(int64_t K, int64_t N, uint32_t seed) {
  auto model = testing::ParseModelText(
      "<ir_version: 8, opset_import: [\"\" : 13]>\nagraph (float[B, " + std::to_string(K) +
      "] x) => (float[B, " + std::to_string(N) + "] y) {\n  y = MatMul(x, W)\n}");
  model.mutable_graph()->mutable_node(0)->set_name("mm");
  testing::AddRandomInitializer(&model, "W", {K, N}, seed);
  return model;
}

std::vector<std::pair<std::string, ShapePolicy>> Policies() {
  return {{"balanced", {ShapePolicy::Kind::kBalanced, 0, 0}},
          {"lowrank", {ShapePolicy::Kind::kLowRank, 0, 0}},
          {"auto", {ShapePolicy::Kind::kAuto, 0, 0}},
          {"16x2", {ShapePolicy::Kind::kFixed, 16, 2}},
          {"2x16", {ShapePolicy::Kind::kFixed, 2, 16}}};
}

struct ModeRun {
  std::string label;
  pipeline::Options options;
};

std::vector<ModeRun> Modes() {
  std::vector<ModeRun> runs;
  for (const auto& [name, policy] : Policies()) {
    for (int64_t r : {1, 8, 32, 100}) {
      ModeRun run{"-r " + std::to_string(r) + " --shape " + name, kfc::testing::ToyOptions()};
      run.options.rank = r;
      run.options.shape = policy;
      runs.push_back(run);
    }
    for (double e : {0.3, 0.5, 0.7}) {
      for (Objective obj : {Objective::kParams, Objective::kMacs}) {
        ModeRun run{"--max-error " + std::to_string(e) + " --shape " + name +
                        (obj == Objective::kMacs ? " --objective macs" : ""),
                    kfc::testing::ToyOptions()};
        run.options.max_error = e;
        run.options.shape = policy;
        run.options.objective = obj;
        runs.push_back(run);
      }
    }
    for (double f : {0.3, 0.6, 0.9}) {
      ModeRun run{"--ratio " + std::to_string(f) + " --shape " + name, kfc::testing::ToyOptions()};
      run.options.ratio = f;
      run.options.shape = policy;
      runs.push_back(run);
    }
  }
  for (const char* text : {"layers { name: \"mm\" rank: 40 shape: \"8x8\" }",
                           "layers { name: \"mm\" max_error: 0.3 shape: \"balanced\" }",
                           "layers { name: \"mm\" max_error: 0.5 shape: \"auto\" }"}) {
    auto plan = pipeline::Plan::Parse(text, false, "plan");
    EXPECT_TRUE(plan.ok()) << plan.status().message();
    if (!plan.ok()) continue;
    ModeRun run{std::string("--plan ") + text, kfc::testing::ToyOptions()};
    run.options.plan = *plan;
    runs.push_back(run);
  }
  return runs;
}

pipeline::Result Compress(const onnx::ModelProto& model, pipeline::Options options) {
  options.min_params = 0;
  auto result = pipeline::CompressModel(model, options);
  EXPECT_TRUE(result.ok()) << result.status().message();
  return result.ok() ? std::move(result).value() : pipeline::Result{};
}

TEST(NeverSlowerTest, NoModeOrPolicyYieldsMoreMacsThanDense) {
  int compressed = 0, slower_skips = 0, slower_when_allowed = 0;
  for (const auto& [K, N] :
       std::vector<std::pair<int64_t, int64_t>>{{64, 64}, {64, 128}, {128, 96}}) {
    const onnx::ModelProto model = RandomMatMul(K, N, 11);
    for (const ModeRun& run : Modes()) {
      const std::string where = std::to_string(K) + "x" + std::to_string(N) + " " + run.label;
      const pipeline::Result result = Compress(model, run.options);
      ASSERT_EQ(result.report.layers_size(), 1) << where;
      const report::LayerReport& l = result.report.layers(0);
      if (l.compressed()) {
        ++compressed;
        EXPECT_LE(l.macs_after(), l.macs_before()) << where;
        const kron::KronShape shape{static_cast<int64_t>(l.k1()), static_cast<int64_t>(l.n1()),
                                    static_cast<int64_t>(l.k2()), static_cast<int64_t>(l.n2())};
        EXPECT_EQ(l.macs_after(), l.rank() * kron::MacsPerTerm(shape)) << where;
      } else if (l.skip_reason() == "slower_than_dense") {
        ++slower_skips;
        EXPECT_FALSE(l.skip_detail().empty()) << where;
      }
      EXPECT_LE(result.report.totals().layer_macs_after(),
                result.report.totals().layer_macs_before())
          << where;
      // The guard must matter: without it some of these runs are slower than dense.
      pipeline::Options unguarded = run.options;
      unguarded.allow_slower = true;
      const pipeline::Result loose = Compress(model, unguarded);
      if (loose.report.layers(0).compressed() &&
          loose.report.layers(0).macs_after() > loose.report.layers(0).macs_before()) {
        ++slower_when_allowed;
      }
    }
  }
  EXPECT_GT(compressed, 50);
  EXPECT_GT(slower_skips, 0);
  EXPECT_GT(slower_when_allowed, 10);
}

// The case, scaled down: a random 256 x 512 weight at --max-error 0.3 got 16x2 (x) 16x256
// at rank 29 (252416 MACs per row, dense 131072); a shape that is not slower meets the target.
TEST(NeverSlowerTest, MaxErrorPicksAShapeThatIsNotSlower) {
  const onnx::ModelProto model = RandomMatMul(256, 512, 0);
  pipeline::Options options = kfc::testing::ToyOptions();
  options.max_error = 0.3;
  options.allow_slower = true;
  const pipeline::Result loose = Compress(model, options);
  ASSERT_TRUE(loose.report.layers(0).compressed());
  EXPECT_GT(loose.report.layers(0).macs_after(), loose.report.layers(0).macs_before())
      << "the unguarded choice should be slower, or this test proves nothing";
  options.allow_slower = false;
  const pipeline::Result guarded = Compress(model, options);
  const report::LayerReport& l = guarded.report.layers(0);
  ASSERT_TRUE(l.compressed()) << l.skip_reason() << ": " << l.skip_detail();
  EXPECT_LE(l.macs_after(), l.macs_before());
  EXPECT_LE(l.relative_error(), 0.3);
  EXPECT_LT(l.params_after(), l.params_before());
}

TEST(NeverSlowerTest, ObjectiveMacsNeverCostsMoreMacsThanParams) {
  for (const auto& [K, N] : std::vector<std::pair<int64_t, int64_t>>{{64, 128}, {128, 96}}) {
    const onnx::ModelProto model = RandomMatMul(K, N, 5);
    for (double e : {0.2, 0.5, 0.8}) {
      pipeline::Options options;
      options.max_error = e;
      const pipeline::Result by_params = Compress(model, options);
      options.objective = Objective::kMacs;
      const pipeline::Result by_macs = Compress(model, options);
      const auto& p = by_params.report.layers(0);
      const auto& m = by_macs.report.layers(0);
      ASSERT_EQ(p.compressed(), m.compressed()) << K << "x" << N << " e " << e;
      if (!m.compressed()) continue;
      EXPECT_LE(m.macs_after(), p.macs_after()) << K << "x" << N << " e " << e;
      EXPECT_GE(m.params_after(), p.params_after()) << K << "x" << N << " e " << e;
      EXPECT_LE(m.relative_error(), e);
    }
  }
}

// -r at a fixed shape whose rank is slower than dense: skipped, with the rank that would not be.
TEST(NeverSlowerTest, FixedShapeAtASlowRankIsSkipped) {
  const onnx::ModelProto model = RandomMatMul(64, 64, 3);
  pipeline::Options options = kfc::testing::ToyOptions();
  options.rank = 16;  // 8x8 (x) 8x8: 2048 < 4096 parameters, but 16 * 1024 > 4096 MACs
  options.shape = ShapePolicy{ShapePolicy::Kind::kFixed, 8, 8};
  options.skip_unprofitable = true;
  const pipeline::Result result = Compress(model, options);
  const report::LayerReport& l = result.report.layers(0);
  EXPECT_FALSE(l.compressed());
  EXPECT_EQ(l.skip_reason(), "slower_than_dense");
  EXPECT_NE(l.skip_detail().find("rank <= 4 would not be slower"), std::string::npos)
      << l.skip_detail();
}

// With the node cost (--node-cost, the command line's default), "slower" is judged at batch 1:
// each shape's MACs plus its extra nodes. Over the modes and policies, no layer costs more than
// dense that way; a 64x64 layer (4096 MACs) has no form that gains, so it always stays dense.
TEST(NeverSlowerTest, NodeCostCountsEachShapesExtraNodes) {
  int compressed = 0, kronecker = 0;
  for (const auto& [K, N] :
       std::vector<std::pair<int64_t, int64_t>>{{64, 64}, {256, 512}, {512, 512}}) {
    const onnx::ModelProto model = RandomMatMul(K, N, 13);
    for (ModeRun run : Modes()) {
      if (run.options.plan) continue;  // its entries name 64x64-sized shapes
      run.options.node_cost_macs = kron::kNodeCostMacs;
      const std::string where = std::to_string(K) + "x" + std::to_string(N) + " " + run.label;
      const pipeline::Result result = Compress(model, run.options);
      const report::LayerReport& l = result.report.layers(0);
      if (!l.compressed()) {
        EXPECT_NE(l.skip_reason(), "") << where;
        continue;
      }
      ++compressed;
      EXPECT_GT(K * N, 4096) << where;
      const kron::KronShape shape{static_cast<int64_t>(l.k1()), static_cast<int64_t>(l.n1()),
                                  static_cast<int64_t>(l.k2()), static_cast<int64_t>(l.n2())};
      const bool low = kron::IsLowRankShape(shape, K, N);
      kronecker += !low;
      EXPECT_LE(l.macs_after() + (low ? 1 : 6) * kron::kNodeCostMacs, l.macs_before()) << where;
    }
  }
  EXPECT_GT(compressed, 50);
  EXPECT_GT(kronecker, 10);  // the larger layers still get Kronecker shapes
}

// -r with the default policy: the balanced shape, slower than dense at batch 1 on a 64x256 layer,
// becomes low rank at the parameters it would take, and the report says so; a forced shape (here
// the same balanced policy, asked for) is not replaced: the layer stays dense.
TEST(NeverSlowerTest, DefaultShapeSlowerAtBatchOneBecomesLowRank) {
  const onnx::ModelProto model = RandomMatMul(64, 256, 7);
  pipeline::Options options;  // the library's default node cost is the command line's
  ASSERT_EQ(options.node_cost_macs, kron::kNodeCostMacs);
  options.rank = 4;
  const pipeline::Result result = Compress(model, options);
  const report::LayerReport& l = result.report.layers(0);
  ASSERT_TRUE(l.compressed()) << l.skip_reason() << ": " << l.skip_detail();
  EXPECT_TRUE(kron::IsLowRankShape({static_cast<int64_t>(l.k1()), static_cast<int64_t>(l.n1()),
                                    static_cast<int64_t>(l.k2()), static_cast<int64_t>(l.n2())},
                                   64, 256));
  EXPECT_EQ(l.rank(), 3);  // 4 terms of 8x16 (x) 8x16 take 1024 parameters; 1024 / 320 = 3
  EXPECT_EQ(l.shape_note().rfind("low rank instead of balanced: rank 4 of ", 0), 0)
      << l.shape_note();
  // Without the node cost the balanced shape stays (12288 <= 16384 MACs).
  options.node_cost_macs = 0;
  const pipeline::Result plain = Compress(model, options);
  EXPECT_FALSE(kron::IsLowRankShape({static_cast<int64_t>(plain.report.layers(0).k1()),
                                     static_cast<int64_t>(plain.report.layers(0).n1()),
                                     static_cast<int64_t>(plain.report.layers(0).k2()),
                                     static_cast<int64_t>(plain.report.layers(0).n2())},
                                    64, 256));
  EXPECT_EQ(plain.report.layers(0).shape_note(), "");
  options.node_cost_macs = kron::kNodeCostMacs;
  options.shape = ShapePolicy{ShapePolicy::Kind::kBalanced, 0, 0};
  const pipeline::Result forced = Compress(model, options);
  EXPECT_EQ(forced.report.layers(0).skip_reason(), "slower_than_dense");
  EXPECT_NE(forced.report.layers(0).skip_detail().find("+ 6 more nodes (49152 MACs at batch 1)"),
            std::string::npos)
      << forced.report.layers(0).skip_detail();
}

}  // namespace
}  // namespace kfc
