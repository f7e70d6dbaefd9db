// SPDX-License-Identifier: Apache-2.0
#include "kfc/match/match.h"

#include <algorithm>
#include <exception>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "kfc/check/schemas.h"
#include "kfc/core/logging.h"
#include "kfc/graph/scope.h"
#include "kfc/graph/uses.h"
#include "kfc/graph/walk.h"
#include "kfc/tensor/tensor.h"
#include "onnx/defs/data_type_utils.h"
#include "onnx/defs/schema.h"
#include "onnx/shape_inference/implementation.h"

namespace kfc::match {
namespace {

// Dims of every value whose shape is known (-1 for a dim without a static value).
using ShapeMap = std::unordered_map<std::string, std::vector<int64_t>>;

// Value names are unique across scopes (the checker enforces SSA through subgraphs), so one map
// serves every graph.
void CollectTypes(const onnx::GraphProto& root, TypeMap* types) {
  auto add = [&](const onnx::ValueInfoProto& vi) {
    if (vi.type().has_tensor_type()) (*types)[vi.name()] = vi.type();
  };
  graph::ForEachGraph(root, [&](const onnx::GraphProto& g) {
    for (const auto& vi : g.input()) add(vi);
    for (const auto& vi : g.value_info()) add(vi);
    for (const auto& vi : g.output()) add(vi);
  });
}

ShapeMap KnownShapes(const TypeMap& types) {
  ShapeMap shapes;
  for (const auto& [name, type] : types) {
    if (!type.tensor_type().has_shape()) continue;
    std::vector<int64_t>& dims = shapes[name];
    for (const auto& d : type.tensor_type().shape().dim()) {
      dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
    }
  }
  return shapes;
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
  graph::UseCounts uses;
  TypeMap types;
  ShapeMap shapes;
  int64_t opset = 0;
  int64_t ir_version = 0;
};

// Fills the candidate for a Gemm/MatMul node of the graph graphs.back() (the main graph or a
// subgraph; `graphs` and `scopes` run from the main graph to it).
void Classify(const std::vector<const onnx::GraphProto*>& graphs, const ScopeFacts& scopes,
              const onnx::NodeProto& node, const ModelFacts& model, LayerCandidate* c) {
  const GraphFacts& facts = *scopes.back();
  const graph::UseCounts& uses = model.uses;
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
  if (auto t = model.types.find(c->input_name); t != model.types.end()) c->input_type = t->second;
  if (auto t = model.types.find(c->output_name); t != model.types.end()) {
    c->output_type = t->second;
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
  // An input of unknown rank is fine: the rewriter then takes the leading dims at run time.
  if (c->input_rank == 1) {
    return Skip(c, "input_rank_1", "input '" + c->input_name + "' is a vector (rank 1)");
  }
}

// Classifies the Gemm/MatMul nodes of every graph, in the walk's order (a graph's own layers come
// before those of its subgraphs).
void ScanGraphs(const onnx::GraphProto& main, const ModelFacts& model,
                std::vector<LayerCandidate>* out) {
  std::vector<std::unique_ptr<GraphFacts>> facts;  // of the graphs from main to the visited one
  std::vector<std::string> paths;
  graph::ForEachGraphInScope(
      main, [&](const std::vector<const onnx::GraphProto*>& graphs, const graph::Scope& scope) {
        const size_t depth = scope.size();
        const onnx::GraphProto& g = *graphs.back();
        facts.resize(depth);
        facts.push_back(std::make_unique<GraphFacts>(FactsOf(g)));
        paths.resize(depth);
        if (depth == 0) {
          paths.push_back("main");
        } else {
          const graph::ScopeStep& step = scope.back();
          const onnx::NodeProto& node = graphs[depth - 1]->node(step.node);
          const std::string node_label =
              node.name().empty() ? "#" + std::to_string(step.node) : node.name();
          const std::string& attr = node.attribute(step.attribute).name();
          paths.push_back(paths.back() + "/" + node_label + "/" +
                          (step.graph < 0 ? attr : attr + "[" + std::to_string(step.graph) + "]"));
        }
        ScopeFacts scopes;
        for (const auto& f : facts) scopes.push_back(f.get());
        for (int i = 0; i < g.node_size(); ++i) {
          const auto& node = g.node(i);
          if (!IsLayerOp(node)) continue;
          LayerCandidate c;
          c.graph_path = paths.back();
          c.scope = scope;
          c.node_index = i;
          c.node_name = node.name();
          c.op_type = node.op_type();
          Classify(graphs, scopes, node, model, &c);
          out->push_back(std::move(c));
        }
      });
}

}  // namespace

int64_t DefaultOpset(const onnx::ModelProto& model) {
  for (const auto& op : model.opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") return op.version();
  }
  return 0;
}

namespace {

using ShapeData = std::unordered_map<std::string, onnx::TensorShapeProto>;

// ONNX 1.12 infers no output shape for a Reshape whose target is computed (Shape -> Slice ->
// Concat, Shape -> Gather -> Unsqueeze -> Concat), although the target's length is the output's
// rank, and data propagation often knows the target's values. Declares that, as value_info, for
// the Reshape outputs inference left without a shape, in every graph; true when it added any.
bool AddReshapeRanks(onnx::GraphProto* g, const TypeMap& known, const ShapeData& data) {
  bool added = false;
  for (auto& node : *g->mutable_node()) {
    for (auto& attr : *node.mutable_attribute()) {
      if (attr.has_g()) added |= AddReshapeRanks(attr.mutable_g(), known, data);
      for (auto& sub : *attr.mutable_graphs()) added |= AddReshapeRanks(&sub, known, data);
    }
    if (!IsStd(node) || node.op_type() != "Reshape" || node.input_size() < 2 ||
        node.output_size() < 1) {
      continue;
    }
    auto out = known.find(node.output(0));
    if (out != known.end() && out->second.tensor_type().has_shape()) continue;
    auto in = known.find(node.input(0));
    auto target = known.find(node.input(1));
    if (in == known.end() || target == known.end()) continue;
    const auto& target_shape = target->second.tensor_type().shape();
    if (!target->second.tensor_type().has_shape() || target_shape.dim_size() != 1 ||
        !target_shape.dim(0).has_dim_value() || target_shape.dim(0).dim_value() < 1) {
      continue;
    }
    const int64_t rank = target_shape.dim(0).dim_value();
    auto* vi = g->add_value_info();
    vi->set_name(node.output(0));
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(in->second.tensor_type().elem_type());
    auto* shape = tt->mutable_shape();
    auto values = data.find(node.input(1));
    const bool have_values = values != data.end() && values->second.dim_size() == rank;
    for (int64_t i = 0; i < rank; ++i) {
      auto* d = shape->add_dim();
      if (!have_values) continue;
      const auto& v = values->second.dim(static_cast<int>(i));
      // 0 (copy, or a real 0 under allowzero) and -1 (inferred) stay unknown.
      if (v.has_dim_value() && v.dim_value() > 0) d->set_dim_value(v.dim_value());
      if (v.has_dim_param()) d->set_dim_param(v.dim_param());
    }
    added = true;
  }
  return added;
}

}  // namespace

TypeMap InferTypes(const onnx::ModelProto& model) {
  // A copy without the bulk of the weights: inference reads dims, and small constants whole. A
  // model that inference rejects still gets scanned, and its MatMul layers whose input rank stays
  // unknown take it at run time.
  onnx::ModelProto inferred;
  tensor::CopyWithoutBulkData(model, &inferred, tensor::kReadWholeBytes);
  const onnx::ModelProto light = inferred;
  TypeMap types;
  // Each pass may give Reshape outputs a rank (AddReshapeRanks) that the next pass carries on.
  for (int pass = 0; pass < 8; ++pass) {
    ShapeData data;
    try {
      onnx::ShapeInferenceOptions options(/*check_type_val=*/false, /*strict_mode_val=*/0,
                                          /*data_prop_val=*/true);
      onnx::shape_inference::InferShapes(inferred, check::KnownSchemas::Instance(), options, &data);
    } catch (const std::exception& e) {
      // Data propagation is newer code than the rest of inference: once without it, as before.
      Logger().debug("shape inference with data propagation failed: {}", e.what());
      inferred = light;
      try {
        onnx::shape_inference::InferShapes(inferred, check::KnownSchemas::Instance());
      } catch (const std::exception& e2) {
        Logger().warn("shape inference on the input failed: {}", e2.what());
      }
      types.clear();
      CollectTypes(inferred.graph(), &types);
      return types;
    }
    types.clear();
    CollectTypes(inferred.graph(), &types);
    if (!AddReshapeRanks(inferred.mutable_graph(), types, data)) break;
  }
  return types;
}

bool IsLayerOp(const onnx::NodeProto& node) {
  return IsStd(node) && (node.op_type() == "Gemm" || node.op_type() == "MatMul");
}

std::vector<LayerCandidate> FindLayers(const onnx::ModelProto& model) {
  ModelFacts facts;
  facts.types = InferTypes(model);
  facts.shapes = KnownShapes(facts.types);
  facts.uses = graph::CountUses(model.graph());
  facts.opset = DefaultOpset(model);
  facts.ir_version = model.ir_version();

  std::vector<LayerCandidate> layers;
  ScanGraphs(model.graph(), facts, &layers);
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

const onnx::TensorProto* WeightTensor(const onnx::ModelProto& model, const graph::Scope& scope,
                                      const WeightRef& ref) {
  const onnx::GraphProto* g = graph::GraphAt(model, scope, ref.depth);
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
