// SPDX-License-Identifier: Apache-2.0
#include "kfc/rewrite/graph_edits.h"

#include <algorithm>

#include "kfc/graph/walk.h"

namespace kfc::rewrite {

using graph::ScopeKey;

// Removes initializers in `dead` from every graph, with their value_info entries (and main-graph
// input entries, IR 3). Subgraph inputs are never touched: Loop and Scan bind them by position.
void RemoveUnused(onnx::GraphProto* main, const std::unordered_set<std::string>& dead) {
  auto gone = [&](const std::string& n) { return dead.count(n) > 0; };
  graph::ForEachMutableGraph(main, [&](onnx::GraphProto* g, const graph::Scope& scope) {
    auto* inits = g->mutable_initializer();
    inits->erase(std::remove_if(inits->begin(), inits->end(),
                                [&](const onnx::TensorProto& t) { return gone(t.name()); }),
                 inits->end());
    if (scope.empty()) {
      auto* inputs = g->mutable_input();
      inputs->erase(std::remove_if(inputs->begin(), inputs->end(),
                                   [&](const onnx::ValueInfoProto& v) { return gone(v.name()); }),
                    inputs->end());
    }
    auto* vis = g->mutable_value_info();
    vis->erase(std::remove_if(vis->begin(), vis->end(),
                              [&](const onnx::ValueInfoProto& v) { return gone(v.name()); }),
               vis->end());
  });
}

// Names read once the edits are applied: inputs of the nodes that stay and of the replacements,
// and every graph's outputs, through all subgraphs (but those of removed or replaced nodes).
std::unordered_set<std::string> CollectReads(const onnx::GraphProto& main, const EditMap& edits) {
  std::unordered_set<std::string> read;
  auto edits_at = [&](const graph::Scope& scope, size_t depth) -> const GraphEdits* {
    auto found = edits.find(ScopeKey(scope, depth));
    return found == edits.end() ? nullptr : &found->second;
  };
  graph::ForEachGraphInScope(main, [&](const std::vector<const onnx::GraphProto*>& graphs,
                                       const graph::Scope& scope) {
    for (size_t d = 0; d < scope.size(); ++d) {  // inside a node that goes: nothing is read
      const GraphEdits* e = edits_at(scope, d);
      if (e != nullptr && (e->dead.count(scope[d].node) || e->replacements.count(scope[d].node))) {
        return;
      }
    }
    const onnx::GraphProto& g = *graphs.back();
    for (const auto& out : g.output()) read.insert(out.name());
    const GraphEdits* e = edits_at(scope, scope.size());
    for (int i = 0; i < g.node_size(); ++i) {
      if (e != nullptr && e->dead.count(i)) continue;
      if (e != nullptr && e->replacements.count(i)) {
        for (const auto& n : e->replacements.at(i))
          for (const auto& in : n.input()) read.insert(in);
        continue;
      }
      for (const auto& in : g.node(i).input()) read.insert(in);
    }
  });
  return read;
}

}  // namespace kfc::rewrite
