#include "kfc/graph/uses.h"

#include "kfc/graph/walk.h"

namespace kfc::graph {

UseCounts CountUses(const onnx::GraphProto& root) {
  UseCounts uses;
  ForEachGraph(root, [&](const onnx::GraphProto& g) {
    for (const auto& out : g.output()) ++uses[out.name()];
    for (const auto& node : g.node()) {
      for (const auto& in : node.input()) ++uses[in];
    }
  });
  return uses;
}

}  // namespace kfc::graph
