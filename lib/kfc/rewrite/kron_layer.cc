// SPDX-License-Identifier: Apache-2.0
#include "kfc/rewrite/kron_layer.h"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_set>

#include "kfc/core/names.h"
#include "kfc/graph/names.h"
#include "kfc/graph/scope.h"
#include "kfc/graph/uses.h"
#include "kfc/graph/walk.h"
#include "kfc/rewrite/graph_edits.h"
#include "kfc/tensor/tensor.h"

namespace kfc::rewrite {
namespace {

using kron::ContractionOrder;
using kron::KronFactors;

using graph::Scope;
using graph::ScopeKey;

// Adds an initializer to `g`; IR version 3 requires every initializer of the main graph to be a
// graph input too (the rewriter puts nothing into subgraphs at IR 3: their inputs are positional).
void AddInitializer(onnx::GraphProto* g, bool as_input, onnx::TensorProto t) {
  if (as_input) {
    auto* vi = g->add_input();
    vi->set_name(t.name());
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(t.data_type());
    auto* shape = tt->mutable_shape();
    for (int64_t d : t.dims()) shape->add_dim()->set_dim_value(d);
  }
  *g->add_initializer() = std::move(t);
}

// The initializer `name` as the graph `depth` steps into `scope` sees it: its own, or the
// closest enclosing graph's, unless a closer graph defines the name as an input or node output.
// *overridable: it is also an input of the graph holding it (at IR >= 4 callers may replace it).
const onnx::TensorProto* VisibleInitializer(const onnx::ModelProto& model, const Scope& scope,
                                            size_t depth, const std::string& name,
                                            bool* overridable) {
  for (size_t d = depth + 1; d-- > 0;) {
    const onnx::GraphProto* g = graph::GraphAt(model, scope, d);
    if (g == nullptr) return nullptr;
    bool input = false;
    for (const auto& vi : g->input()) input |= vi.name() == name;
    for (const auto& t : g->initializer()) {
      if (t.name() == name) {
        *overridable = input && model.ir_version() >= 4;
        return &t;
      }
    }
    if (input) return nullptr;
    for (const auto& node : g->node()) {
      for (const auto& out : node.output()) {
        if (out == name) return nullptr;
      }
    }
  }
  return nullptr;
}

onnx::NodeProto MakeNode(const std::string& op, const std::string& name,
                         std::vector<std::string> inputs, const std::string& output) {
  onnx::NodeProto node;
  node.set_op_type(op);
  node.set_name(name);
  for (auto& s : inputs) node.add_input(std::move(s));
  node.add_output(output);
  return node;
}

// Leading dims copied by Reshape's "0", then the given trailing dims.
std::vector<int64_t> ReshapeTarget(int64_t copied, std::vector<int64_t> tail) {
  std::vector<int64_t> shape(static_cast<size_t>(copied), 0);
  shape.insert(shape.end(), tail.begin(), tail.end());
  return shape;
}

// Trailing dims of the middle Reshape for the row (X W) form.
std::vector<int64_t> MidTail(const KronFactors& f, ContractionOrder order) {
  if (order == ContractionOrder::kBFirst) return {f.shape.k1 * f.rank, f.shape.n2};
  return {f.shape.n1, f.rank * f.shape.k2};
}

struct ReshapeTargets {
  std::vector<int64_t> in, mid, out;
};

// X [.., K] -> [.., k1, k2];  mid as the stacking needs;  [.., N].
ReshapeTargets RowTargets(const match::LayerCandidate& layer, const KronFactors& f,
                          ContractionOrder order) {
  const int64_t copied = layer.input_rank - 1;
  return {ReshapeTarget(copied, {f.shape.k1, f.shape.k2}), ReshapeTarget(copied, MidTail(f, order)),
          ReshapeTarget(copied, {layer.n})};
}

// MatMul(W, X) with X [.., K, C]: the same contractions act on X's second-to-last axis, with C
// carried along as the last axis (-1 when it is not static, so Reshape infers it):
//   B first: [.., k1, k2, C] -> MatMul(Bcat^T, .) [.., k1, r*n2, C] -> [.., k1*r, n2*C]
//            -> MatMul(Acat, .) [.., n1, n2*C] -> [.., N, C]
//   A first: [.., k1, k2*C] -> MatMul(Acat, .) [.., n1*r, k2*C] -> [.., n1, r*k2, C]
//            -> MatMul(Bstack^T, .) [.., n1, n2, C] -> [.., N, C]
ReshapeTargets WeightFirstTargets(const match::LayerCandidate& layer, const KronFactors& f,
                                  bool b_first) {
  const int64_t copied = layer.input_rank - 2;
  const int64_t c = layer.input_cols > 0 ? layer.input_cols : -1;
  auto times_c = [&](int64_t d) { return c > 0 ? d * c : -1; };
  const int64_t k1 = f.shape.k1, n1 = f.shape.n1, k2 = f.shape.k2, n2 = f.shape.n2, r = f.rank;
  if (b_first) {
    return {ReshapeTarget(copied, {k1, k2, c}), ReshapeTarget(copied, {k1 * r, times_c(n2)}),
            ReshapeTarget(copied, {layer.n, c})};
  }
  return {ReshapeTarget(copied, {k1, times_c(k2)}), ReshapeTarget(copied, {n1, r * k2, c}),
          ReshapeTarget(copied, {layer.n, c})};
}

}  // namespace

namespace {

class LayerEmitter {
 public:
  LayerEmitter(onnx::ModelProto* model, NameGenerator* names,
               std::unordered_set<std::string>* maybe_unused)
      : model_(model), names_(names), maybe_unused_(maybe_unused) {}

