#include "kfc/match/match.h"

#include <algorithm>
#include <exception>
#include <unordered_map>
#include <unordered_set>

#include "kfc/core/logging.h"
#include "kfc/tensor/tensor.h"
#include "onnx/defs/data_type_utils.h"
#include "onnx/defs/schema.h"
#include "onnx/shape_inference/implementation.h"

namespace kfc::match {
namespace {

using NameCount = std::unordered_map<std::string, int>;

// Counts every use of every name as a node input or a graph output, in all graphs (a subgraph
// may name an outer value as its output).
void CountUses(const onnx::GraphProto& g, NameCount* uses) {
  for (const auto& out : g.output()) ++(*uses)[out.name()];
  for (const auto& node : g.node()) {
    for (const auto& in : node.input()) ++(*uses)[in];
    for (const auto& attr : node.attribute()) {
      if (attr.has_g()) CountUses(attr.g(), uses);
      for (const auto& sub : attr.graphs()) CountUses(sub, uses);
    }
  }
}

// Dims of every value whose shape is known (-1 for a dim without a static value), from graph
// inputs, value_info and outputs.
using ShapeMap = std::unordered_map<std::string, std::vector<int64_t>>;

// Value names are unique across scopes (the checker enforces SSA through subgraphs), so one map
// serves every graph.
void KnownShapes(const onnx::GraphProto& g, ShapeMap* shapes) {
  auto add = [&](const onnx::ValueInfoProto& vi) {
    if (!vi.type().has_tensor_type() || !vi.type().tensor_type().has_shape()) return;
    std::vector<int64_t>& dims = (*shapes)[vi.name()];
    dims.clear();
    for (const auto& d : vi.type().tensor_type().shape().dim()) {
      dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
    }
  };
  for (const auto& vi : g.input()) add(vi);
  for (const auto& vi : g.value_info()) add(vi);
  for (const auto& vi : g.output()) add(vi);
  for (const auto& node : g.node()) {
    for (const auto& attr : node.attribute()) {
      if (attr.has_g()) KnownShapes(attr.g(), shapes);
      for (const auto& sub : attr.graphs()) KnownShapes(sub, shapes);
    }
  }
}

const onnx::AttributeProto* FindAttr(const onnx::NodeProto& node, const std::string& name) {
  for (const auto& a : node.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

struct GraphFacts {
  std::unordered_map<std::string, const onnx::TensorProto*> initializers;
  std::unordered_set<std::string> graph_inputs;
  std::unordered_set<std::string> constant_node_outputs;
  std::unordered_set<std::string> sparse_initializers;
  std::unordered_map<std::string, int> producer;  // value name -> index of the node writing it
};

GraphFacts FactsOf(const onnx::GraphProto& g) {
  GraphFacts f;
  for (const auto& t : g.initializer()) f.initializers[t.name()] = &t;
  for (const auto& vi : g.input()) f.graph_inputs.insert(vi.name());
  for (const auto& sp : g.sparse_initializer()) f.sparse_initializers.insert(sp.values().name());
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& node = g.node(i);
    for (const auto& out : node.output()) f.producer[out] = i;
    if (node.op_type() == "Constant" && (node.domain().empty() || node.domain() == "ai.onnx")) {
      for (const auto& out : node.output()) f.constant_node_outputs.insert(out);
    }
  }
  return f;
}

void Skip(LayerCandidate* c, const std::string& reason, const std::string& detail) {
  c->skip_reason = reason;
  c->skip_detail = detail;
}

bool IsStd(const onnx::NodeProto& n) { return n.domain().empty() || n.domain() == "ai.onnx"; }

// The facts of the graphs from the main graph (front) to the layer's graph (back).
using ScopeFacts = std::vector<const GraphFacts*>;

// An initializer of an enclosing graph that `name` refers to, searched from the innermost
// enclosing graph outwards (a closer graph's value or input shadows outer ones); its depth goes
// to *depth. nullptr when the name is a value or input of an enclosing graph, or unknown; then
// *outer_op is the producing node's op type, if any.
const onnx::TensorProto* OuterInitializer(const ScopeFacts& scopes, const std::string& name,
                                          const std::vector<const onnx::GraphProto*>& graphs,
                                          size_t* depth, std::string* outer_op) {
  for (size_t d = scopes.size() - 1; d-- > 0;) {
    const GraphFacts& f = *scopes[d];
    if (auto it = f.initializers.find(name); it != f.initializers.end()) {
      *depth = d;
      return it->second;
    }
    if (auto p = f.producer.find(name); p != f.producer.end()) {
      *outer_op = graphs[d]->node(p->second).op_type();
      return nullptr;
    }
    if (f.graph_inputs.count(name)) return nullptr;
  }
  return nullptr;
}

// Follows the weight input back through Identity and Cast nodes of the layer's graph to an
// initializer (of that graph or, across scopes, of an enclosing one) or a Constant node's
// `value`. Records the source and chain in `c` (and the dtype the first Cast produces); `path`
// gets every value name from the consumer's input to the source. nullptr when the weight is
// computed at run time (or the Constant holds no tensor); *outer_op names the op when the weight
// comes from a node of an enclosing graph (only initializers are followed across scopes).
const onnx::TensorProto* ResolveWeight(const std::vector<const onnx::GraphProto*>& graphs,
                                       const ScopeFacts& scopes, LayerCandidate* c,
                                       std::vector<std::string>* path, std::string* outer_op) {
  const onnx::GraphProto& g = *graphs.back();
  const GraphFacts& facts = *scopes.back();
  std::string name = c->weight_name;
  for (int hops = 0; hops <= g.node_size(); ++hops) {
    path->push_back(name);
    if (auto it = facts.initializers.find(name); it != facts.initializers.end()) {
      c->weight_tensor_name = name;
      c->source_depth = scopes.size() - 1;
      return it->second;
    }
    auto p = facts.producer.find(name);
    if (p == facts.producer.end()) {
      if (facts.graph_inputs.count(name)) return nullptr;
      size_t depth = 0;
      const onnx::TensorProto* t = OuterInitializer(scopes, name, graphs, &depth, outer_op);
      if (t != nullptr) {
        c->weight_tensor_name = name;
        c->source_depth = depth;
      }
      return t;
    }
    const onnx::NodeProto& node = g.node(p->second);
    if (!IsStd(node)) return nullptr;
    if (node.op_type() == "Constant") {
      c->constant_node = p->second;
      c->source_depth = scopes.size() - 1;
      const onnx::AttributeProto* value = FindAttr(node, "value");
      return value != nullptr && value->has_t() ? &value->t() : nullptr;
    }
    if ((node.op_type() != "Identity" && node.op_type() != "Cast") || node.input_size() < 1) {
      return nullptr;
    }
    if (node.op_type() == "Cast" && c->dtype == 0) {
      if (const auto* to = FindAttr(node, "to")) c->dtype = static_cast<int32_t>(to->i());
    }
    c->chain.push_back(p->second);
    name = node.input(0);
  }
  return nullptr;
}

// The first op the rewrite of `c` would emit whose schema at `opset` rejects c.dtype (bfloat16
// arrived in MatMul, Reshape, Transpose, Add and Mul at opset 13); empty when all accept it.
std::string OpLackingDType(const LayerCandidate& c, int64_t opset) {
  std::vector<std::string> ops = {"Reshape", "MatMul"};
  if (c.trans_a) ops.push_back("Transpose");
  if (!c.bias_name.empty()) {
    ops.push_back("Add");
    ops.push_back("Mul");
  }
  const std::string type = "tensor(" + onnx::Utils::DataTypeUtils::ToDataTypeString(c.dtype) + ")";
  for (const auto& op : ops) {
    const onnx::OpSchema* schema = onnx::OpSchemaRegistry::Schema(op, static_cast<int>(opset), "");
    if (schema == nullptr) return op;
    for (const auto& param : schema->typeConstraintParams()) {
      if (param.type_param_str != "T") continue;
      const auto& allowed = param.allowed_type_strs;
      if (std::find(allowed.begin(), allowed.end(), type) == allowed.end()) return op;
    }
  }
  return "";
}

// What every layer's classification reads.
struct ModelFacts {
  NameCount uses;
  ShapeMap shapes;
  int64_t opset = 0;
  int64_t ir_version = 0;
};

// Fills the candidate for a Gemm/MatMul node of the graph graphs.back() (the main graph or a
// subgraph; `graphs` and `scopes` run from the main graph to it).
void Classify(const std::vector<const onnx::GraphProto*>& graphs, const ScopeFacts& scopes,
              const onnx::NodeProto& node, const ModelFacts& model, LayerCandidate* c) {
  const GraphFacts& facts = *scopes.back();
  const NameCount& uses = model.uses;
  const ShapeMap& shapes = model.shapes;
  const int64_t opset = model.opset;
  const bool is_gemm = c->op_type == "Gemm";
  if (node.input_size() < 2) return Skip(c, "malformed_node", "node has fewer than 2 inputs");
  c->input_name = node.input(0);
  c->weight_name = node.input(1);
  c->output_name = node.output_size() > 0 ? node.output(0) : "";
  if (is_gemm) {
    if (const auto* a = FindAttr(node, "transA")) c->trans_a = a->i() != 0;
    if (const auto* a = FindAttr(node, "transB")) c->trans_b = a->i() != 0;
    if (const auto* a = FindAttr(node, "alpha")) c->alpha = a->f();
    if (const auto* a = FindAttr(node, "beta")) c->beta = a->f();
    if (node.input_size() > 2) c->bias_name = node.input(2);
    c->input_rank = 2;
  }

  // Facts about the weight come first so the report can show K x N even for skipped layers.
  std::vector<std::string> path;  // values from the consumer's input to the source
  std::string outer_op;           // set when the weight comes from a node of an enclosing graph
  const onnx::TensorProto* w = ResolveWeight(graphs, scopes, c, &path, &outer_op);
  if (w == nullptr && !is_gemm && c->constant_node < 0 &&
      !facts.sparse_initializers.count(c->weight_name)) {
    // MatMul(W, X): the constant may be the first input. Y = W X is Y^T = X^T W^T, so the
    // layer's K x N matrix (primer convention) is W^T, stored [N, K] like Gemm's transB=1.
    LayerCandidate swapped = *c;
    swapped.chain.clear();
    swapped.dtype = 0;
    swapped.weight_tensor_name.clear();
    swapped.input_name = node.input(1);
    swapped.weight_name = node.input(0);
    std::vector<std::string> swapped_path;
    std::string swapped_outer_op;
    if (const onnx::TensorProto* w0 =
            ResolveWeight(graphs, scopes, &swapped, &swapped_path, &swapped_outer_op)) {
      *c = std::move(swapped);
      c->weight_first = true;
      c->trans_b = true;
      path = std::move(swapped_path);
      w = w0;
    }
  }
  if (!is_gemm) {
    auto it = shapes.find(c->input_name);
    if (it != shapes.end()) {
      c->input_rank = static_cast<int64_t>(it->second.size());
      if (c->weight_first && !it->second.empty()) c->input_cols = it->second.back();
    }
  }
  if (w != nullptr) c->source_value = path.back();
  if (w != nullptr) {
    WeightRef& ref = c->weight;
    ref.depth = c->source_depth;
    ref.external = tensor::HasExternalData(*w);
    if (c->constant_node >= 0) {
      ref.kind = WeightRef::Kind::kConstantNode;
      ref.index = c->constant_node;
    } else {
      const onnx::GraphProto& holder = *graphs[c->source_depth];
      for (int i = 0; i < holder.initializer_size() && ref.index < 0; ++i) {
        if (&holder.initializer(i) == w) ref.index = i;
      }
      ref.kind = WeightRef::Kind::kInitializer;
    }
    c->stored_dtype = w->data_type();
    if (c->dtype == 0) c->dtype = w->data_type();
    if (w->dims_size() == 2) {
      c->k = c->trans_b ? w->dims(1) : w->dims(0);
      c->n = c->trans_b ? w->dims(0) : w->dims(1);
    }
  }

  if (opset < kMinOpset) {
    return Skip(c, "opset_unsupported",
                "model opset " + std::to_string(opset) + " is below " + std::to_string(kMinOpset) +
                    ": before opset 7, Add and Mul broadcast only with the `broadcast` attribute "
                    "and Gemm needs its bias C");
  }
  if (w == nullptr) {
    if (c->constant_node >= 0) {
      return Skip(c, "weight_in_constant_node",
                  "the Constant node holds no tensor `value` (value_float and the like)");
    }
    if (facts.sparse_initializers.count(c->weight_name)) {
      return Skip(c, "weight_sparse", "weight is a sparse initializer (not supported)");
    }
    if (!outer_op.empty()) {
      return Skip(c, "weight_outer_node",
                  "the weight comes from a " + outer_op +
                      " node of an enclosing graph; across graph scopes only initializers are "
                      "followed");
    }
    const bool a_const = is_gemm && facts.initializers.count(c->input_name) > 0;
    return Skip(c, "weight_not_constant",
                a_const ? "only Gemm's first input A is constant (the A X form is handled for "
                          "MatMul only)"
                        : "neither input is a constant");
  }
  if (model.ir_version >= 4 && c->constant_node < 0 &&
      scopes[c->source_depth]->graph_inputs.count(c->weight_tensor_name)) {
    return Skip(c, "weight_is_graph_input",
                "the initializer is also a graph input, so callers may override it");
  }
  if (!tensor::DecodableAsFloat(c->dtype) || !tensor::DecodableAsFloat(w->data_type())) {
    return Skip(c, "unsupported_dtype",
                "weight dtype " + tensor::DTypeName(c->dtype) +
                    (c->dtype == w->data_type()
                         ? ""
                         : " (cast from " + tensor::DTypeName(w->data_type()) + ")") +
                    " (only float32, float64, float16 and bfloat16 layers)");
  }
  if (const std::string op = OpLackingDType(*c, opset); !op.empty()) {
    return Skip(c, "dtype_unsupported_at_opset",
                op + " at opset " + std::to_string(opset) + " does not accept " +
                    tensor::DTypeName(c->dtype) + " tensors, and the rewrite needs it");
  }
  if (w->dims_size() != 2) {
    return Skip(c, "weight_not_2d",
                "weight has rank " + std::to_string(w->dims_size()) + ", expected 2");
  }
  if (c->k <= 0 || c->n <= 0) return Skip(c, "empty_weight", "weight has a zero dimension");
  // Values between the layer and the source must be its alone; the source itself may be shared
  // by several layers (FindLayers checks that after every layer is classified).
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    const std::string& value = path[i];
    auto use = uses.find(value);
    if (use != uses.end() && use->second > 1) {
      return Skip(c, "weight_shared",
                  "'" + value + "' is used " + std::to_string(use->second) +
                      " times (by other nodes or as a graph output)");
    }
  }
  if (c->input_rank == 0) {
    return Skip(c, "unknown_input_rank",
                "rank of input '" + c->input_name + "' is unknown after shape inference");
  }
  if (c->input_rank < 2) {
    return Skip(c, "input_rank_1", "input '" + c->input_name + "' is a vector (rank 1)");
  }
}

// The graph being scanned and every graph enclosing it, main graph first.
struct ScanState {
  std::vector<const onnx::GraphProto*> graphs;
  ScopeFacts scopes;
  std::vector<ScopeStep> scope;
};

// Classifies the Gemm/MatMul nodes of graphs.back(), then recurses into its subgraphs in node
// order (a graph's own layers come before those of its subgraphs).
void ScanGraph(const std::string& path, const ModelFacts& model, ScanState* state,
               std::vector<LayerCandidate>* out) {
  const onnx::GraphProto& g = *state->graphs.back();
  const GraphFacts facts = FactsOf(g);
  state->scopes.push_back(&facts);
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& node = g.node(i);
    if (!IsStd(node) || (node.op_type() != "Gemm" && node.op_type() != "MatMul")) continue;
    LayerCandidate c;
    c.graph_path = path;
    c.scope = state->scope;
    c.node_index = i;
    c.node_name = node.name();
    c.op_type = node.op_type();
    Classify(state->graphs, state->scopes, node, model, &c);
    out->push_back(std::move(c));
  }
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& node = g.node(i);
    const std::string node_label = node.name().empty() ? "#" + std::to_string(i) : node.name();
    for (int a = 0; a < node.attribute_size(); ++a) {
      const auto& attr = node.attribute(a);
      auto scan = [&](const onnx::GraphProto& sub, int index, const std::string& label) {
        state->graphs.push_back(&sub);
        state->scope.push_back({i, a, index});
        ScanGraph(path + "/" + node_label + "/" + label, model, state, out);
        state->scope.pop_back();
        state->graphs.pop_back();
      };
      if (attr.has_g()) scan(attr.g(), -1, attr.name());
      for (int j = 0; j < attr.graphs_size(); ++j) {
        scan(attr.graphs(j), j, attr.name() + "[" + std::to_string(j) + "]");
      }
    }
  }
  state->scopes.pop_back();
}

}  // namespace

