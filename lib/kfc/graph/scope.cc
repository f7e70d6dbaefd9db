#include "kfc/graph/scope.h"

namespace kfc::graph {

const onnx::GraphProto* GraphAt(const onnx::ModelProto& model, const Scope& scope, size_t depth) {
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

onnx::GraphProto* MutableGraphAt(onnx::ModelProto* model, const Scope& scope, size_t depth) {
  onnx::GraphProto* g = model->mutable_graph();
  for (size_t i = 0; i < depth; ++i) {
    auto* attr = g->mutable_node(scope[i].node)->mutable_attribute(scope[i].attribute);
    g = scope[i].graph < 0 ? attr->mutable_g() : attr->mutable_graphs(scope[i].graph);
  }
  return g;
}

std::string ScopeKey(const Scope& scope, size_t depth) {
  std::string key;
  for (size_t i = 0; i < depth && i < scope.size(); ++i) {
    key += std::to_string(scope[i].node) + "." + std::to_string(scope[i].attribute) + "." +
           std::to_string(scope[i].graph) + "/";
  }
  return key;
}

}  // namespace kfc::graph
