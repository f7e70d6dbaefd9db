// Walks over a graph and its subgraphs (the GRAPH and GRAPHS attributes of its nodes, If branches,
// Loop and Scan bodies, at any depth). One order everywhere: a graph before its subgraphs, and
// subgraphs in node order, then attribute order, then GRAPHS index order (depth first, pre-order).
#pragma once

#include <functional>
#include <vector>

#include "kfc/graph/scope.h"
#include "onnx/onnx_pb.h"

namespace kfc::graph {

// Calls fn(subgraph, attribute index, graphs index) for each graph held by `node`'s attributes,
// one level down only: a GRAPH attribute with graphs index -1, then a GRAPHS attribute's entries.
void ForEachSubgraph(const onnx::NodeProto& node,
                     const std::function<void(const onnx::GraphProto&, int, int)>& fn);
void ForEachSubgraph(onnx::NodeProto* node,
                     const std::function<void(onnx::GraphProto*, int, int)>& fn);

// Calls fn on `root` and then on every graph below it, in the order above.
void ForEachGraph(const onnx::GraphProto& root,
                  const std::function<void(const onnx::GraphProto&)>& fn);

// The same, with the graph's place: `graphs` runs from `root` (front) to the visited graph
// (back), `scope` holds the steps between them (scope.size() == graphs.size() - 1).
using ScopedVisitor =
    std::function<void(const std::vector<const onnx::GraphProto*>& graphs, const Scope& scope)>;
void ForEachGraphInScope(const onnx::GraphProto& root, const ScopedVisitor& fn);

// For editing: fn may change the graph it is given, and the walk then descends into the
// subgraphs the graph holds after the call. `scope` is the visited graph's, from `root`.
void ForEachMutableGraph(onnx::GraphProto* root,
                         const std::function<void(onnx::GraphProto*, const Scope&)>& fn);

}  // namespace kfc::graph