int64_t DefaultOpset(const onnx::ModelProto& model) {
  for (const auto& op : model.opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") return op.version();
  }
  return 0;
}

const onnx::GraphProto* GraphAt(const onnx::ModelProto& model, const std::vector<ScopeStep>& scope,
                                size_t depth) {
  const onnx::GraphProto* g = &model.graph();
  for (size_t i = 0; i < depth && i < scope.size(); ++i) {
    const ScopeStep& step = scope[i];
    if (step.node < 0 || step.node >= g->node_size()) return nullptr;
    const onnx::NodeProto& node = g->node(step.node);
    if (step.attribute < 0 || step.attribute >= node.attribute_size()) return nullptr;
    const onnx::AttributeProto& attr = node.attribute(step.attribute);
    if (step.graph < 0) {
      if (!attr.has_g()) return nullptr;
      g = &attr.g();
    } else {
      if (step.graph >= attr.graphs_size()) return nullptr;
      g = &attr.graphs(step.graph);
    }
  }
  return depth <= scope.size() ? g : nullptr;
}

std::vector<LayerCandidate> FindLayers(const onnx::ModelProto& model) {
  ModelFacts facts;
  {
    // Ranks come from an inferred copy; a model that inference rejects still gets scanned, and
    // its MatMul layers with unknown input rank are skipped with that reason.
    // A copy without the bulk of the weights: inference reads dims, and small constants whole.
    onnx::ModelProto inferred;
    tensor::CopyWithoutBulkData(model, &inferred, tensor::kReadWholeBytes);
    try {
      onnx::shape_inference::InferShapes(inferred);
    } catch (const std::exception& e) {
      Logger().warn("shape inference on the input failed: {}", e.what());
    }
    KnownShapes(inferred.graph(), &facts.shapes);
  }
  CountUses(model.graph(), &facts.uses);
  facts.opset = DefaultOpset(model);
  facts.ir_version = model.ir_version();

  std::vector<LayerCandidate> layers;
  ScanState state;
  state.graphs.push_back(&model.graph());
  ScanGraph("main", facts, &state, &layers);
  // A weight feeding several layers is factorized once and shared; one also read by any other op
  // (or a graph output) would keep its dense copy, so there is no saving: skipped.
  std::unordered_map<std::string, int> claims;
  for (const auto& c : layers) {
    if (!c.source_value.empty()) ++claims[c.source_value];
  }
  for (auto& c : layers) {
    if (c.source_value.empty() || !c.eligible()) continue;
    const int claimed = claims[c.source_value];
    const int used = facts.uses[c.source_value];
    if (used > claimed) {
      Skip(&c, "weight_shared",
           "'" + c.source_value + "' is also used by another op or is a graph output, so its " +
               "dense copy would stay");
    } else {
      c.sharing_layers = claimed;
    }
  }
  return layers;
}

const onnx::TensorProto* WeightTensor(const onnx::ModelProto& model,
                                      const std::vector<ScopeStep>& scope, const WeightRef& ref) {
  const onnx::GraphProto* g = GraphAt(model, scope, ref.depth);
  if (g == nullptr || ref.index < 0) return nullptr;
  switch (ref.kind) {
    case WeightRef::Kind::kInitializer:
      return ref.index < g->initializer_size() ? &g->initializer(ref.index) : nullptr;
    case WeightRef::Kind::kConstantNode:
      if (ref.index >= g->node_size()) return nullptr;
      for (const auto& a : g->node(ref.index).attribute()) {
        if (a.name() == "value" && a.has_t()) return &a.t();
      }
      return nullptr;
    case WeightRef::Kind::kNone:
      break;
  }
  return nullptr;
}

}  // namespace kfc::match
