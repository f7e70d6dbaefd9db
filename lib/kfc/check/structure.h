// SPDX-License-Identifier: Apache-2.0
// The graph checks that need no operator schema, so they hold for every node of every domain and
// opset: each graph is in SSA form and topologically sorted, every input is defined before use,
// subgraphs read only names of their own or of enclosing scopes.
#pragma once

#include "kfc/core/status.h"
#include "onnx/onnx_pb.h"

namespace kfc::check {

// Walks every graph (subgraphs with the names visible to them). FailedPrecondition naming the
// graph, the node and the value at the first violation:
//   - a node input or graph output that is neither a graph input, an initializer, the output of an
//     earlier node of the graph, nor visible from an enclosing graph (defined before the node that
//     holds the subgraph): undefined, or used before its producer (not topologically sorted);
//   - a name defined twice in one graph (node outputs, inputs and initializers);
//   - a node without op_type.
// Empty input names (omitted optional inputs) are fine. `what` names the model.
Status CheckStructure(const onnx::ModelProto& model, const std::string& what);

// Number of nodes in every graph of the model.
int64_t CountNodes(const onnx::GraphProto& g);

}  // namespace kfc::check
