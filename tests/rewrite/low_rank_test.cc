// SPDX-License-Identifier: Apache-2.0
// Rewrite tests for the lean low-rank subgraph: a low-rank shape (K x 1 (x) 1 x N or
// 1 x N (x) K x 1) emits exactly two products and no Reshape for 2-D, 3-D and unknown-rank inputs,
// keeps a Gemm's bias, beta and transA on Gemms, folds the calibration correction into C, and
// computes what the factors say (a small 2-D evaluator of the emitted ops checks the values).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "kfc/kron/factorize.h"
#include "kfc/match/match.h"
#include "kfc/pipeline/compress.h"
#include "kfc/rewrite/kron_layer.h"
#include "kfc/tensor/tensor.h"
#include "tests/support/rewrite_helpers.h"
#include "tests/support/test_util.h"
#include "tests/support/toy_options.h"

namespace kfc {
namespace {

using testing::AddRandomInitializer;
using testing::HasInitializer;
using testing::ParseModelText;
using testing::RandomVector;

// ---- A 2-D evaluator of the ops the rewriter emits (MatMul, Gemm, Add, Transpose) ----

struct Mat {
  std::vector<int64_t> dims;  // rank 0..2
  std::vector<double> v;      // row-major
  int64_t Rows() const { return dims.size() == 2 ? dims[0] : 1; }
  int64_t Cols() const { return dims.empty() ? 1 : dims.back(); }
  // Element (i, j) of this tensor broadcast (numpy-style) to a 2-D shape.
  double At(int64_t i, int64_t j) const {
    return v[(Rows() == 1 ? 0 : i) * Cols() + (Cols() == 1 ? 0 : j)];
  }
};

Mat Transposed(const Mat& m) {
  Mat t{{m.Cols(), m.Rows()}, std::vector<double>(m.v.size())};
  for (int64_t i = 0; i < m.Rows(); ++i)
    for (int64_t j = 0; j < m.Cols(); ++j) t.v[j * m.Rows() + i] = m.v[i * m.Cols() + j];
  return t;
}

Mat Product(const Mat& a, const Mat& b) {
  EXPECT_EQ(a.Cols(), b.Rows());
  Mat c{{a.Rows(), b.Cols()}, std::vector<double>(a.Rows() * b.Cols(), 0.0)};
  for (int64_t i = 0; i < a.Rows(); ++i)
    for (int64_t k = 0; k < a.Cols(); ++k)
      for (int64_t j = 0; j < b.Cols(); ++j)
        c.v[i * b.Cols() + j] += a.v[i * a.Cols() + k] * b.v[k * b.Cols() + j];
  return c;
}

float FloatAttr(const onnx::NodeProto& n, const std::string& name, float dflt) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return a.f();
  return dflt;
}
int64_t IntAttr(const onnx::NodeProto& n, const std::string& name, int64_t dflt) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return a.i();
  return dflt;
}

// Runs the main graph on 2-D inputs; returns the value named `output`.
Mat Evaluate(const onnx::ModelProto& model, const std::map<std::string, Mat>& inputs,
             const std::string& output) {
  std::map<std::string, Mat> values = inputs;
  for (const auto& t : model.graph().initializer()) {
    auto data = tensor::DecodeToDouble(t);
    EXPECT_TRUE(data.ok()) << t.name();
    values[t.name()] = Mat{{t.dims().begin(), t.dims().end()}, *data};
  }
  for (const auto& n : model.graph().node()) {
    auto in = [&](int i) { return values.at(n.input(i)); };
    Mat out;
    if (n.op_type() == "MatMul") {
      out = Product(in(0), in(1));
    } else if (n.op_type() == "Transpose") {
      out = Transposed(in(0));
    } else if (n.op_type() == "Add") {
      out = in(0);
      const Mat b = in(1);
      for (int64_t i = 0; i < out.Rows(); ++i)
        for (int64_t j = 0; j < out.Cols(); ++j) out.v[i * out.Cols() + j] += b.At(i, j);
    } else if (n.op_type() == "Gemm") {
      Mat a = in(0), b = in(1);
      if (IntAttr(n, "transA", 0)) a = Transposed(a);
      if (IntAttr(n, "transB", 0)) b = Transposed(b);
      out = Product(a, b);
      const float alpha = FloatAttr(n, "alpha", 1.0f), beta = FloatAttr(n, "beta", 1.0f);
      for (double& x : out.v) x *= alpha;
      if (n.input_size() > 2 && !n.input(2).empty()) {
        const Mat c = in(2);
        for (int64_t i = 0; i < out.Rows(); ++i)
          for (int64_t j = 0; j < out.Cols(); ++j) out.v[i * out.Cols() + j] += beta * c.At(i, j);
      }
    } else {
      ADD_FAILURE() << "evaluator: no " << n.op_type();
      return {};
    }
    values[n.output(0)] = out;
  }
  return values.at(output);
}

