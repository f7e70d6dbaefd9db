// Before: a layer reads activation X, in the main graph or in a subgraph (If branch, Loop or Scan
//         body, at any depth); X is not an output of the model.
// After:  X leaves the model too, as a new main-graph output kfc_calib_<i> (one per distinct X):
//   main graph:  kfc_calib_i = Identity(X)
//   subgraph:    the body gets an extra output X' = Identity(X), and the node holding the body an
//                extra output, level by level up to the main graph, which adds kfc_calib_i =
//                Identity(...):
//     Loop, Scan: a scan output, X stacked over the iterations (one more leading axis);
//                 Scan's scan_output_axes / scan_output_directions, when given, get a 0 for it.
//     If:         every other branch outputs a Constant empty tensor of X's rank, 0 on every axis
//                 but the feature axis (K: the last, or for column samples the second-to-last),
//                 so the If's output has X's rank and K where X has it.
//   Every other node, output and initializer stays as it was; the model computes what it did.
// Why: the calibration statistics (pipeline/calibration.h) need each layer's input on real data,
// and the user's runtime only returns graph outputs.
// Preconditions: ONNX shape inference accepts the model (X's type and rank come from it).
#pragma once

#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/match/match.h"
#include "onnx/onnx_pb.h"

namespace kfc::rewrite {

// One new main-graph output.
struct ExposedInput {
  std::string name;                 // the output's name: kfc_calib_<i>, made unique in the model
  std::string source;               // the layer input it carries (a value of the layer's graph)
  int64_t k = 0;                    // the layers' K (features per sample)
  bool columns = false;             // match::ColumnSamples of the layers
  std::vector<std::string> layers;  // node names of the layers reading it, in layer order
};

// Exposes the input of every eligible layer match::FindLayers finds in `model` (with K >= 1 and a
// known tensor type) as above, in FindLayers' order; layers reading the same value share one
// output. FailedPrecondition when shape inference fails on the model (then `model` is unchanged).
StatusOr<std::vector<ExposedInput>> ExposeLayerInputs(onnx::ModelProto* model);

}  // namespace kfc::rewrite