  StatusOr<std::vector<onnx::NodeProto>> Emit(const KronRewrite& rw) {
    const auto& layer = rw.layer;
    const auto& f = rw.factors;
    if (f.shape.K() != layer.k || f.shape.N() != layer.n) {
      return InvalidArgument("layer '" + layer.node_name + "': factor shape does not match " +
                             std::to_string(layer.k) + " x " + std::to_string(layer.n));
    }
    base_ = layer.node_name.empty() ? layer.output_name : layer.node_name;
    base_input_ = layer.input_name;
    dtype_ = layer.dtype;
    opset_ = match::DefaultOpset(*model_);
    // New initializers go where the weight was: the layer's graph, or the enclosing graph whose
    // initializer it read (layers in several subgraphs then share the factors). At IR 3 always the
    // main graph, whose initializers must be inputs too.
    scope_ = layer.scope;
    target_depth_ = model_->ir_version() < 4 ? 0 : std::min(layer.source_depth, scope_.size());
    const bool gemm = layer.op_type == "Gemm";
    const float alpha = FoldedAlpha(layer);
    const bool b_first = rw.order == ContractionOrder::kBFirst;
    std::optional<StackedInitializers> encoded = rw.encoded;
    if (!encoded) {
      KFC_ASSIGN_OR_RETURN(encoded, EncodeFactors(layer, f, rw.order));
    }
    // A low-rank shape's first constant, U, holds the A factors when A is K x 1
    // (factor_encoding.h).
    const bool a_first_const = EmitsLowRank(layer, f.shape) ? f.shape.n1 == 1 : !b_first;
    const std::string first_w =
        Deduped(a_first_const ? "kfc_a" : "kfc_b", std::move(encoded->first));
    const std::string second_w =
        Deduped(a_first_const ? "kfc_b" : "kfc_a", std::move(encoded->second));
    encoded.reset();
    if (EmitsLowRank(layer, f.shape)) return EmitLowRank(rw, first_w, second_w);
    std::vector<onnx::NodeProto> nodes;
    std::string shape_in, shape_mid, shape_out;
    if (layer.input_rank == 0) {
      RunTimeShapes(layer, f, rw.order, &nodes, &shape_in, &shape_mid, &shape_out);
    } else {
      const ReshapeTargets targets = layer.weight_first ? WeightFirstTargets(layer, f, b_first)
                                                        : RowTargets(layer, f, rw.order);
      shape_in = Shape("kfc_shape_in", targets.in);
      shape_mid = Shape("kfc_shape_mid", targets.mid);
      shape_out = Shape("kfc_shape_out", targets.out);
    }

    std::string x = layer.input_name;
    if (layer.trans_a) x = TransposeInput(&nodes);
    const std::string x4 = Value("kfc_x");
    nodes.push_back(MakeNode("Reshape", NodeName("kfc_reshape_in"), {x, shape_in}, x4));
    const std::string mid = Value("kfc_mid");
    const bool x_left =
        b_first && !layer.weight_first;  // else the constant multiplies from the left
    nodes.push_back(MakeNode(
        "MatMul", NodeName("kfc_matmul_1"),
        x_left ? std::vector<std::string>{x4, first_w} : std::vector<std::string>{first_w, x4},
        mid));
    const std::string mid2 = Value("kfc_mid_reshaped");
    nodes.push_back(MakeNode("Reshape", NodeName("kfc_reshape_mid"), {mid, shape_mid}, mid2));
    const std::string y4 = Value("kfc_y4");
    const bool w_left = b_first || layer.weight_first;
    nodes.push_back(MakeNode("MatMul", NodeName("kfc_matmul_2"),
                             w_left ? std::vector<std::string>{second_w, mid2}
                                    : std::vector<std::string>{mid2, second_w},
                             y4));

    const bool add_bias = gemm && !layer.bias_name.empty() && layer.beta != 0.0f;
    const std::string y = add_bias ? Value("kfc_y") : layer.output_name;
    nodes.push_back(MakeNode("Reshape", NodeName("kfc_reshape_out"), {y4, shape_out}, y));
    if (add_bias) {
      KFC_ASSIGN_OR_RETURN(std::string bias, ScaledBias(layer, &nodes));
      nodes.push_back(MakeNode("Add", NodeName("kfc_add_bias"), {y, bias}, layer.output_name));
    } else if (gemm && !layer.bias_name.empty()) {
      maybe_unused_->insert(layer.bias_name);  // beta == 0: the bias no longer contributes
    }
    if (!rw.bias_correction.empty()) {
      const std::string uncorrected = Value("kfc_y_uncorrected");
      nodes.back().set_output(0, uncorrected);
      std::vector<float> correction = rw.bias_correction;
      for (float& v : correction) v *= alpha;
      // Per output feature: along the last axis, or for W·X along the second-to-last ([M, 1]).
      const std::string c = Constant(
          "kfc_bias_correction",
          layer.weight_first ? std::vector<int64_t>{layer.n, 1} : std::vector<int64_t>{layer.n},
          correction);
      nodes.push_back(MakeNode("Add", NodeName("kfc_add_bias_correction"), {uncorrected, c},
                               layer.output_name));
    }
    maybe_unused_->insert(layer.weight_tensor_name);
    return nodes;
  }