Mat InitializerMat(const onnx::ModelProto& model, const std::string& name) {
  for (const auto& t : model.graph().initializer()) {
    if (t.name() != name) continue;
    auto data = tensor::DecodeToDouble(t);
    EXPECT_TRUE(data.ok()) << name;
    return Mat{{t.dims().begin(), t.dims().end()}, data.ok() ? *data : std::vector<double>{}};
  }
  ADD_FAILURE() << "no initializer " << name;
  return {};
}

Mat RandomMat(int64_t rows, int64_t cols, uint32_t seed) {
  auto f = RandomVector(static_cast<size_t>(rows * cols), seed);
  return Mat{{rows, cols}, std::vector<double>(f.begin(), f.end())};
}

// sum_t A_t (x) B_t as K x N (kron/factorize.h's layout).
Mat Reconstruct(const kron::KronFactors& f) {
  const auto& s = f.shape;
  Mat w{{s.K(), s.N()}, std::vector<double>(s.K() * s.N(), 0.0)};
  for (int64_t t = 0; t < f.rank; ++t)
    for (int64_t i1 = 0; i1 < s.k1; ++i1)
      for (int64_t j1 = 0; j1 < s.n1; ++j1)
        for (int64_t i2 = 0; i2 < s.k2; ++i2)
          for (int64_t j2 = 0; j2 < s.n2; ++j2)
            w.v[(i1 * s.k2 + i2) * s.N() + j1 * s.n2 + j2] +=
                f.a[(t * s.k1 + i1) * s.n1 + j1] * f.b[(t * s.k2 + i2) * s.n2 + j2];
  return w;
}

// Float32-valued random factors of `shape` at `rank`.
kron::KronFactors RandomFactors(const kron::KronShape& shape, int64_t rank, uint32_t seed) {
  kron::KronFactors f;
  f.shape = shape;
  f.rank = rank;
  auto a = RandomVector(static_cast<size_t>(rank * shape.k1 * shape.n1), seed);
  auto b = RandomVector(static_cast<size_t>(rank * shape.k2 * shape.n2), seed + 1);
  f.a.assign(a.begin(), a.end());
  f.b.assign(b.begin(), b.end());
  return f;
}

void ExpectNear(const Mat& got, const Mat& want, const std::string& label) {
  ASSERT_EQ(got.dims, want.dims) << label;
  for (size_t i = 0; i < want.v.size(); ++i) {
    ASSERT_NEAR(got.v[i], want.v[i], 1e-4 * (1.0 + std::fabs(want.v[i]))) << label << " at " << i;
  }
}

std::vector<std::string> Ops(const onnx::GraphProto& g) {
  std::vector<std::string> ops;
  for (const auto& n : g.node()) ops.push_back(n.op_type());
  return ops;
}

const onnx::TensorProto* Initializer(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& t : g.initializer())
    if (t.name() == name) return &t;
  return nullptr;
}

std::vector<int64_t> DimsOf(const onnx::GraphProto& g, const std::string& name) {
  const onnx::TensorProto* t = Initializer(g, name);
  return t == nullptr ? std::vector<int64_t>{}
                      : std::vector<int64_t>(t->dims().begin(), t->dims().end());
}

