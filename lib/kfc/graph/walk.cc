#include "kfc/graph/walk.h"

namespace kfc::graph {
namespace {

void WalkScoped(std::vector<const onnx::GraphProto*>* graphs, Scope* scope,
                const ScopedVisitor& fn) {
  fn(*graphs, *scope);
  const onnx::GraphProto& g = *graphs->back();
  for (int i = 0; i < g.node_size(); ++i) {
    ForEachSubgraph(g.node(i), [&](const onnx::GraphProto& sub, int attribute, int index) {
      graphs->push_back(&sub);
      scope->push_back({i, attribute, index});
      WalkScoped(graphs, scope, fn);
      scope->pop_back();
      graphs->pop_back();
    });
  }
}

void WalkMutable(onnx::GraphProto* g, Scope* scope,
                 const std::function<void(onnx::GraphProto*, const Scope&)>& fn) {
  fn(g, *scope);
  for (int i = 0; i < g->node_size(); ++i) {
    ForEachSubgraph(g->mutable_node(i), [&](onnx::GraphProto* sub, int attribute, int index) {
      scope->push_back({i, attribute, index});
      WalkMutable(sub, scope, fn);
      scope->pop_back();
    });
  }
}

}  // namespace

void ForEachSubgraph(const onnx::NodeProto& node,
                     const std::function<void(const onnx::GraphProto&, int, int)>& fn) {
  for (int a = 0; a < node.attribute_size(); ++a) {
    const onnx::AttributeProto& attr = node.attribute(a);
    if (attr.has_g()) fn(attr.g(), a, -1);
    for (int j = 0; j < attr.graphs_size(); ++j) fn(attr.graphs(j), a, j);
  }
}

void ForEachSubgraph(onnx::NodeProto* node,
                     const std::function<void(onnx::GraphProto*, int, int)>& fn) {
  for (int a = 0; a < node->attribute_size(); ++a) {
    onnx::AttributeProto* attr = node->mutable_attribute(a);
    if (attr->has_g()) fn(attr->mutable_g(), a, -1);
    for (int j = 0; j < attr->graphs_size(); ++j) fn(attr->mutable_graphs(j), a, j);
  }
}

void ForEachGraph(const onnx::GraphProto& root,
                  const std::function<void(const onnx::GraphProto&)>& fn) {
  ForEachGraphInScope(root, [&](const std::vector<const onnx::GraphProto*>& graphs, const Scope&) {
    fn(*graphs.back());
  });
}

void ForEachGraphInScope(const onnx::GraphProto& root, const ScopedVisitor& fn) {
  std::vector<const onnx::GraphProto*> graphs{&root};
  Scope scope;
  WalkScoped(&graphs, &scope, fn);
}

void ForEachMutableGraph(onnx::GraphProto* root,
                         const std::function<void(onnx::GraphProto*, const Scope&)>& fn) {
  Scope scope;
  WalkMutable(root, &scope, fn);
}

}  // namespace kfc::graph
