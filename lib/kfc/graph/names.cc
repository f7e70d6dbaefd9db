#include "kfc/graph/names.h"

#include "kfc/graph/walk.h"

namespace kfc::graph {

void ReserveNames(const onnx::GraphProto& root, NameGenerator* names) {
  ForEachGraph(root, [&](const onnx::GraphProto& g) {
    for (const auto& t : g.initializer()) names->Reserve(t.name());
    for (const auto& sp : g.sparse_initializer()) {
      names->Reserve(sp.values().name());
      names->Reserve(sp.indices().name());
    }
    for (const auto& vi : g.input()) names->Reserve(vi.name());
    for (const auto& vi : g.output()) names->Reserve(vi.name());
    for (const auto& vi : g.value_info()) names->Reserve(vi.name());
    for (const auto& node : g.node()) {
      names->Reserve(node.name());
      for (const auto& s : node.input()) names->Reserve(s);
      for (const auto& s : node.output()) names->Reserve(s);
    }
  });
}

}  // namespace kfc::graph