// Rewrites the model's only layer with `factors` (and a correction) directly.
onnx::ModelProto Rewrite(const onnx::ModelProto& model, const kron::KronFactors& factors,
                         std::vector<float> correction = {}) {
  onnx::ModelProto out = model;
  auto layers = match::FindLayers(out);
  EXPECT_EQ(layers.size(), 1u);
  EXPECT_TRUE(layers[0].eligible()) << layers[0].skip_reason;
  rewrite::KronRewrite rw;
  rw.layer = layers[0];
  rw.factors = factors;
  rw.order = kron::CheaperOrder(factors.shape, factors.rank);
  rw.bias_correction = std::move(correction);
  const Status s = rewrite::ApplyKronRewrites(&out, {rw});
  EXPECT_TRUE(s.ok()) << s.message();
  const Status check = pipeline::CheckModel(out, "out");
  EXPECT_TRUE(check.ok()) << check.message();
  return out;
}

pipeline::Result CompressLowRank(const onnx::ModelProto& model, int64_t rank) {
  pipeline::Options options = kfc::testing::ToyOptions();
  options.rank = rank;
  options.min_params = 0;
  options.shape = pipeline::ShapePolicy{pipeline::ShapePolicy::Kind::kLowRank};
  auto result = pipeline::CompressModel(model, options);
  EXPECT_TRUE(result.ok()) << result.status().message();
  return result.ok() ? std::move(result).value() : pipeline::Result{};
}

const kron::KronShape kKx1{64, 1, 1, 96};  // K x 1 (x) 1 x N: U holds the A factors
const kron::KronShape k1xN{1, 96, 64, 1};  // 1 x N (x) K x 1: U holds the B factors

// ---- Tests ----

TEST(LowRankTest, MatMulEmitsTwoMatMulsAndNoReshapeForEveryInputRank) {
  for (const std::string x_type : {"float[N, 64]", "float[B, S, 64]", "float[A, B, S, 64]"}) {
    std::string y_type = x_type;
    y_type.replace(y_type.find("64]"), 3, "96]");
    auto model = ParseModelText("<ir_version: 8, opset_import: [\"\" : 13]>\nagraph (" + x_type +
                                " x) => (" + y_type + " y) { y = MatMul(x, W) }");
    model.mutable_graph()->mutable_node(0)->set_name("proj");
    AddRandomInitializer(&model, "W", {64, 96}, 7);
    auto result = CompressLowRank(model, 4);
    ASSERT_EQ(result.report.totals().layers_compressed(), 1) << x_type;
    const auto& g = result.model.graph();
    EXPECT_EQ(Ops(g), (std::vector<std::string>{"MatMul", "MatMul"})) << x_type;
    EXPECT_EQ(g.node(0).input(0), "x");
    EXPECT_EQ(DimsOf(g, g.node(0).input(1)), (std::vector<int64_t>{64, 4})) << x_type;
    EXPECT_EQ(g.node(1).input(0), g.node(0).output(0));
    EXPECT_EQ(DimsOf(g, g.node(1).input(1)), (std::vector<int64_t>{4, 96})) << x_type;
    EXPECT_EQ(g.node(1).output(0), "y");
    EXPECT_EQ(g.initializer_size(), 2) << x_type << ": no Reshape targets";
    EXPECT_FALSE(HasInitializer(g, "W"));
    const Status check = pipeline::CheckModel(result.model, "out");
    EXPECT_TRUE(check.ok()) << x_type << ": " << check.message();
  }
}

TEST(LowRankTest, BothLowRankShapesComputeUV) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 96] y) { y = MatMul(x, W) })");
  AddRandomInitializer(&model, "W", {64, 96}, 7);
  const Mat x = RandomMat(5, 64, 11);
  for (const auto& shape : {kKx1, k1xN}) {
    const auto f = RandomFactors(shape, 3, 21);
    const auto out = Rewrite(model, f);
    EXPECT_EQ(Ops(out.graph()), (std::vector<std::string>{"MatMul", "MatMul"}));
    ExpectNear(Evaluate(out, {{"x", x}}, "y"), Product(x, Reconstruct(f)),
               kron::ShapeString(shape));
  }
}

