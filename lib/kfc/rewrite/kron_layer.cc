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

// Every name read as a node input or named as a graph output, in all graphs.
void CollectUses(const onnx::GraphProto& g, std::unordered_set<std::string>* used) {
  for (const auto& out : g.output()) used->insert(out.name());
  for (const auto& node : g.node()) {
    for (const auto& s : node.input()) used->insert(s);
    for (const auto& attr : node.attribute()) {
      if (attr.has_g()) CollectUses(attr.g(), used);
      for (const auto& sub : attr.graphs()) CollectUses(sub, used);
    }
  }
}

using Scope = std::vector<match::ScopeStep>;

// Identifies the graph `depth` steps into `scope` (map keys; "" is the main graph).
std::string ScopeKey(const Scope& scope, size_t depth) {
  std::string key;
  for (size_t i = 0; i < depth && i < scope.size(); ++i) {
    key += std::to_string(scope[i].node) + "." + std::to_string(scope[i].attribute) + "." +
           std::to_string(scope[i].graph) + "/";
  }
  return key;
}

// match::GraphAt for editing; the caller has checked the scope with GraphAt.
onnx::GraphProto* MutableGraphAt(onnx::ModelProto* model, const Scope& scope, size_t depth) {
  onnx::GraphProto* g = model->mutable_graph();
  for (size_t i = 0; i < depth; ++i) {
    auto* attr = g->mutable_node(scope[i].node)->mutable_attribute(scope[i].attribute);
    g = scope[i].graph < 0 ? attr->mutable_g() : attr->mutable_graphs(scope[i].graph);
  }
  return g;
}

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
    const onnx::GraphProto* g = match::GraphAt(model, scope, d);
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
    dtype_ = layer.dtype;
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
    const std::string first_w = Deduped(b_first ? "kfc_b" : "kfc_a", std::move(encoded->first));
    const std::string second_w = Deduped(b_first ? "kfc_a" : "kfc_b", std::move(encoded->second));
    encoded.reset();
    const ReshapeTargets targets =
        layer.weight_first ? WeightFirstTargets(layer, f, b_first) : RowTargets(layer, f, rw.order);
    const std::string shape_in = Shape("kfc_shape_in", targets.in);
    const std::string shape_mid = Shape("kfc_shape_mid", targets.mid);
    const std::string shape_out = Shape("kfc_shape_out", targets.out);

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
    AddInitializer(MutableGraphAt(model_, scope_, target_depth_),
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
  Scope scope_;
  size_t target_depth_ = 0;
  int32_t dtype_ = onnx::TensorProto::FLOAT;
};

// Removes initializers in `names` that no node of any graph reads and that no graph names as an
// output, from every graph, with their value_info entries (and main-graph input entries, IR 3).
// Subgraph inputs are never touched: Loop and Scan bind them by position.
void RemoveUnused(onnx::GraphProto* g, bool main, const std::unordered_set<std::string>& dead) {
  auto gone = [&](const std::string& n) { return dead.count(n) > 0; };
  auto* inits = g->mutable_initializer();
  inits->erase(std::remove_if(inits->begin(), inits->end(),
                              [&](const onnx::TensorProto& t) { return gone(t.name()); }),
               inits->end());
  if (main) {
    auto* inputs = g->mutable_input();
    inputs->erase(std::remove_if(inputs->begin(), inputs->end(),
                                 [&](const onnx::ValueInfoProto& v) { return gone(v.name()); }),
                  inputs->end());
  }
  auto* vis = g->mutable_value_info();
  vis->erase(std::remove_if(vis->begin(), vis->end(),
                            [&](const onnx::ValueInfoProto& v) { return gone(v.name()); }),
             vis->end());
  for (auto& node : *g->mutable_node()) {
    for (auto& attr : *node.mutable_attribute()) {
      if (attr.has_g()) RemoveUnused(attr.mutable_g(), false, dead);
      for (auto& sub : *attr.mutable_graphs()) RemoveUnused(&sub, false, dead);
    }
  }
}

// What the rewrite does to one graph's node list.
struct GraphEdits {
  Scope scope;
  std::map<int, std::vector<onnx::NodeProto>> replacements;  // node index -> its subgraph
  std::set<int> dead;  // Identity/Cast/Constant nodes that only fed rewritten weights
};
using EditMap = std::map<std::string, GraphEdits>;  // by ScopeKey of the graph

// Names read once the edits are applied: inputs of the nodes that stay and of the replacements,
// and every graph's outputs, through all subgraphs.
void CollectReads(const onnx::GraphProto& g, Scope* scope, const EditMap& edits,
                  std::unordered_set<std::string>* read) {
  for (const auto& out : g.output()) read->insert(out.name());
  auto found = edits.find(ScopeKey(*scope, scope->size()));
  const GraphEdits* e = found == edits.end() ? nullptr : &found->second;
  for (int i = 0; i < g.node_size(); ++i) {
    if (e != nullptr && e->dead.count(i)) continue;
    if (e != nullptr && e->replacements.count(i)) {
      for (const auto& n : e->replacements.at(i))
        for (const auto& in : n.input()) read->insert(in);
      continue;
    }
    const auto& node = g.node(i);
    for (const auto& in : node.input()) read->insert(in);
    for (int a = 0; a < node.attribute_size(); ++a) {
      const auto& attr = node.attribute(a);
      auto recurse = [&](const onnx::GraphProto& sub, int index) {
        scope->push_back({i, a, index});
        CollectReads(sub, scope, edits, read);
        scope->pop_back();
      };
      if (attr.has_g()) recurse(attr.g(), -1);
      for (int j = 0; j < attr.graphs_size(); ++j) recurse(attr.graphs(j), j);
    }
  }
}

}  // namespace

Status ApplyKronRewrites(onnx::ModelProto* model, const std::vector<KronRewrite>& rewrites) {
  if (rewrites.empty()) return Status::Ok();
  NameGenerator names;
  CollectNames(model->graph(), &names);
  std::unordered_set<std::string> maybe_unused;
  EditMap edits;
  {
    LayerEmitter emitter(model, &names, &maybe_unused);
    for (const auto& rw : rewrites) {
      const auto& layer = rw.layer;
      const onnx::GraphProto* g = match::GraphAt(*model, layer.scope, layer.scope.size());
      if (g == nullptr || !layer.eligible() || layer.node_index < 0 ||
          layer.node_index >= g->node_size()) {
        return InvalidArgument("layer '" + layer.node_name + "' cannot be rewritten");
      }
      KFC_ASSIGN_OR_RETURN(auto nodes, emitter.Emit(rw));
      if (!rw.doc_string.empty()) {
        for (auto& n : nodes) n.set_doc_string(rw.doc_string);
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
    std::unordered_set<std::string> read;
    Scope root;
    CollectReads(model->graph(), &root, edits, &read);
    for (auto& [key, e] : edits) {
      const onnx::GraphProto* g = match::GraphAt(*model, e.scope, e.scope.size());
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
    auto* old_nodes = MutableGraphAt(model, e->scope, e->scope.size())->mutable_node();
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
  std::unordered_set<std::string> used, dead;
  CollectUses(model->graph(), &used);
  for (const auto& n : maybe_unused) {
    if (!used.count(n)) dead.insert(n);
  }
  RemoveUnused(model->mutable_graph(), true, dead);
  return Status::Ok();
}

}  // namespace kfc::rewrite