 private:
  // A low-rank shape: W ~ U V, so Y = (X U) V, two products that broadcast over any leading dims
  // (any input rank, unknown included) and need no Reshape:
  //   X W:  T = MatMul(X, U[K, r]);  Y = MatMul(T, V[r, N])
  //   Gemm: T = MatMul(X, U) (Gemm(X, U; transA=1) for transA at opset >= 11, else Transpose
  //         first);  Y = Gemm(T, V, C; beta), the original bias and beta kept as they were
  //   W X:  T = MatMul(U^T[r, K], X);  Y = MatMul(V^T[N, r], T)
  // The calibration bias correction becomes the second product's C where that is a Gemm: added to
  // the constant bias (beta*C + correction, one initializer), or as C where there is none. A
  // MatMul on a 2-D float32/float64 input becomes a Gemm for it (C [N], or [N, 1] for W X);
  // otherwise, and where C is computed or overridable, the correction stays an Add.
  StatusOr<std::vector<onnx::NodeProto>> EmitLowRank(const KronRewrite& rw, const std::string& u,
                                                     const std::string& v) {
    const auto& layer = rw.layer;
    const bool gemm = layer.op_type == "Gemm";
    std::vector<onnx::NodeProto> nodes;
    const std::string t = Value("kfc_mid");
    if (layer.trans_a && opset_ >= 11) {
      nodes.push_back(MakeNode("Gemm", NodeName("kfc_gemm_1"), {layer.input_name, u}, t));
      IntAttr(&nodes.back(), "transA", 1);
    } else {
      std::string x = layer.input_name;
      if (layer.trans_a) x = TransposeInput(&nodes);
      nodes.push_back(MakeNode(
          "MatMul", NodeName("kfc_matmul_1"),
          layer.weight_first ? std::vector<std::string>{u, x} : std::vector<std::string>{x, u}, t));
    }
    maybe_unused_->insert(layer.weight_tensor_name);

    // What the second product adds: the bias (beta * C) and the correction, as C where it can.
    std::string bias;
    float beta = 1.0f;
    if (gemm && !layer.bias_name.empty()) {
      if (layer.beta != 0.0f) {
        bias = layer.bias_name;
        beta = layer.beta;
      } else {
        maybe_unused_->insert(layer.bias_name);  // beta == 0: the bias no longer contributes
      }
    }
    std::vector<float> correction = rw.bias_correction;
    for (float& c : correction) c *= FoldedAlpha(layer);
    const std::vector<int64_t> correction_dims =
        layer.weight_first ? std::vector<int64_t>{layer.n, 1} : std::vector<int64_t>{layer.n};
    const bool gemm_ok = gemm || (layer.input_rank == 2 && (dtype_ == onnx::TensorProto::FLOAT ||
                                                            dtype_ == onnx::TensorProto::DOUBLE));
    if (gemm_ok && !correction.empty()) {
      if (bias.empty()) {
        bias = Constant("kfc_bias_correction", correction_dims, correction);
        correction.clear();
      } else {
        KFC_ASSIGN_OR_RETURN(std::optional<std::string> folded, FoldCorrection(layer, correction));
        if (folded) {
          bias = *folded;
          beta = 1.0f;
          correction.clear();
        }
      }
    }
    const std::string y = correction.empty() ? layer.output_name : Value("kfc_y_uncorrected");
    if (gemm_ok && !bias.empty()) {
      nodes.push_back(MakeNode("Gemm", NodeName("kfc_gemm_2"),
                               layer.weight_first ? std::vector<std::string>{v, t, bias}
                                                  : std::vector<std::string>{t, v, bias},
                               y));
      if (beta != 1.0f) {
        auto* a = nodes.back().add_attribute();
        a->set_name("beta");
        a->set_type(onnx::AttributeProto::FLOAT);
        a->set_f(beta);
      }
    } else {
      nodes.push_back(MakeNode(
          "MatMul", NodeName("kfc_matmul_2"),
          layer.weight_first ? std::vector<std::string>{v, t} : std::vector<std::string>{t, v}, y));
    }
    if (!correction.empty()) {
      const std::string c = Constant("kfc_bias_correction", correction_dims, correction);
      nodes.push_back(
          MakeNode("Add", NodeName("kfc_add_bias_correction"), {y, c}, layer.output_name));
    }
    return nodes;
  }

