// SPDX-License-Identifier: Apache-2.0
// The frontier cut (pipeline/runner_cut.h): which tensors are the frontier of small graphs (a
// chain with a prefix that no layer changes, a branch that rejoins, If nodes before and after the
// first layer, an output that depends on no layer), the cut model of the original and of a
// rewritten version (nodes, inputs, initializers, outputs; it passes the model checks), and the
// joining of per-batch .npy files.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "kfc/io/npy.h"
#include "kfc/io/temp_dir.h"
#include "kfc/pipeline/compress.h"
#include "kfc/pipeline/pass_runner.h"
#include "tests/support/test_util.h"

namespace kfc::pipeline {
namespace {

using Strings = std::vector<std::string>;
using Set = std::set<std::string>;

template <typename C>
Set AsSet(const C& c) {
  return Set(c.begin(), c.end());
}

std::vector<std::string> Ops(const onnx::ModelProto& m) {
  std::vector<std::string> out;
  for (const auto& n : m.graph().node()) out.push_back(n.op_type());
  return out;
}

std::vector<std::string> Names(const google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>& v) {
  std::vector<std::string> out;
  for (const auto& i : v) out.push_back(i.name());
  return out;
}

std::vector<std::string> Initializers(const onnx::ModelProto& m) {
  std::vector<std::string> out;
  for (const auto& t : m.graph().initializer()) out.push_back(t.name());
  return out;
}

// The frontier of `m` and its cut for y: the recorded tensors, nodes before the cut, the cut's
// ops and inputs; the cut passes the model checks.
void ExpectCut(const onnx::ModelProto& m, const Strings& recorded, int before, const Strings& ops,
               const Strings& inputs) {
  auto f = FindFrontier(m);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->recorded, recorded);
  EXPECT_EQ(f->nodes_before, before);
  auto cut = BuildCutModel(m, *f, {"y"});
  ASSERT_TRUE(cut.ok()) << cut.status().message();
  EXPECT_EQ(Ops(*cut), ops);
  EXPECT_EQ(Names(cut->graph().input()), inputs);
  EXPECT_TRUE(CheckModel(*cut, "cut").ok());
}

// x -> Relu -> Mul (the prefix) -> MatMul W1 -> Relu -> MatMul W2 -> y.
onnx::ModelProto Chain() {
  auto m = testing::ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 16] x) => (float[N, 16] y) {
  a = Relu(x)
  b = Mul(a, a)
  c = MatMul(b, W1)
  d = Relu(c)
  y = MatMul(d, W2)
})");
  testing::AddRandomInitializer(&m, "W1", {16, 16}, 1);
  testing::AddRandomInitializer(&m, "W2", {16, 16}, 2);
  return m;
}

TEST(FrontierTest, ChainWithAPrefixIsCutAfterThePrefix) {
  const onnx::ModelProto m = Chain();
  auto f = FindFrontier(m);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->recorded, (Strings{"b"}));
  EXPECT_EQ(AsSet(f->before), (Set{"a", "b"}));
  EXPECT_EQ(f->nodes_before, 2);
  EXPECT_EQ(f->nodes_after, 3);
  const auto& dims = f->types.at("b").tensor_type().shape();
  ASSERT_EQ(dims.dim_size(), 2);
  EXPECT_TRUE(dims.dim(0).has_dim_param());
  EXPECT_EQ(dims.dim(1).dim_value(), 16);

  auto cut = BuildCutModel(m, *f, {"y"});
  ASSERT_TRUE(cut.ok()) << cut.status().message();
  EXPECT_EQ(Ops(*cut), (Strings{"MatMul", "Relu", "MatMul"}));
  EXPECT_EQ(Names(cut->graph().input()), (Strings{"b"}));
  EXPECT_EQ(Names(cut->graph().output()), (Strings{"y"}));
  EXPECT_EQ(AsSet(Initializers(*cut)), (Set{"W1", "W2"}));
  EXPECT_EQ(cut->ir_version(), m.ir_version());
  EXPECT_TRUE(CheckModel(*cut, "cut").ok());

  // Only what the requested tensor needs.
  auto first = BuildCutModel(m, *f, {"c"});
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(Ops(*first), (Strings{"MatMul"}));
  EXPECT_EQ(Initializers(*first), (Strings{"W1"}));

  // A tensor made before the cut is not made by it.
  EXPECT_EQ(BuildCutModel(m, *f, {"a"}).status().code(), StatusCode::kInvalidArgument);
}