// Inputs whose rank is known only at run time: MatMul broadcasts, so no Shape/Concat is needed.
TEST(LowRankTest, UnknownRankInputNeedsNoRunTimeShapes) {
  for (int opset : {9, 13, 15}) {
    auto model = ParseModelText("<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset) +
                                R"(]>
agraph (float[N] xs, int64[R] xshape, float[M] vs, int64[Q] vshape, int64[1] flat)
    => (float[P] y, float[S] u) {
  x = Reshape(xs, xshape)
  t = MatMul(x, W)
  y = Reshape(t, flat)
  v = Reshape(vs, vshape)
  w = MatMul(V, v)
  u = Reshape(w, flat)
})");
    AddRandomInitializer(&model, "W", {64, 96}, 1);
    AddRandomInitializer(&model, "V", {48, 64}, 2);
    const auto layers = match::FindLayers(model);
    ASSERT_EQ(layers.size(), 2u);
    ASSERT_EQ(layers[0].input_rank, 0);
    auto result = CompressLowRank(model, 2);
    for (const auto& l : result.report.layers()) {
      EXPECT_TRUE(l.compressed()) << opset << " " << l.node_name() << ": " << l.skip_reason() << " "
                                  << l.skip_detail();
    }
    ASSERT_EQ(result.report.totals().layers_compressed(), 2) << opset;
    EXPECT_EQ(Ops(result.model.graph()),
              (std::vector<std::string>{"Reshape", "MatMul", "MatMul", "Reshape", "Reshape",
                                        "MatMul", "MatMul", "Reshape"}))
        << "opset " << opset << ": only the model's own Reshapes";
    const Status check = pipeline::CheckModel(result.model, "out");
    EXPECT_TRUE(check.ok()) << check.message();
  }
}

TEST(LowRankTest, GemmKeepsBiasAndBetaOnTheSecondProduct) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 96] y) {
  y = Gemm<alpha = 0.5, beta = 2.0, transB = 1>(x, B, C)
})");
  AddRandomInitializer(&model, "B", {96, 64}, 1);
  AddRandomInitializer(&model, "C", {96}, 2);
  const Mat x = RandomMat(5, 64, 11);
  for (const auto& shape : {kKx1, k1xN}) {
    const auto f = RandomFactors(shape, 2, 31);
    const auto out = Rewrite(model, f);
    const auto& g = out.graph();
    ASSERT_EQ(Ops(g), (std::vector<std::string>{"MatMul", "Gemm"}));
    EXPECT_EQ(g.node(1).input(2), "C") << "the bias stays as it was";
    ASSERT_EQ(g.node(1).attribute_size(), 1) << "beta only: alpha is in the factors";
    EXPECT_EQ(g.node(1).attribute(0).name(), "beta");
    EXPECT_EQ(g.node(1).attribute(0).f(), 2.0f);
    EXPECT_FALSE(HasInitializer(g, "B"));
    Mat want = Product(x, Reconstruct(f));
    const Mat c = InitializerMat(model, "C");  // just the initializer
    for (int64_t i = 0; i < want.Rows(); ++i)
      for (int64_t j = 0; j < want.Cols(); ++j)
        want.v[i * 96 + j] = 0.5 * want.v[i * 96 + j] + 2.0 * c.At(i, j);
    ExpectNear(Evaluate(out, {{"x", x}}, "y"), want, kron::ShapeString(shape));
  }
}

TEST(LowRankTest, GemmWithComputedBiasNeedsNoMul) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x, float[96] c) => (float[N, 96] y) { y = Gemm<beta = 3.0>(x, B, c) })");
  AddRandomInitializer(&model, "B", {64, 96}, 1);
  const auto out = Rewrite(model, RandomFactors(kKx1, 2, 3));
  EXPECT_EQ(Ops(out.graph()), (std::vector<std::string>{"MatMul", "Gemm"}));
  EXPECT_EQ(out.graph().node(1).input(2), "c");
}