  // beta * C + correction as one new initializer of the layer's dtype, broadcast to [rows, N]
  // (rows from C when it is 2-D, else [N]), computed in double and rounded once; nullopt when C
  // is not an inline initializer of the layer's dtype that callers cannot override.
  StatusOr<std::optional<std::string>> FoldCorrection(const match::LayerCandidate& layer,
                                                      const std::vector<float>& correction) {
    bool overridable = false;
    const onnx::TensorProto* c =
        VisibleInitializer(*model_, scope_, scope_.size(), layer.bias_name, &overridable);
    if (c == nullptr || overridable || tensor::HasExternalData(*c) || c->data_type() != dtype_ ||
        c->dims_size() > 2) {
      return std::optional<std::string>();
    }
    KFC_ASSIGN_OR_RETURN(std::vector<double> values, tensor::DecodeToDouble(*c));
    const int64_t n = layer.n;
    const int64_t rows = c->dims_size() == 2 ? c->dims(0) : 1;
    const int64_t cols = c->dims_size() == 0 ? 1 : c->dims(c->dims_size() - 1);
    if (cols != 1 && cols != n) return std::optional<std::string>();
    std::vector<double> folded(static_cast<size_t>(rows * n));
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        folded[i * n + j] =
            static_cast<double>(layer.beta) * values[i * cols + (cols == 1 ? 0 : j)] +
            static_cast<double>(correction[j]);
      }
    }
    maybe_unused_->insert(layer.bias_name);
    const std::vector<int64_t> dims =
        c->dims_size() == 2 ? std::vector<int64_t>{rows, n} : std::vector<int64_t>{n};
    return std::optional<std::string>(
        Deduped("kfc_bias", tensor::EncodeFromDouble("", dtype_, dims, folded)));
  }

