#include "kfc/rewrite/kron_layer.h"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_set>

#include "kfc/core/names.h"
#include "kfc/tensor/tensor.h"

namespace kfc::rewrite {
namespace {

using kron::ContractionOrder;
using kron::KronFactors;

void CollectNames(const onnx::GraphProto& g, NameGenerator* names) {
  for (const auto& t : g.initializer()) names->Reserve(t.name());
  for (const auto& sp : g.sparse_initializer()) {
    names->Reserve(sp.values().name());
    names->Reserve(sp.indices().name());
  }
  for (const auto& vi : g.input()) names->Reserve(vi.name());
  for (const auto& vi : g.output()) names->Reserve(vi.name());
  for (const auto& vi : g.value_info()) names->Reserve(vi.name());
  for (const auto& node : g.node()) {
    names->Reserve(node.name());
    for (const auto& s : node.input()) names->Reserve(s);
    for (const auto& s : node.output()) names->Reserve(s);
    for (const auto& attr : node.attribute()) {
      if (attr.has_g()) CollectNames(attr.g(), names);
      for (const auto& sub : attr.graphs()) CollectNames(sub, names);
    }
  }
}

void CollectUses(const onnx::GraphProto& g, std::unordered_set<std::string>* used) {
  for (const auto& node : g.node()) {
    for (const auto& s : node.input()) used->insert(s);
    for (const auto& attr : node.attribute()) {
      if (attr.has_g()) CollectUses(attr.g(), used);
      for (const auto& sub : attr.graphs()) CollectUses(sub, used);
    }
  }
}

// Adds an initializer; IR version 3 requires every initializer to be a graph input too.
void AddInitializer(onnx::ModelProto* model, onnx::TensorProto t) {
  if (model->ir_version() < 4) {
    auto* vi = model->mutable_graph()->add_input();
    vi->set_name(t.name());
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(t.data_type());
    auto* shape = tt->mutable_shape();
    for (int64_t d : t.dims()) shape->add_dim()->set_dim_value(d);
  }
  *model->mutable_graph()->add_initializer() = std::move(t);
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

// The two stacked factor matrices for `order`, as (first-MatMul constant, second-MatMul constant)
// with their dims; see the picture in the header for the index maps.
struct StackedFactors {
  std::vector<float> first, second;
  std::vector<int64_t> first_dims, second_dims;
  std::vector<int64_t> mid_tail;  // trailing dims of the middle Reshape
};

StackedFactors Stack(const KronFactors& f, float alpha, ContractionOrder order) {
  const int64_t k1 = f.shape.k1, n1 = f.shape.n1, k2 = f.shape.k2, n2 = f.shape.n2, r = f.rank;
  auto a = [&](int64_t t, int64_t i1, int64_t j1) { return f.a[(t * k1 + i1) * n1 + j1]; };
  auto b = [&](int64_t t, int64_t i2, int64_t j2) { return f.b[(t * k2 + i2) * n2 + j2]; };
  StackedFactors s;
  if (order == ContractionOrder::kBFirst) {
    s.first_dims = {k2, r * n2};  // Bcat
    s.first.resize(static_cast<size_t>(k2 * r * n2));
    for (int64_t i2 = 0; i2 < k2; ++i2)
      for (int64_t t = 0; t < r; ++t)
        for (int64_t j2 = 0; j2 < n2; ++j2) s.first[(i2 * r + t) * n2 + j2] = b(t, i2, j2);
    s.second_dims = {n1, k1 * r};  // Acat
    s.second.resize(static_cast<size_t>(n1 * k1 * r));
    for (int64_t j1 = 0; j1 < n1; ++j1)
      for (int64_t i1 = 0; i1 < k1; ++i1)
        for (int64_t t = 0; t < r; ++t) s.second[(j1 * k1 + i1) * r + t] = alpha * a(t, i1, j1);
    s.mid_tail = {k1 * r, n2};
  } else {
    s.first_dims = {n1 * r, k1};  // Acat
    s.first.resize(static_cast<size_t>(n1 * r * k1));
    for (int64_t j1 = 0; j1 < n1; ++j1)
      for (int64_t t = 0; t < r; ++t)
        for (int64_t i1 = 0; i1 < k1; ++i1) s.first[(j1 * r + t) * k1 + i1] = alpha * a(t, i1, j1);
    s.second_dims = {r * k2, n2};  // Bstack
    s.second.resize(static_cast<size_t>(r * k2 * n2));
    for (int64_t t = 0; t < r; ++t)
      for (int64_t i2 = 0; i2 < k2; ++i2)
        for (int64_t j2 = 0; j2 < n2; ++j2) s.second[(t * k2 + i2) * n2 + j2] = b(t, i2, j2);
    s.mid_tail = {n1, r * k2};
  }
  return s;
}

class LayerEmitter {
 public:
  LayerEmitter(onnx::ModelProto* model, NameGenerator* names,
               std::unordered_set<std::string>* maybe_unused)
      : model_(model), names_(names), maybe_unused_(maybe_unused) {
    for (const auto& t : model->graph().initializer()) initializers_[t.name()] = &t;
    for (const auto& vi : model->graph().input()) graph_inputs_.insert(vi.name());
  }

  StatusOr<std::vector<onnx::NodeProto>> Emit(const KronRewrite& rw) {
    const auto& layer = rw.layer;
    const auto& f = rw.factors;
    if (f.shape.K() != layer.k || f.shape.N() != layer.n) {
      return InvalidArgument("layer '" + layer.node_name + "': factor shape does not match " +
                             std::to_string(layer.k) + " x " + std::to_string(layer.n));
    }
    base_ = layer.node_name.empty() ? layer.output_name : layer.node_name;
    const int64_t copied = layer.input_rank - 1;
    const bool gemm = layer.op_type == "Gemm";
    const float alpha = gemm ? layer.alpha : 1.0f;
    StackedFactors s = Stack(f, alpha, rw.order);
    const bool b_first = rw.order == ContractionOrder::kBFirst;

    const std::string first_w = Constant(b_first ? "kfc_b" : "kfc_a", s.first_dims, s.first);
    const std::string second_w = Constant(b_first ? "kfc_a" : "kfc_b", s.second_dims, s.second);
    const std::string shape_in =
        Shape("kfc_shape_in", ReshapeTarget(copied, {f.shape.k1, f.shape.k2}));
    const std::string shape_mid = Shape("kfc_shape_mid", ReshapeTarget(copied, s.mid_tail));
    const std::string shape_out = Shape("kfc_shape_out", ReshapeTarget(copied, {layer.n}));

    std::vector<onnx::NodeProto> nodes;
    std::string x = layer.input_name;
    if (layer.trans_a) {  // Gemm transA=1: X is stored [K, M]
      x = Value("kfc_x_t");
      nodes.push_back(MakeNode("Transpose", NodeName("kfc_transpose_in"), {layer.input_name}, x));
      auto* perm = nodes.back().add_attribute();
      perm->set_name("perm");
      perm->set_type(onnx::AttributeProto::INTS);
      perm->add_ints(1);
      perm->add_ints(0);
    }
    const std::string x4 = Value("kfc_x");
    nodes.push_back(MakeNode("Reshape", NodeName("kfc_reshape_in"), {x, shape_in}, x4));
    const std::string mid = Value("kfc_mid");
    nodes.push_back(MakeNode(
        "MatMul", NodeName("kfc_matmul_1"),
        b_first ? std::vector<std::string>{x4, first_w} : std::vector<std::string>{first_w, x4},
        mid));
    const std::string mid2 = Value("kfc_mid_reshaped");
    nodes.push_back(MakeNode("Reshape", NodeName("kfc_reshape_mid"), {mid, shape_mid}, mid2));
    const std::string y4 = Value("kfc_y4");
    nodes.push_back(MakeNode("MatMul", NodeName("kfc_matmul_2"),
                             b_first ? std::vector<std::string>{second_w, mid2}
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
      const std::string c = Constant("kfc_bias_correction", {layer.n}, correction);
      nodes.push_back(MakeNode("Add", NodeName("kfc_add_bias_correction"), {uncorrected, c},
                               layer.output_name));
    }
    maybe_unused_->insert(layer.weight_tensor_name);
    return nodes;
  }

 private:
  std::string Value(const std::string& suffix) { return names_->Unique(base_ + "/" + suffix); }
  std::string NodeName(const std::string& suffix) { return names_->Unique(base_ + "/" + suffix); }
  std::string Constant(const std::string& suffix, const std::vector<int64_t>& dims,
                       const std::vector<float>& data) {
    return Deduped(suffix, tensor::EncodeFloat32("", dims, data));
  }
  // Adds `t` under a new name derived from `suffix`, unless an identical tensor (dtype, dims,
  // bytes) was added before: layers sharing a weight then share its factors.
  std::string Deduped(const std::string& suffix, onnx::TensorProto t) {
    std::string key = std::to_string(t.data_type()) + "|";
    for (int64_t d : t.dims()) key += std::to_string(d) + ",";
    key += "|" + t.raw_data();
    auto it = emitted_.find(key);
    if (it != emitted_.end()) return it->second;
    std::string name = names_->Unique(base_ + "." + suffix);
    t.set_name(name);
    AddInitializer(model_, std::move(t));
    emitted_.emplace(std::move(key), name);
    return name;
  }
  std::string Shape(const std::string& suffix, const std::vector<int64_t>& shape) {
    return Deduped(suffix, tensor::EncodeInt64("", {static_cast<int64_t>(shape.size())}, shape));
  }

  // beta * C: folded into a new initializer when C is an inline fp32 initializer that callers
  // cannot override, else computed with a Mul node.
  StatusOr<std::string> ScaledBias(const match::LayerCandidate& layer,
                                   std::vector<onnx::NodeProto>* nodes) {
    if (layer.beta == 1.0f) return layer.bias_name;
    auto it = initializers_.find(layer.bias_name);
    const bool foldable = it != initializers_.end() && !graph_inputs_.count(layer.bias_name) &&
                          !tensor::HasExternalData(*it->second) &&
                          it->second->data_type() == onnx::TensorProto::FLOAT;
    if (foldable) {
      KFC_ASSIGN_OR_RETURN(std::vector<float> c, tensor::DecodeFloat32(*it->second));
      for (float& v : c) v *= layer.beta;
      std::vector<int64_t> dims(it->second->dims().begin(), it->second->dims().end());
      maybe_unused_->insert(layer.bias_name);
      return Constant("kfc_bias", dims, c);
    }
    const std::string beta = Constant("kfc_beta", {}, {layer.beta});
    const std::string scaled = Value("kfc_scaled_bias");
    nodes->push_back(MakeNode("Mul", NodeName("kfc_scale_bias"), {layer.bias_name, beta}, scaled));
    return scaled;
  }

  onnx::ModelProto* model_;
  NameGenerator* names_;
  std::unordered_set<std::string>* maybe_unused_;
  std::map<std::string, const onnx::TensorProto*> initializers_;
  std::unordered_set<std::string> graph_inputs_;
  std::map<std::string, std::string> emitted_;  // tensor content -> initializer name
  std::string base_;
};

// Removes initializers in `names` that no node of any graph reads and that are not graph outputs,
// with their graph-input and value_info entries.
void RemoveUnused(onnx::ModelProto* model, const std::unordered_set<std::string>& names) {
  auto* g = model->mutable_graph();
  std::unordered_set<std::string> used;
  CollectUses(*g, &used);
  for (const auto& out : g->output()) used.insert(out.name());
  auto dead = [&](const std::string& n) { return names.count(n) && !used.count(n); };
  auto* inits = g->mutable_initializer();
  inits->erase(std::remove_if(inits->begin(), inits->end(),
                              [&](const onnx::TensorProto& t) { return dead(t.name()); }),
               inits->end());
  auto* inputs = g->mutable_input();
  inputs->erase(std::remove_if(inputs->begin(), inputs->end(),
                               [&](const onnx::ValueInfoProto& v) { return dead(v.name()); }),
                inputs->end());
  auto* vis = g->mutable_value_info();
  vis->erase(std::remove_if(vis->begin(), vis->end(),
                            [&](const onnx::ValueInfoProto& v) { return dead(v.name()); }),
             vis->end());
}

}  // namespace

Status ApplyKronRewrites(onnx::ModelProto* model, const std::vector<KronRewrite>& rewrites) {
  if (rewrites.empty()) return Status::Ok();
  NameGenerator names;
  CollectNames(model->graph(), &names);
  std::unordered_set<std::string> maybe_unused;
  std::map<int, std::vector<onnx::NodeProto>> replacements;
  // Identity/Cast/Constant nodes that only fed a rewritten layer's weight (match checked that
  // every value on that path has the layer as its only use).
  std::set<int> dead;
  {
    LayerEmitter emitter(model, &names, &maybe_unused);
    for (const auto& rw : rewrites) {
      if (rw.layer.graph_path != "main" || !rw.layer.eligible() || rw.layer.node_index < 0 ||
          rw.layer.node_index >= model->graph().node_size()) {
        return InvalidArgument("layer '" + rw.layer.node_name + "' cannot be rewritten");
      }
      KFC_ASSIGN_OR_RETURN(auto nodes, emitter.Emit(rw));
      replacements[rw.layer.node_index] = std::move(nodes);
      dead.insert(rw.layer.chain.begin(), rw.layer.chain.end());
      if (rw.layer.constant_node >= 0) dead.insert(rw.layer.constant_node);
    }
  }
  // A weight-path node stays while anything else still reads it: a layer sharing the weight may
  // have been left dense. Candidates can feed each other, so settle that to a fixed point.
  auto* old_nodes = model->mutable_graph()->mutable_node();
  for (bool changed = true; changed;) {
    changed = false;
    std::unordered_set<std::string> read;
    for (const auto& out : model->graph().output()) read.insert(out.name());
    for (int i = 0; i < old_nodes->size(); ++i) {
      if (dead.count(i) || replacements.count(i)) continue;
      for (const auto& in : old_nodes->Get(i).input()) read.insert(in);
      for (const auto& attr : old_nodes->Get(i).attribute()) {
        if (attr.has_g()) CollectUses(attr.g(), &read);
        for (const auto& sub : attr.graphs()) CollectUses(sub, &read);
      }
    }
    for (const auto& [index, nodes] : replacements) {
      for (const auto& n : nodes)
        for (const auto& in : n.input()) read.insert(in);
    }
    for (auto it = dead.begin(); it != dead.end();) {
      const auto& outs = old_nodes->Get(*it).output();
      if (std::any_of(outs.begin(), outs.end(),
                      [&](const std::string& o) { return read.count(o); })) {
        it = dead.erase(it);
        changed = true;
      } else {
        ++it;
      }
    }
  }
  google::protobuf::RepeatedPtrField<onnx::NodeProto> rebuilt;
  for (int i = 0; i < old_nodes->size(); ++i) {
    if (dead.count(i)) continue;
    auto it = replacements.find(i);
    if (it == replacements.end()) {
      rebuilt.Add()->Swap(old_nodes->Mutable(i));
    } else {
      for (auto& n : it->second) rebuilt.Add()->Swap(&n);
    }
  }
  old_nodes->Swap(&rebuilt);
  RemoveUnused(model, maybe_unused);
  return Status::Ok();
}

}  // namespace kfc::rewrite
