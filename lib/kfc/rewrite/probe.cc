#include "kfc/rewrite/probe.h"

#include <algorithm>
#include <map>
#include <optional>

#include "kfc/core/names.h"
#include "kfc/graph/names.h"
#include "kfc/graph/scope.h"
#include "onnx/shape_inference/implementation.h"

namespace kfc::rewrite {
namespace {

// The type of value `name` after shape inference (graph inputs, value_info, outputs).
std::optional<onnx::TypeProto> TypeOf(const onnx::GraphProto& g, const std::string& name) {
  for (const auto* list : {&g.input(), &g.value_info(), &g.output()}) {
    for (const auto& vi : *list) {
      if (vi.name() == name && vi.has_type()) return vi.type();
    }
  }
  return std::nullopt;
}

// Whether `name` is a value of `g` itself (an input or a node output), not of an enclosing graph.
bool MadeIn(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& v : g.input()) {
    if (v.name() == name) return true;
  }
  for (const auto& n : g.node()) {
    for (const auto& o : n.output()) {
      if (o == name) return true;
    }
  }
  return false;
}

// A value of `type`'s element type and `rank` dims of unknown size (the checker wants a shape).
onnx::ValueInfoProto OfRank(const std::string& name, const onnx::TypeProto& type, int rank) {
  onnx::ValueInfoProto v;
  v.set_name(name);
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(type.tensor_type().elem_type());
  for (int i = 0; i < rank; ++i) t->mutable_shape()->add_dim();
  return v;
}

// Makes `value` of the subgraph at `step` (below `outer`) a new output `exposed` of the node
// holding it: an extra body output (Identity), which for Loop and Scan is a scan output (stacked
// over iterations) and for If needs the same output in the other branch, where it is an empty
// tensor (no rows) of the same rank with K on its feature axis. `rank` is the value's rank.
void ExposeFromSubgraph(const graph::ScopeStep& step, const std::string& value,
                        const std::string& exposed, const onnx::TypeProto& type, int rank,
                        bool columns, int64_t k, NameGenerator* names, onnx::GraphProto* outer) {
  onnx::NodeProto* parent = outer->mutable_node(step.node);
  onnx::AttributeProto* attr = parent->mutable_attribute(step.attribute);
  onnx::GraphProto* body = step.graph < 0 ? attr->mutable_g() : attr->mutable_graphs(step.graph);
  const std::string inner = names->Unique(exposed + "_body");
  auto* id = body->add_node();
  id->set_op_type("Identity");
  id->set_name(names->Unique(inner + "/identity"));
  id->add_input(value);
  id->add_output(inner);
  *body->add_output() = OfRank(inner, type, rank);
  if (parent->op_type() == "If") {
    std::vector<int64_t> dims(static_cast<size_t>(rank), 0);
    dims[static_cast<size_t>(rank - (columns ? 2 : 1))] = k;
    for (auto& other : *parent->mutable_attribute()) {
      if (!other.has_g() || other.name() == attr->name()) continue;
      const std::string empty = names->Unique(exposed + "_empty");
      auto* c = other.mutable_g()->add_node();
      c->set_op_type("Constant");
      c->set_name(names->Unique(empty + "/constant"));
      c->add_output(empty);
      auto* a = c->add_attribute();
      a->set_name("value");
      a->set_type(onnx::AttributeProto::TENSOR);
      a->mutable_t()->set_data_type(type.tensor_type().elem_type());
      for (int64_t d : dims) a->mutable_t()->add_dims(d);
      a->mutable_t()->set_raw_data("");
      *other.mutable_g()->add_output() = OfRank(empty, type, rank);
    }
  } else if (parent->op_type() == "Scan") {
    // Explicit per-output axes and directions get a default entry for the new output.
    for (auto& a : *parent->mutable_attribute()) {
      if (a.name() == "scan_output_axes" || a.name() == "scan_output_directions") a.add_ints(0);
    }
  }
  parent->add_output(exposed);
}

// How many steps into the layer's scope its input is made (0: the main graph): the innermost
// graph on the way that has it as an input or a node output.
size_t DepthMade(const onnx::ModelProto& model, const match::LayerCandidate& c) {
  for (size_t d = c.scope.size(); d >= 1; --d) {
    const onnx::GraphProto* g = graph::GraphAt(model, c.scope, d);
    if (g != nullptr && MadeIn(*g, c.input_name)) return d;
  }
  return 0;
}

}  // namespace

StatusOr<std::vector<ExposedInput>> ExposeLayerInputs(onnx::ModelProto* model) {
  onnx::ModelProto inferred = *model;
  try {
    onnx::ShapeInferenceOptions options(false, 0, false);
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::exception& e) {
    return FailedPrecondition(std::string("probe: shape inference failed: ") + e.what());
  }
  NameGenerator names;
  graph::ReserveNames(model->graph(), &names);
  std::vector<ExposedInput> exposed_inputs;
  std::map<std::string, size_t> by_source;  // by the graph making the value, and its name
  for (const auto& c : match::FindLayers(*model)) {
    if (!c.eligible() || c.k < 1) continue;
    // The input is exposed from the graph that makes it: through each enclosing If, Loop or Scan
    // node in turn, up to the main graph.
    const size_t depth = DepthMade(inferred, c);
    const std::string key = graph::ScopeKey(c.scope, depth) + "|" + c.input_name;
    auto it = by_source.find(key);
    if (it == by_source.end()) {
      const onnx::GraphProto* made_in = graph::GraphAt(inferred, c.scope, depth);
      std::optional<onnx::TypeProto> type =
          made_in != nullptr ? TypeOf(*made_in, c.input_name) : std::nullopt;
      if (!type || !type->has_tensor_type()) continue;
      const bool columns = match::ColumnSamples(c);
      const std::string name = names.Unique("kfc_calib_" + std::to_string(by_source.size()));
      std::string exposed = c.input_name;
      int rank = std::max(type->tensor_type().shape().dim_size(), columns ? 2 : 1);
      for (size_t d = depth; d >= 1; --d) {
        onnx::GraphProto* outer = graph::MutableGraphAt(model, c.scope, d - 1);
        const std::string next = names.Unique(name + "/level" + std::to_string(d));
        ExposeFromSubgraph(c.scope[d - 1], exposed, next, *type, rank, columns, c.k, &names, outer);
        // If merges its branches' shapes; Loop and Scan stack iterations on a new first axis.
        if (outer->node(c.scope[d - 1].node).op_type() != "If") ++rank;
        exposed = next;
      }
      if (depth > 0) *type = OfRank("", *type, rank).type();
      onnx::GraphProto* main = model->mutable_graph();
      auto* node = main->add_node();
      node->set_op_type("Identity");
      node->set_name(names.Unique(name + "/identity"));
      node->add_input(exposed);
      node->add_output(name);
      auto* out = main->add_output();
      out->set_name(name);
      *out->mutable_type() = *type;
      it = by_source.emplace(key, exposed_inputs.size()).first;
      ExposedInput& e = exposed_inputs.emplace_back();
      e.name = name;
      e.source = c.input_name;
      e.k = c.k;
      e.columns = columns;
    }
    exposed_inputs[it->second].layers.push_back(c.node_name);
  }
  return exposed_inputs;
}

}  // namespace kfc::rewrite