  static void IntAttr(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }

  // Gemm transA=1: X is stored [K, M]; Transpose(X) is [M, K].
  std::string TransposeInput(std::vector<onnx::NodeProto>* nodes) {
    const std::string x = Value("kfc_x_t");
    nodes->push_back(MakeNode("Transpose", NodeName("kfc_transpose_in"), {base_input_}, x));
    auto* perm = nodes->back().add_attribute();
    perm->set_name("perm");
    perm->set_type(onnx::AttributeProto::INTS);
    perm->add_ints(1);
    perm->add_ints(0);
    return x;
  }

  // X of unknown rank (a MatMul after a Reshape whose target inference could not work out): the
  // Reshape targets take X's leading dims at run time.
  //   X W:  lead = Shape(X)[:-1];  [-1, k1, k2] and [-1, mid tail] flatten the leading dims (the
  //         MatMuls broadcast over one batch axis as over several), Concat(lead, [N]) restores
  //         them.
  //   W X:  lead = Shape(X)[:-2];  Concat(lead, tail) for all three, C as -1 (the only unknown).
  // Shape takes `end` from opset 15; before, Shape then Slice (attributes before opset 10, inputs
  // from 10). Concat (axis 0) of int64 vectors is valid at every opset from 7.
  void RunTimeShapes(const match::LayerCandidate& layer, const KronFactors& f,
                     ContractionOrder order, std::vector<onnx::NodeProto>* nodes, std::string* in,
                     std::string* mid, std::string* out) {
    const int64_t k1 = f.shape.k1, n1 = f.shape.n1, k2 = f.shape.k2, r = f.rank;
    const std::string lead = LeadingDims(layer.input_name, layer.weight_first ? 2 : 1, nodes);
    if (!layer.weight_first) {
      std::vector<int64_t> flat_in = {-1, k1, k2};
      std::vector<int64_t> flat_mid = MidTail(f, order);
      flat_mid.insert(flat_mid.begin(), -1);
      *in = Shape("kfc_shape_in", flat_in);
      *mid = Shape("kfc_shape_mid", flat_mid);
      *out = WithLead(lead, "kfc_shape_out", {layer.n}, nodes);
      return;
    }
    const bool b_first = order == ContractionOrder::kBFirst;
    *in =
        WithLead(lead, "kfc_shape_in",
                 b_first ? std::vector<int64_t>{k1, k2, -1} : std::vector<int64_t>{k1, -1}, nodes);
    *mid = WithLead(
        lead, "kfc_shape_mid",
        b_first ? std::vector<int64_t>{k1 * r, -1} : std::vector<int64_t>{n1, r * k2, -1}, nodes);
    *out = WithLead(lead, "kfc_shape_out", {layer.n, -1}, nodes);
  }

  // All but the last `drop` dims of x's shape, as an int64 vector computed at run time.
  std::string LeadingDims(const std::string& x, int64_t drop, std::vector<onnx::NodeProto>* nodes) {
    const std::string lead = Value("kfc_lead_dims");
    auto ints_attr = [](onnx::NodeProto* n, const std::string& name, int64_t v) {
      auto* a = n->add_attribute();
      a->set_name(name);
      a->set_type(onnx::AttributeProto::INTS);
      a->add_ints(v);
    };
    if (opset_ >= 15) {
      nodes->push_back(MakeNode("Shape", NodeName("kfc_shape_x"), {x}, lead));
      auto* a = nodes->back().add_attribute();
      a->set_name("end");
      a->set_type(onnx::AttributeProto::INT);
      a->set_i(-drop);
      return lead;
    }
    const std::string shape = Value("kfc_x_shape");
    nodes->push_back(MakeNode("Shape", NodeName("kfc_shape_x"), {x}, shape));
    if (opset_ >= 10) {
      const std::string starts = Shape("kfc_slice_starts", {0});
      const std::string ends = Shape("kfc_slice_ends", {-drop});
      nodes->push_back(MakeNode("Slice", NodeName("kfc_slice_lead"), {shape, starts, ends}, lead));
    } else {
      nodes->push_back(MakeNode("Slice", NodeName("kfc_slice_lead"), {shape}, lead));
      ints_attr(&nodes->back(), "axes", 0);
      ints_attr(&nodes->back(), "starts", 0);
      ints_attr(&nodes->back(), "ends", -drop);
    }
    return lead;
  }

