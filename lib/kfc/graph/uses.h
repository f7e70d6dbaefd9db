// Use counts: how often each value is read, over a graph and all its subgraphs.
#pragma once

#include <string>
#include <unordered_map>

#include "onnx/onnx_pb.h"

namespace kfc::graph {

// Value name -> number of uses.
using UseCounts = std::unordered_map<std::string, int>;

// Counts every use of every name as a node input or a graph output, in `root` and every graph
// below it (a subgraph reads outer values by name, and may name one as its output). Names with no
// use are absent. An omitted optional input ("") is counted like any name.
UseCounts CountUses(const onnx::GraphProto& root);

}  // namespace kfc::graph