// Shape inference for the frontier runs on a copy without the values of large float weights (a
// large inline model is not copied whole): their dims still give the types after them, and a
// Reshape's int64 shape initializer keeps its values.
TEST(FrontierTest, LargeWeightsAreInferredFromTheirDims) {
  auto m = testing::ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 64] x) => (float[N, 8, 8] y) {
  a = Relu(x)
  c = MatMul(a, W)
  y = Reshape(c, s)
})");
  testing::AddRandomInitializer(&m, "W", {64, 64}, 3);  // 16 KiB
  onnx::TensorProto* s = m.mutable_graph()->add_initializer();
  s->set_name("s");
  s->set_data_type(onnx::TensorProto::INT64);
  s->add_dims(3);
  for (int64_t d : {-1, 8, 8}) s->add_int64_data(d);
  auto f = FindFrontier(m);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->recorded, (Strings{"a"}));
  const auto& c = f->known_types.at("c").tensor_type().shape();
  ASSERT_EQ(c.dim_size(), 2);
  EXPECT_EQ(c.dim(1).dim_value(), 64);
  const auto& y = f->known_types.at("y").tensor_type().shape();
  ASSERT_EQ(y.dim_size(), 3);
  EXPECT_EQ(y.dim(2).dim_value(), 8);
}

TEST(FrontierTest, ARewrittenVersionIsCutAtTheSameFrontier) {
  onnx::ModelProto m = Chain();
  auto f = FindFrontier(m);
  ASSERT_TRUE(f.ok()) << f.status().message();
  // W1's layer replaced by two MatMuls (new names), as a rewrite does; its output name stays.
  onnx::ModelProto v = m;
  auto* g = v.mutable_graph();
  onnx::NodeProto* layer = g->mutable_node(2);
  layer->set_input(1, "U");
  layer->set_output(0, "kfc_t");
  onnx::NodeProto second = *layer;
  second.set_name("kfc_second");
  second.set_input(0, "kfc_t");
  second.set_input(1, "V");
  second.set_output(0, "c");
  *g->mutable_node()->Add() = second;
  for (int i = g->node_size() - 1; i > 3; --i) g->mutable_node()->SwapElements(i, i - 1);
  testing::AddRandomInitializer(&v, "U", {16, 4}, 3);
  testing::AddRandomInitializer(&v, "V", {4, 16}, 4);
  auto cut = BuildCutModel(v, *f, {"y"});
  ASSERT_TRUE(cut.ok()) << cut.status().message();
  EXPECT_EQ(Ops(*cut), (Strings{"MatMul", "MatMul", "Relu", "MatMul"}));
  EXPECT_EQ(AsSet(Initializers(*cut)), (Set{"W2", "U", "V"}));
  EXPECT_EQ(Names(cut->graph().input()), (Strings{"b"}));
  EXPECT_TRUE(CheckModel(*cut, "cut").ok());
}

TEST(FrontierTest, AnExposedOutputWithoutAShapeGetsItsSourcesType) {
  onnx::ModelProto m = Chain();
  auto f = FindFrontier(m);
  ASSERT_TRUE(f.ok()) << f.status().message();
  // As compensation exposes a stage's input: an Identity output typed with its dtype only.
  onnx::ModelProto v = m;
  onnx::NodeProto* id = v.mutable_graph()->add_node();
  id->set_op_type("Identity");
  id->add_input("c");
  id->add_output("kfc_exposed");
  onnx::ValueInfoProto* out = v.mutable_graph()->add_output();
  out->set_name("kfc_exposed");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  auto cut = BuildCutModel(v, *f, {"kfc_exposed"});
  ASSERT_TRUE(cut.ok()) << cut.status().message();
  EXPECT_EQ(Ops(*cut), (Strings{"MatMul", "Identity"}));
  ASSERT_EQ(cut->graph().output_size(), 1);
  const auto& shape = cut->graph().output(0).type().tensor_type().shape();
  ASSERT_EQ(shape.dim_size(), 2);
  EXPECT_EQ(shape.dim(1).dim_value(), 16);
  EXPECT_TRUE(CheckModel(*cut, "cut").ok());
}

TEST(FrontierTest, ABranchThatRejoinsIsFedAndShapesAreRecomputed) {
  auto m = testing::ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 16] x) => (float[N, 16] y) {
  a = Relu(x)
  s = Shape(a)
  h = MatMul(a, W)
  r = Add(h, a)
  y = Reshape(r, s)
})");
  testing::AddRandomInitializer(&m, "W", {16, 16}, 1);
  // s (int64, no row axis) cannot be fed: Shape runs in the cut, on the fed a.
  ExpectCut(m, {"a"}, 1, {"Shape", "MatMul", "Add", "Reshape"}, {"a"});
}