  // Concat(lead, tail) along axis 0: a Reshape target with run-time leading dims.
  std::string WithLead(const std::string& lead, const std::string& suffix,
                       const std::vector<int64_t>& tail, std::vector<onnx::NodeProto>* nodes) {
    const std::string target = Value(suffix);
    nodes->push_back(MakeNode("Concat", NodeName("kfc_concat" + suffix.substr(3)),
                              {lead, Shape(suffix + "_tail", tail)}, target));
    auto* a = nodes->back().add_attribute();
    a->set_name("axis");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(0);
    return target;
  }

  std::string Value(const std::string& suffix) { return names_->Unique(base_ + "/" + suffix); }
  std::string NodeName(const std::string& suffix) { return names_->Unique(base_ + "/" + suffix); }
  // A constant of the layer's dtype (bias, beta, bias correction), rounded the way Cast rounds.
  // The factors come encoded (EncodeFactors).
  std::string Constant(const std::string& suffix, const std::vector<int64_t>& dims,
                       const std::vector<float>& data) {
    return Deduped(suffix, tensor::EncodeFromFloat("", dtype_, dims, data));
  }
  // Adds `t` under a new name derived from `suffix`, unless an identical tensor (dtype, dims,
  // bytes) was added before: layers sharing a weight then share its factors.
  std::string Deduped(const std::string& suffix, onnx::TensorProto t) {
    std::string key = ScopeKey(scope_, target_depth_) + "|" + std::to_string(t.data_type()) + "|";
    for (int64_t d : t.dims()) key += std::to_string(d) + ",";
    if (tensor::HasExternalData(t)) {
      // Data not in memory (a spill file): one reference per distinct content.
      key += "|external";
      for (const auto& e : t.external_data()) key += "|" + e.key() + "=" + e.value();
    } else {
      key += "|raw|" + t.raw_data();
    }
    auto it = emitted_.find(key);
    if (it != emitted_.end()) return it->second;
    std::string name = names_->Unique(base_ + "." + suffix);
    t.set_name(name);
    AddInitializer(graph::MutableGraphAt(model_, scope_, target_depth_),
                   target_depth_ == 0 && model_->ir_version() < 4, std::move(t));
    emitted_.emplace(std::move(key), name);
    return name;
  }
  std::string Shape(const std::string& suffix, const std::vector<int64_t>& shape) {
    return Deduped(suffix, tensor::EncodeInt64("", {static_cast<int64_t>(shape.size())}, shape));
  }

  // beta * C: folded into a new initializer when C is an inline initializer of the layer's dtype
  // that callers cannot override and that float32 holds exactly (not float64), else computed with
  // a Mul node.
  StatusOr<std::string> ScaledBias(const match::LayerCandidate& layer,
                                   std::vector<onnx::NodeProto>* nodes) {
    if (layer.beta == 1.0f) return layer.bias_name;
    bool overridable = false;
    const onnx::TensorProto* bias =
        VisibleInitializer(*model_, scope_, scope_.size(), layer.bias_name, &overridable);
    const bool foldable = bias != nullptr && !overridable && !tensor::HasExternalData(*bias) &&
                          bias->data_type() == dtype_ && dtype_ != onnx::TensorProto::DOUBLE;
    if (foldable) {
      KFC_ASSIGN_OR_RETURN(std::vector<float> c, tensor::DecodeToFloat(*bias));
      for (float& v : c) v *= layer.beta;
      std::vector<int64_t> dims(bias->dims().begin(), bias->dims().end());
      maybe_unused_->insert(layer.bias_name);
      return Constant("kfc_bias", dims, c);
    }
    const std::string beta = Constant("kfc_beta", {}, std::vector<float>{layer.beta});
    const std::string scaled = Value("kfc_scaled_bias");
    nodes->push_back(MakeNode("Mul", NodeName("kfc_scale_bias"), {layer.bias_name, beta}, scaled));
    return scaled;
  }