TEST(LowRankTest, GemmTransAIsAGemmFromOpset11) {
  const Mat xt = RandomMat(64, 5, 12);  // stored [K, M]
  for (int opset : {9, 11, 13}) {
    for (bool bias : {false, true}) {
      auto model =
          ParseModelText("<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset) +
                         "]>\nagraph (float[64, N] x) => (float[N, 96] y) { y = " +
                         (bias ? "Gemm<transA = 1>(x, W, C)" : "Gemm<transA = 1>(x, W)") + " }");
      AddRandomInitializer(&model, "W", {64, 96}, 5);
      if (bias) AddRandomInitializer(&model, "C", {96}, 6);
      const auto f = RandomFactors(kKx1, 2, 41);
      const auto out = Rewrite(model, f);
      const std::string label = "opset " + std::to_string(opset) + (bias ? ", bias" : "");
      std::vector<std::string> want = opset >= 11 ? std::vector<std::string>{"Gemm"}
                                                  : std::vector<std::string>{"Transpose", "MatMul"};
      want.push_back(bias ? "Gemm" : "MatMul");
      EXPECT_EQ(Ops(out.graph()), want) << label;
      Mat expected = Product(Transposed(xt), Reconstruct(f));
      if (bias) {
        const Mat c = InitializerMat(model, "C");
        for (int64_t i = 0; i < 5; ++i)
          for (int64_t j = 0; j < 96; ++j) expected.v[i * 96 + j] += c.At(i, j);
      }
      ExpectNear(Evaluate(out, {{"x", xt}}, "y"), expected, label);
    }
  }
}

TEST(LowRankTest, WeightFirstMatMulTakesBothConstantsOnTheLeft) {
  const Mat x = RandomMat(64, 7, 13);
  for (const std::string x_type : {"float[64, C]", "float[B, 64, C]"}) {
    std::string y_type = x_type;
    y_type.replace(y_type.find("64"), 2, "96");
    auto model = ParseModelText("<ir_version: 8, opset_import: [\"\" : 13]>\nagraph (" + x_type +
                                " x) => (" + y_type + " y) { y = MatMul(W, x) }");
    AddRandomInitializer(&model, "W", {96, 64}, 4);
    auto result = CompressLowRank(model, 3);
    ASSERT_EQ(result.report.totals().layers_compressed(), 1) << x_type;
    const auto& g = result.model.graph();
    ASSERT_EQ(Ops(g), (std::vector<std::string>{"MatMul", "MatMul"})) << x_type;
    EXPECT_EQ(DimsOf(g, g.node(0).input(0)), (std::vector<int64_t>{3, 64}));
    EXPECT_EQ(g.node(0).input(1), "x");
    EXPECT_EQ(DimsOf(g, g.node(1).input(0)), (std::vector<int64_t>{96, 3}));
    EXPECT_EQ(g.node(1).input(1), g.node(0).output(0));
    const Status check = pipeline::CheckModel(result.model, "out");
    EXPECT_TRUE(check.ok()) << x_type << ": " << check.message();
  }
  // Values, both shapes: W X with W^T (64 x 96) ~ sum_t A_t (x) B_t.
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[64, C] x) => (float[96, C] y) { y = MatMul(W, x) })");
  AddRandomInitializer(&model, "W", {96, 64}, 4);
  for (const auto& shape : {kKx1, k1xN}) {
    const auto f = RandomFactors(shape, 3, 51);
    const auto out = Rewrite(model, f);
    EXPECT_EQ(Ops(out.graph()), (std::vector<std::string>{"MatMul", "MatMul"}));
    ExpectNear(Evaluate(out, {{"x", x}}, "y"), Product(Transposed(Reconstruct(f)), x),
               kron::ShapeString(shape));
  }
}