TEST(FrontierTest, NodesWithSubgraphsAreInTheCutWhenTheyReadALayer) {
  auto m = testing::ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
g (bool cond, float[N, 16] x) => (float[N, 16] y) {
  a = If(cond) <
    then_branch = t1 () => (float[N, 16] ta) { ta = Relu(x) },
    else_branch = e1 () => (float[N, 16] ea) { ea = Sigmoid(x) }
  >
  h = MatMul(a, W)
  y = If(cond) <
    then_branch = t2 () => (float[N, 16] tb) { tb = Add(h, a) },
    else_branch = e2 () => (float[N, 16] eb) { eb = Identity(a) }
  >
})");
  testing::AddRandomInitializer(&m, "W", {16, 16}, 1);
  // The first If comes before the layer; the second reads h from outside: in the cut, with its
  // other capture, a, fed.
  ExpectCut(m, {"a"}, 1, {"MatMul", "If"}, {"cond", "a"});
}

TEST(FrontierTest, AnOutputThatDependsOnNoLayerStaysBefore) {
  auto m = testing::ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 16] x) => (float[N, 16] y, float[N, 16] z) {
  a = Relu(x)
  z = Sigmoid(a)
  y = MatMul(a, W)
})");
  testing::AddRandomInitializer(&m, "W", {16, 16}, 1);
  auto f = FindFrontier(m);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->recorded, (Strings{"a"}));
  EXPECT_EQ(f->before.count("z"), 1u);
  EXPECT_EQ(BuildCutModel(m, *f, {"z"}).status().code(), StatusCode::kInvalidArgument);
  auto cut = BuildCutModel(m, *f, {"y"});
  ASSERT_TRUE(cut.ok()) << cut.status().message();
  EXPECT_EQ(Ops(*cut), (Strings{"MatMul"}));
  EXPECT_EQ(Names(cut->graph().output()), (Strings{"y"}));
}

TEST(FrontierTest, DoesNotApplyWithoutAPrefixOrWithAFixedBatch) {
  auto first = testing::ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 16] x) => (float[N, 16] y) {
  h = MatMul(x, W)
  y = Relu(h)
})");
  testing::AddRandomInitializer(&first, "W", {16, 16}, 1);
  EXPECT_EQ(FindFrontier(first).status().code(), StatusCode::kFailedPrecondition);
  auto fixed = testing::ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
g (float[1, 16] x) => (float[1, 16] y) {
  a = Relu(x)
  y = MatMul(a, W)
})");
  testing::AddRandomInitializer(&fixed, "W", {16, 16}, 1);
  EXPECT_EQ(FindFrontier(fixed).status().code(), StatusCode::kFailedPrecondition);
  // Only a constant before the layer: nothing to cut.
  auto constant = testing::ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 16] x) => (float[N, 16] y) {
  h = MatMul(x, W)
  k = Constant<value = float[1] {2.0}>()
  y = Mul(h, k)
})");
  testing::AddRandomInitializer(&constant, "W", {16, 16}, 1);
  EXPECT_EQ(FindFrontier(constant).status().code(), StatusCode::kFailedPrecondition);
}

// All of the files' values, in order.
std::vector<float> Values(const std::vector<std::string>& files) {
  std::vector<float> out, chunk;
  for (const auto& f : files) {
    auto r = io::NpyReader::Open(f);
    EXPECT_TRUE(r.ok()) << r.status().message();
    if (!r.ok()) return out;
    EXPECT_TRUE(r->Read(r->elements(), &chunk).ok());
    out.insert(out.end(), chunk.begin(), chunk.end());
  }
  return out;
}

