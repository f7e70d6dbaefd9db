// SPDX-License-Identifier: Apache-2.0
// Validation of the input and output models that never fails a model only because the ONNX library
// linked in is older than the model (ONNX 1.12 knows the default domain up to opset 17; exports are
// at opsets 17-22, with com.microsoft and other custom-domain nodes).
//
// When the library knows the schema of every node at the model's opset, the whole model goes
// through onnx::checker::check_model and strict shape inference, as always. Otherwise:
//   - structure (check/structure.h) for every node;
//   - the ONNX checker's node checks (attributes, input and output counts, tensors) on the nodes
//     whose schema the library knows at the model's opset (check/schemas.h), the others listed as
//     unchecked with the reason;
//   - shape inference through check::KnownSchemas (non-strict: unknown nodes leave their outputs
//     unknown);
//   - for the output, the nodes the tool emitted, strictly: each layer's nodes as a model of their
//     own, with the layer's input and output types and shapes as inferred on the input model,
//     through the checker and strict shape inference with data propagation.
#pragma once

#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/rewrite/kron_layer.h"
#include "kfc_report.pb.h"
#include "onnx/onnx_pb.h"

namespace kfc::check {

// Newest ONNX IR version accepted (the checker sees IR 9 and 10 as 8: they only add element types
// and function overloads).
inline constexpr int64_t kMaxIrVersion = 10;

// Validates `model`. `what` names it in errors ("input model 'a.onnx'"); `kind` ("input" or
// "output") labels the checks recorded into `checks` (may be nullptr). `emitted`: the nodes the
// tool emitted (empty for an input). FailedPrecondition naming the check, the node and the cause
// on failure.
Status CheckModel(const onnx::ModelProto& model, const std::string& what, const std::string& kind,
                  const std::vector<rewrite::EmittedLayer>& emitted, report::Checks* checks);

}  // namespace kfc::check