// The calibration correction (alpha times it, for a Gemm) becomes the second product's C.
TEST(LowRankTest, BiasCorrectionIsFoldedIntoTheGemm) {
  const Mat x = RandomMat(5, 64, 11);
  const auto f = RandomFactors(kKx1, 2, 61);
  const auto corr = RandomVector(96, 62);
  const Mat corr_row{{96}, std::vector<double>(corr.begin(), corr.end())};
  auto add_rows = [](Mat m, const Mat& c, double scale) {
    for (int64_t i = 0; i < m.Rows(); ++i)
      for (int64_t j = 0; j < m.Cols(); ++j) m.v[i * m.Cols() + j] += scale * c.At(i, j);
    return m;
  };
  {  // MatMul on a 2-D input: a Gemm with the correction as C.
    auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 96] y) { y = MatMul(x, W) })");
    AddRandomInitializer(&model, "W", {64, 96}, 7);
    const auto out = Rewrite(model, f, corr);
    EXPECT_EQ(Ops(out.graph()), (std::vector<std::string>{"MatMul", "Gemm"}));
    ExpectNear(Evaluate(out, {{"x", x}}, "y"), add_rows(Product(x, Reconstruct(f)), corr_row, 1.0),
               "matmul 2-D");
  }
  {  // MatMul on a 3-D input: Gemm is 2-D only, so an Add.
    auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[B, N, 64] x) => (float[B, N, 96] y) { y = MatMul(x, W) })");
    AddRandomInitializer(&model, "W", {64, 96}, 7);
    const auto out = Rewrite(model, f, corr);
    EXPECT_EQ(Ops(out.graph()), (std::vector<std::string>{"MatMul", "MatMul", "Add"}));
  }
  {  // Gemm with a constant bias: beta*C + alpha*correction, one initializer, no beta left.
    auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 96] y) { y = Gemm<alpha = 0.5, beta = 2.0>(x, W, C) })");
    AddRandomInitializer(&model, "W", {64, 96}, 7);
    AddRandomInitializer(&model, "C", {1, 96}, 8);
    const Mat c = InitializerMat(model, "C");
    const auto out = Rewrite(model, f, corr);
    const auto& g = out.graph();
    ASSERT_EQ(Ops(g), (std::vector<std::string>{"MatMul", "Gemm"}));
    EXPECT_EQ(g.node(1).attribute_size(), 0);
    EXPECT_FALSE(HasInitializer(g, "C")) << "replaced by the folded bias";
    EXPECT_EQ(DimsOf(g, g.node(1).input(2)), (std::vector<int64_t>{1, 96}));
    Mat want = Product(x, Reconstruct(f));
    for (double& v : want.v) v *= 0.5;
    ExpectNear(Evaluate(out, {{"x", x}}, "y"), add_rows(add_rows(want, c, 2.0), corr_row, 0.5),
               "gemm constant bias");
  }
  {  // Gemm with a computed bias: it stays C (with beta), the correction an Add.
    auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x, float[96] c) => (float[N, 96] y) { y = Gemm<beta = 2.0>(x, W, c) })");
    AddRandomInitializer(&model, "W", {64, 96}, 7);
    const auto out = Rewrite(model, f, corr);
    EXPECT_EQ(Ops(out.graph()), (std::vector<std::string>{"MatMul", "Gemm", "Add"}));
    const Mat c = RandomMat(1, 96, 9);
    ExpectNear(Evaluate(out, {{"x", x}, {"c", c}}, "y"),
               add_rows(add_rows(Product(x, Reconstruct(f)), c, 2.0), corr_row, 1.0),
               "gemm computed bias");
  }
  {  // W X on a 2-D input: C is [N, 1].
    auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[64, C] x) => (float[96, C] y) { y = MatMul(W, x) })");
    AddRandomInitializer(&model, "W", {96, 64}, 4);
    const auto out = Rewrite(model, f, corr);
    const auto& g = out.graph();
    ASSERT_EQ(Ops(g), (std::vector<std::string>{"MatMul", "Gemm"}));
    EXPECT_EQ(DimsOf(g, g.node(1).input(2)), (std::vector<int64_t>{96, 1}));
    const Mat xc = RandomMat(64, 7, 13);
    const Mat corr_col{{96, 1}, corr_row.v};
    ExpectNear(Evaluate(out, {{"x", xc}}, "y"),
               add_rows(Product(Transposed(Reconstruct(f)), xc), corr_col, 1.0), "w x");
  }
}

// Kronecker shapes keep the Reshape form (three Reshapes, two MatMuls).
TEST(LowRankTest, KroneckerShapesKeepTheReshapeForm) {
  auto model = ParseModelText(R"(<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 64] x) => (float[N, 96] y) { y = MatMul(x, W) })");
  AddRandomInitializer(&model, "W", {64, 96}, 7);
  const Mat x = RandomMat(5, 64, 11);
  const auto out = Rewrite(model, RandomFactors(kron::KronShape{8, 12, 8, 8}, 2, 71));
  EXPECT_EQ(Ops(out.graph()),
            (std::vector<std::string>{"Reshape", "MatMul", "Reshape", "MatMul", "Reshape"}));
}

}  // namespace
}  // namespace kfc
