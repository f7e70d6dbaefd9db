// Name seeding: a NameGenerator that knows every name a model already uses, so that the names an
// edit adds collide with none, in any graph (ONNX wants value names unique across scopes, and
// node names unique too).
#pragma once

#include "kfc/core/names.h"
#include "onnx/onnx_pb.h"

namespace kfc::graph {

// Reserves in `names` every name used in `root` and in its subgraphs: initializers, sparse
// initializers (values and indices), graph inputs, outputs and value_info, node names, node inputs
// and outputs.
void ReserveNames(const onnx::GraphProto& root, NameGenerator* names);

}  // namespace kfc::graph
