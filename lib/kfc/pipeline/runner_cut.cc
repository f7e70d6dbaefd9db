// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/runner_cut.h"

#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <functional>

#include "kfc/check/schemas.h"
#include "kfc/graph/walk.h"
#include "kfc/match/match.h"

namespace kfc::pipeline {
namespace {

using Names = std::set<std::string>;

// The names a node reads: its inputs, and what its subgraphs (at any depth) read from outside
// them, conservatively: every name read in them that none of them makes.
Names Reads(const onnx::NodeProto& node) {
  Names out(node.input().begin(), node.input().end());
  Names used, made;
  graph::ForEachSubgraph(node, [&](const onnx::GraphProto& sub, int, int) {
    graph::ForEachGraph(sub, [&](const onnx::GraphProto& g) {
      for (const auto& v : g.input()) made.insert(v.name());
      for (const auto& t : g.initializer()) made.insert(t.name());
      for (const auto& t : g.sparse_initializer()) made.insert(t.values().name());
      for (const auto& n : g.node()) {
        used.insert(n.input().begin(), n.input().end());
        made.insert(n.output().begin(), n.output().end());
      }
      for (const auto& v : g.output()) used.insert(v.name());
    });
  });
  for (const auto& u : used) {
    if (made.count(u) == 0) out.insert(u);
  }
  out.erase("");
  return out;
}

// Whether a tensor of `type` can be recorded and fed back as it was: float32 or float64 (the
// runner records those in their own dtype), with a leading dim that is not a constant.
bool Feedable(const onnx::TypeProto* type) {
  if (type == nullptr || !type->has_tensor_type()) return false;
  const auto& t = type->tensor_type();
  if (t.elem_type() != onnx::TensorProto::FLOAT && t.elem_type() != onnx::TensorProto::DOUBLE) {
    return false;
  }
  return t.has_shape() && t.shape().dim_size() >= 1 && !t.shape().dim(0).has_dim_value();
}

// The names of the main graph's inputs that callers feed (no initializer of the same name).
std::vector<std::string> Fed(const onnx::GraphProto& g) {
  Names init;
  for (const auto& t : g.initializer()) init.insert(t.name());
  std::vector<std::string> out;
  for (const auto& v : g.input()) {
    if (init.count(v.name()) == 0) out.push_back(v.name());
  }
  return out;
}

// Floating-point initializers of at least this many bytes are copied without their values for
// shape inference, which reads only their dims (it reads the values of integer tensors: shapes,
// axes, pads), as it does for weights held in external data.
constexpr size_t kShapeOnlyBytes = 4096;

// `model` for shape inference: everything but the values of large floating-point initializers of
// the main graph (a large inline model is not copied whole).
onnx::ModelProto WithoutWeightValues(const onnx::ModelProto& model) {
  onnx::ModelProto out;
  out.set_ir_version(model.ir_version());
  *out.mutable_opset_import() = model.opset_import();
  *out.mutable_functions() = model.functions();
  const onnx::GraphProto& g = model.graph();
  onnx::GraphProto* to = out.mutable_graph();
  to->set_name(g.name());
  *to->mutable_node() = g.node();
  *to->mutable_input() = g.input();
  *to->mutable_output() = g.output();
  *to->mutable_value_info() = g.value_info();
  for (const auto& t : g.initializer()) {
    const bool floating =
        t.data_type() == onnx::TensorProto::FLOAT || t.data_type() == onnx::TensorProto::DOUBLE ||
        t.data_type() == onnx::TensorProto::FLOAT16 || t.data_type() == onnx::TensorProto::BFLOAT16;
    if (!floating || t.ByteSizeLong() < kShapeOnlyBytes) {
      *to->add_initializer() = t;
      continue;
    }
    onnx::TensorProto* meta = to->add_initializer();
    meta->set_name(t.name());
    meta->set_data_type(t.data_type());
    *meta->mutable_dims() = t.dims();
  }
  return out;
}

// A copy of `model` (without the values of its large weights) with the types shape inference
// finds (non-strict, through the schemas that apply at its opset, as the probe infers them).
StatusOr<onnx::ModelProto> Inferred(const onnx::ModelProto& model, const std::string& what) {
  onnx::ModelProto inferred = WithoutWeightValues(model);
  try {
    onnx::ShapeInferenceOptions options(false, 0, false);
    onnx::shape_inference::InferShapes(inferred, check::KnownSchemas::Instance(), options);
  } catch (const std::exception& e) {
    return FailedPrecondition(what + " failed: " + e.what());
  }
  return inferred;
}

}  // namespace

StatusOr<Frontier> FindFrontier(const onnx::ModelProto& model) {
  const onnx::GraphProto& g = model.graph();
  if (g.sparse_initializer_size() > 0)
    return FailedPrecondition("the model has sparse initializers");
  // The main-graph nodes compression may replace: eligible layers, and nodes holding one.
  std::vector<bool> changed(static_cast<size_t>(g.node_size()), false);
  int layers = 0;
  for (const auto& c : match::FindLayers(model)) {
    if (!c.eligible()) continue;
    const int at = c.scope.empty() ? c.node_index : c.scope.front().node;
    if (at >= 0 && at < g.node_size()) changed[static_cast<size_t>(at)] = true;
    ++layers;
  }
  if (layers == 0) return FailedPrecondition("no layer can be compressed");
  KFC_ASSIGN_OR_RETURN(const onnx::ModelProto inferred, Inferred(model, "shape inference"));
  std::map<std::string, const onnx::TypeProto*> types;
  const onnx::GraphProto& ig = inferred.graph();
  for (const auto* list : {&ig.input(), &ig.value_info(), &ig.output()}) {
    for (const auto& v : *list) types[v.name()] = &v.type();
  }
  Frontier f;
  for (const auto& [name, type] : types) {
    if (type->has_tensor_type() && type->tensor_type().has_shape()) f.known_types[name] = *type;
  }
  const std::vector<std::string> fed = Fed(g);
  for (const auto& name : fed) {
    const auto* t = types.count(name) ? types[name] : nullptr;
    if (t != nullptr && t->has_tensor_type() && t->tensor_type().has_shape() &&
        t->tensor_type().shape().dim_size() > 0 &&
        t->tensor_type().shape().dim(0).has_dim_value()) {
      return FailedPrecondition("input '" + name + "' has a fixed leading dim");
    }
  }

  const size_t n = static_cast<size_t>(g.node_size());
  std::vector<Names> reads(n);
  std::map<std::string, size_t> producer;
  Names varying(fed.begin(), fed.end());  // tensors that depend on the model's inputs
  Names downstream;                       // tensors that depend on a changed node
  std::vector<bool> in_cut(n, false);
  for (size_t i = 0; i < n; ++i) {
    const auto& node = g.node(static_cast<int>(i));
    reads[i] = Reads(node);
    bool varies = false;
    bool down = changed[i];
    for (const auto& r : reads[i]) {
      varies = varies || varying.count(r) > 0;
      down = down || downstream.count(r) > 0;
    }
    in_cut[i] = down;
    for (const auto& o : node.output()) {
      if (o.empty()) continue;
      producer[o] = i;
      if (varies) varying.insert(o);
      if (down) downstream.insert(o);
    }
  }
  // Tensors the cut reads that cannot be fed pull their producers in, until all can.
  for (bool grew = true; grew;) {
    grew = false;
    for (size_t i = 0; i < n; ++i) {
      if (!in_cut[i]) continue;
      for (const auto& r : reads[i]) {
        auto p = producer.find(r);
        if (p == producer.end() || in_cut[p->second]) continue;
        const auto t = types.find(r);
        if (varying.count(r) > 0 && Feedable(t == types.end() ? nullptr : t->second)) continue;
        in_cut[p->second] = true;
        grew = true;
      }
    }
  }
  Names listed;
  for (size_t i = 0; i < n; ++i) {
    if (!in_cut[i]) {
      ++f.nodes_before;
      for (const auto& o : g.node(static_cast<int>(i)).output()) {
        if (!o.empty()) f.before.insert(o);
      }
      continue;
    }
    ++f.nodes_after;
  }
  // In the order their producers come.
  std::vector<std::pair<size_t, std::string>> order;
  for (size_t i = 0; i < n; ++i) {
    if (!in_cut[i]) continue;
    for (const auto& r : reads[i]) {
      if (f.before.count(r) == 0 || !listed.insert(r).second) continue;
      order.emplace_back(producer[r], r);
    }
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [at, name] : order) {
    onnx::TypeProto type = *types[name];
    auto* dim0 = type.mutable_tensor_type()->mutable_shape()->mutable_dim(0);
    dim0->Clear();
    dim0->set_dim_param("kfc_rows");
    f.recorded.push_back(name);
    f.types[name] = type;
  }
  if (f.nodes_before == 0 || f.recorded.empty()) {
    return FailedPrecondition("no node comes before the first layer");
  }
  return f;
}

StatusOr<onnx::ModelProto> BuildCutModel(const onnx::ModelProto& version, const Frontier& frontier,
                                         const std::vector<std::string>& requested) {
  const onnx::GraphProto& g = version.graph();
  if (g.sparse_initializer_size() > 0)
    return FailedPrecondition("the model has sparse initializers");
  const int n = g.node_size();
  std::vector<bool> keep(static_cast<size_t>(n), false);
  Names needed(requested.begin(), requested.end()), made;
  for (int i = n - 1; i >= 0; --i) {
    const auto& node = g.node(i);
    bool after = node.output_size() == 0, wanted = false;
    for (const auto& o : node.output()) {
      after = after || (!o.empty() && frontier.before.count(o) == 0);
      wanted = wanted || needed.count(o) > 0;
    }
    if (!after || !wanted) continue;
    keep[static_cast<size_t>(i)] = true;
    made.insert(node.output().begin(), node.output().end());
    for (const auto& r : Reads(node)) needed.insert(r);
  }
  for (const auto& r : requested) {
    if (made.count(r) == 0) {
      return InvalidArgument("tensor '" + r + "' is not made after the cut");
    }
  }
  std::map<std::string, const onnx::TensorProto*> init;
  for (const auto& t : g.initializer()) init[t.name()] = &t;
  std::map<std::string, const onnx::ValueInfoProto*> infos;
  for (const auto* list : {&g.value_info(), &g.output(), &g.input()}) {
    for (const auto& v : *list) infos.emplace(v.name(), &v);
  }

  onnx::ModelProto cut = version;
  onnx::GraphProto* out = cut.mutable_graph();
  out->clear_node();
  out->clear_initializer();
  out->clear_input();
  out->clear_output();
  out->clear_value_info();
  for (int i = 0; i < n; ++i) {
    if (keep[static_cast<size_t>(i)]) *out->add_node() = g.node(i);
  }
  Names fed;
  for (const auto& v : g.input()) {
    if (needed.count(v.name()) > 0 && made.count(v.name()) == 0 && init.count(v.name()) == 0) {
      *out->add_input() = v;
      fed.insert(v.name());
    }
  }
  for (const auto& name : frontier.recorded) {
    if (needed.count(name) == 0 || made.count(name) > 0) continue;
    auto* v = out->add_input();
    v->set_name(name);
    *v->mutable_type() = frontier.types.at(name);
    fed.insert(name);
  }
  for (const auto& t : g.initializer()) {
    if (needed.count(t.name()) > 0 && made.count(t.name()) == 0 && fed.count(t.name()) == 0) {
      *out->add_initializer() = t;
      fed.insert(t.name());
    }
  }
  for (const auto& r : needed) {
    if (made.count(r) == 0 && fed.count(r) == 0 && !r.empty()) {
      return Internal("cut: tensor '" + r + "' is read but neither made in the cut nor fed");
    }
  }
  for (const auto& r : requested) {
    auto it = infos.find(r);
    auto* v = out->add_output();
    if (it != infos.end() && it->second->type().has_tensor_type()) {
      *v = *it->second;
    } else {
      v->set_name(r);
      v->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    }
  }
  Names outputs(requested.begin(), requested.end());
  for (const auto& v : g.value_info()) {
    if (made.count(v.name()) > 0 && outputs.count(v.name()) == 0) *out->add_value_info() = v;
  }
  // Graph outputs need a shape (the ONNX checker's rule): those `version` gives none get the one
  // shape inference finds on the cut.
  bool shapeless = false;
  for (const auto& v : out->output()) shapeless = shapeless || !v.type().tensor_type().has_shape();
  if (shapeless) {
    KFC_ASSIGN_OR_RETURN(const onnx::ModelProto inferred,
                         Inferred(cut, "cut model: shape inference"));
    std::map<std::string, const onnx::TypeProto*> found;
    for (const auto& v : inferred.graph().value_info()) found[v.name()] = &v.type();
    for (const auto& v : inferred.graph().output()) found[v.name()] = &v.type();
    for (auto& v : *out->mutable_output()) {
      auto it = found.find(v.name());
      if (!v.type().tensor_type().has_shape() && it != found.end() &&
          it->second->tensor_type().has_shape()) {
        *v.mutable_type() = *it->second;
      }
    }
    // Else the original's type (inference may know less on the cut: e.g. a Reshape whose shape
    // it folded from the static dims of a tensor that is now fed with a symbolic leading dim),
    // through Identity nodes (how compensation passes expose their tensors).
    std::map<std::string, std::string> identity_of;
    for (const auto& node : out->node()) {
      if (node.op_type() == "Identity" && node.input_size() == 1 && node.output_size() == 1) {
        identity_of[node.output(0)] = node.input(0);
      }
    }
    for (auto& v : *out->mutable_output()) {
      for (std::string at = v.name(); !v.type().tensor_type().has_shape();) {
        auto known = frontier.known_types.find(at);
        if (known != frontier.known_types.end()) {
          *v.mutable_type() = known->second;
          break;
        }
        auto id = identity_of.find(at);
        if (id == identity_of.end()) break;
        at = id->second;
      }
    }
  }
  return cut;
}

std::vector<runner::Record> ExposeFrontier(const Frontier& frontier,
                                           const std::set<std::string>& taken,
                                           onnx::ModelProto* probe) {
  Names outputs;
  for (const auto& v : probe->graph().output()) outputs.insert(v.name());
  std::vector<runner::Record> records;
  int next = 0;
  for (const auto& name : frontier.recorded) {
    if (outputs.count(name) > 0) continue;
    auto* v = probe->mutable_graph()->add_output();
    v->set_name(name);
    *v->mutable_type() = frontier.types.at(name);
    std::string stem;
    do {
      stem = "kfc_frontier_" + std::to_string(next++);
    } while (taken.count(stem) > 0);
    runner::Record r;
    r.set_tensor(name);
    r.set_stem(stem);
    records.push_back(r);
  }
  return records;
}

}  // namespace kfc::pipeline
