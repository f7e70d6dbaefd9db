// SPDX-License-Identifier: Apache-2.0
// The bookkeeping of ApplyKronRewrites (kron_layer.h): which nodes of which graph are replaced or
// removed, which names are still read once that is done, and removing the initializers nobody
// reads any more. Internal to the rewrite module.
#pragma once

#include <map>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "kfc/graph/scope.h"
#include "onnx/onnx_pb.h"

namespace kfc::rewrite {

// What the rewrite does to one graph's node list.
struct GraphEdits {
  graph::Scope scope;
  std::map<int, std::vector<onnx::NodeProto>> replacements;  // node index -> its subgraph
  std::set<int> dead;  // Identity/Cast/Constant nodes that only fed rewritten weights
};
using EditMap = std::map<std::string, GraphEdits>;  // by ScopeKey of the graph

// Names read once the edits are applied: inputs of the nodes that stay and of the replacements,
// and every graph's outputs, through all subgraphs (but those of removed or replaced nodes).
std::unordered_set<std::string> CollectReads(const onnx::GraphProto& main, const EditMap& edits);

// Removes initializers in `dead` from every graph, with their value_info entries (and main-graph
// input entries, IR 3). Subgraph inputs are never touched: Loop and Scan bind them by position.
void RemoveUnused(onnx::GraphProto* main, const std::unordered_set<std::string>& dead);

}  // namespace kfc::rewrite