  onnx::ModelProto* model_;
  NameGenerator* names_;
  std::unordered_set<std::string>* maybe_unused_;
  std::map<std::string, std::string> emitted_;  // target graph + tensor content -> name
  std::string base_;
  std::string base_input_;  // the layer's input X
  Scope scope_;
  size_t target_depth_ = 0;
  int32_t dtype_ = onnx::TensorProto::FLOAT;
  int64_t opset_ = 0;
};

}  // namespace

Status ApplyKronRewrites(onnx::ModelProto* model, const std::vector<KronRewrite>& rewrites,
                         std::vector<EmittedLayer>* emitted) {
  if (rewrites.empty()) return Status::Ok();
  NameGenerator names;
  graph::ReserveNames(model->graph(), &names);
  std::unordered_set<std::string> maybe_unused;
  EditMap edits;
  {
    LayerEmitter emitter(model, &names, &maybe_unused);
    for (const auto& rw : rewrites) {
      const auto& layer = rw.layer;
      const onnx::GraphProto* g = graph::GraphAt(*model, layer.scope, layer.scope.size());
      if (g == nullptr || !layer.eligible() || layer.node_index < 0 ||
          layer.node_index >= g->node_size()) {
        return InvalidArgument("layer '" + layer.node_name + "' cannot be rewritten");
      }
      KFC_ASSIGN_OR_RETURN(auto nodes, emitter.Emit(rw));
      if (!rw.doc_string.empty()) {
        for (auto& n : nodes) n.set_doc_string(rw.doc_string);
      }
      if (emitted != nullptr) {
        emitted->push_back({layer, {}});
        for (const auto& n : nodes) emitted->back().nodes.push_back(n.name());
      }
      GraphEdits& e = edits[ScopeKey(layer.scope, layer.scope.size())];
      e.scope = layer.scope;
      e.replacements[layer.node_index] = std::move(nodes);
      e.dead.insert(layer.chain.begin(), layer.chain.end());
      if (layer.constant_node >= 0) e.dead.insert(layer.constant_node);
    }
  }
  // A weight-path node stays while anything else still reads it: a layer sharing the weight may
  // have been left dense. Candidates can feed each other, so settle that to a fixed point.
  for (bool changed = true; changed;) {
    changed = false;
    const std::unordered_set<std::string> read = CollectReads(model->graph(), edits);
    for (auto& [key, e] : edits) {
      const onnx::GraphProto* g = graph::GraphAt(*model, e.scope, e.scope.size());
      for (auto it = e.dead.begin(); it != e.dead.end();) {
        const auto& outs = g->node(*it).output();
        if (std::any_of(outs.begin(), outs.end(),
                        [&](const std::string& o) { return read.count(o); })) {
          it = e.dead.erase(it);
          changed = true;
        } else {
          ++it;
        }
      }
    }
  }
  // Deepest graphs first: rebuilding a graph renumbers its nodes, which the scopes of its
  // subgraphs refer to.
  std::vector<GraphEdits*> order;
  for (auto& [key, e] : edits) order.push_back(&e);
  std::stable_sort(order.begin(), order.end(), [](const GraphEdits* a, const GraphEdits* b) {
    return a->scope.size() > b->scope.size();
  });
  for (GraphEdits* e : order) {
    auto* old_nodes = graph::MutableGraphAt(model, e->scope, e->scope.size())->mutable_node();
    google::protobuf::RepeatedPtrField<onnx::NodeProto> rebuilt;
    for (int i = 0; i < old_nodes->size(); ++i) {
      if (e->dead.count(i)) continue;
      auto it = e->replacements.find(i);
      if (it == e->replacements.end()) {
        rebuilt.Add()->Swap(old_nodes->Mutable(i));
      } else {
        for (auto& n : it->second) rebuilt.Add()->Swap(&n);
      }
    }
    old_nodes->Swap(&rebuilt);
  }
  const graph::UseCounts used = graph::CountUses(model->graph());
  std::unordered_set<std::string> dead;
  for (const auto& n : maybe_unused) {
    if (!used.count(n)) dead.insert(n);
  }
  RemoveUnused(model->mutable_graph(), dead);
  return Status::Ok();
}

}  // namespace kfc::rewrite