// PassRunner with the real runner (node tool/kfc-runner.js): the cut pass records what the
// whole model does, row for row, over several batches; a frontier tensor comes from its recording;
// a request the cut cannot make runs the whole model.
TEST(PassRunnerTest, TheCutPassRecordsWhatTheWholeModelDoes) {
  const std::string script = std::string(KFC_SOURCE_DIR) + "/tool/kfc-runner.js";
  if (!std::filesystem::exists(std::string(KFC_SOURCE_DIR) +
                               "/tool/node_modules/onnxruntime-node")) {
    GTEST_SKIP() << "tool/node_modules/onnxruntime-node is not installed";
  }
  auto tmp = io::TempDir::Create("kfc-pass-runner-");
  ASSERT_TRUE(tmp.ok());
  const std::string dir = tmp->path();
  auto started = runner::Runner::Start({"node", script}, dir);
  if (!started.ok()) GTEST_SKIP() << started.status().message();
  onnx::ModelProto m = Chain();
  const std::string model_path = dir + "/model.onnx";
  testing::WriteModel(m, model_path);
  ASSERT_TRUE(io::WriteNpy(dir + "/x.npy", {10, 16}, testing::RandomVector(160, 7)).ok());
  runner::InputFile x;
  x.set_name("x");
  x.set_file(dir + "/x.npy");
  PassRunner passes(started->get(), {x}, 4, 10, model_path, nullptr);
  auto whole = passes.Run(&m, nullptr, {"y"}, dir + "/whole");
  ASSERT_TRUE(whole.ok()) << whole.status().message();
  EXPECT_EQ((*whole)[0].size(), 3u);  // batches of 4, 4, 2

  auto f = FindFrontier(m);
  ASSERT_TRUE(f.ok()) << f.status().message();
  ASSERT_TRUE(passes.RecordFrontier(m, nullptr, *f, dir + "/frontier", int64_t{1} << 30).ok());
  ASSERT_TRUE(passes.cut_enabled());
  auto cut = passes.Run(&m, nullptr, {"y", "b"}, dir + "/cut");
  ASSERT_TRUE(cut.ok()) << cut.status().message();
  EXPECT_EQ(passes.cut_passes(), 1);
  const std::vector<float> a = Values((*whole)[0]), b = Values((*cut)[0]);
  ASSERT_EQ(a.size(), 160u);
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 * (1 + std::abs(a[i])));
  EXPECT_EQ((*cut)[1], (std::vector<std::string>{dir + "/frontier/frontier0.npy"}));

  // "a" is made before the cut and was not recorded: the whole model runs.
  auto before = passes.Run(&m, nullptr, {"a"}, dir + "/before");
  ASSERT_FALSE(before.ok());  // not an output of the model: the runner says so
  EXPECT_EQ(passes.cut_passes(), 1);
}

// EnableCut takes a frontier recorded in any split of files (auto's fit and held-out parts), but
// only when the files' rows add up to the passes' rows; otherwise it says both counts.
TEST(PassRunnerTest, EnableCutChecksTheRowTotalWhateverTheSplit) {
  const std::string dir = ::testing::TempDir() + "/enable_cut";
  std::filesystem::create_directories(dir);
  onnx::ModelProto m = Chain();
  auto f = FindFrontier(m);
  ASSERT_TRUE(f.ok()) << f.status().message();
  ASSERT_EQ(f->recorded.size(), 1u);
  const std::string& t = f->recorded[0];
  ASSERT_TRUE(io::WriteNpy(dir + "/p0.npy", {7, 16}, testing::RandomVector(7 * 16, 1)).ok());
  ASSERT_TRUE(io::WriteNpy(dir + "/p1.npy", {3, 16}, testing::RandomVector(3 * 16, 2)).ok());

  PassRunner ten(nullptr, {}, 4, 10, "model.onnx", nullptr);
  ten.set_label("all 10 rows");
  ASSERT_TRUE(
      ten.EnableCut(*f, {{t, {dir + "/p0.npy", dir + "/p1.npy"}}}, dir + "/ten", 1 << 20).ok());
  EXPECT_TRUE(ten.cut_enabled());

  PassRunner eight(nullptr, {}, 4, 8, "model.onnx", nullptr);
  const Status s =
      eight.EnableCut(*f, {{t, {dir + "/p0.npy", dir + "/p1.npy"}}}, dir + "/eight", 1 << 20);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("has 10 rows in its files, not the passes' 8"), std::string::npos)
      << s.message();
  EXPECT_FALSE(eight.cut_enabled());

  PassRunner budget(nullptr, {}, 4, 10, "model.onnx", nullptr);
  EXPECT_EQ(budget.EnableCut(*f, {{t, {dir + "/p0.npy", dir + "/p1.npy"}}}, dir + "/b", 100).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_FALSE(budget.cut_enabled());
}

TEST(ConcatNpyTest, JoinsBatchesAlongTheLeadingAxis) {
  const std::string dir = ::testing::TempDir() + "/concat_npy";
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(io::WriteNpy(dir + "/a.npy", {2, 3}, {1, 2, 3, 4, 5, 6}).ok());
  ASSERT_TRUE(io::WriteNpy(dir + "/b.npy", {1, 3}, {7, 8, 9}).ok());
  ASSERT_TRUE(io::WriteNpy(dir + "/c.npy", {1, 2}, {7, 8}).ok());
  ASSERT_TRUE(ConcatNpy({dir + "/a.npy", dir + "/b.npy"}, dir + "/ab.npy").ok());
  auto r = io::NpyReader::Open(dir + "/ab.npy");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->shape(), (std::vector<int64_t>{3, 3}));
  std::vector<float> got;
  ASSERT_TRUE(r->Read(100, &got).ok());
  EXPECT_EQ(got, (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(ConcatNpy({dir + "/a.npy", dir + "/c.npy"}, dir + "/ac.npy").code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kfc::pipeline
