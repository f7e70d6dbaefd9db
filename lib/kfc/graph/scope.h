// Scopes: where a graph sits in a model. A scope is the path of steps from the main graph down
// through If/Loop/Scan (or any node's) graph attributes to one subgraph.
#pragma once

#include <string>
#include <vector>

#include "onnx/onnx_pb.h"

namespace kfc::graph {

// One step from a graph into one of its subgraphs: node `node` of the enclosing graph, its
// attribute `attribute`, and `graph`, the index into a GRAPHS attribute (-1 for a GRAPH one).
struct ScopeStep {
  int node = -1;
  int attribute = -1;
  int graph = -1;
};

// Steps from the main graph to a graph (empty: the main graph).
using Scope = std::vector<ScopeStep>;

// The graph `depth` steps into `scope` (0: the main graph); nullptr when the model has no such
// graph (a scope from another model, or depth > scope.size()).
const onnx::GraphProto* GraphAt(const onnx::ModelProto& model, const Scope& scope, size_t depth);

// GraphAt for editing. The caller has checked the scope (GraphAt is not nullptr for it): an index
// out of range here is a programmer error.
onnx::GraphProto* MutableGraphAt(onnx::ModelProto* model, const Scope& scope, size_t depth);

// A string identifying the graph `depth` steps into `scope`, for map keys: "" for the main graph,
// else "node.attribute.graph/" per step. Equal keys, same graph.
std::string ScopeKey(const Scope& scope, size_t depth);

}  // namespace kfc::graph
