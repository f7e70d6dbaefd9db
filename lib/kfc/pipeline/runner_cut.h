// SPDX-License-Identifier: Apache-2.0
// The frontier cut: runner passes after the first one run only the part of the model that
// compression can change (docs/runner.md, "The frontier cut").
//
// Before: every pass (compensation stages, --allocation sensitivity trials, ...) runs the whole
//         model, e.g. PP-OCRv4's CNN backbone, which comes before every Gemm/MatMul layer and
//         which compression never changes.
// After:  the first (recording) pass also records the frontier F: the main-graph tensors that do
//         not depend on any layer compression may replace, but that nodes depending on one read.
//         A later pass on any version M' of the model (same node and tensor names outside the
//         rewritten layers) runs Cut(M', F, requested): the nodes after F that the requested
//         tensors need, with F's tensors as graph inputs, fed from the recorded files.
//
// Rows and batches stay those of the first pass, so the recordings line up row for row.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/runner/runner.h"
#include "onnx/onnx_pb.h"

namespace kfc::pipeline {

// Where the cut of a model goes.
struct Frontier {
  // Tensors to record in the first pass and to feed the cut, in graph order: node outputs of
  // float32/float64 with a non-constant leading (row) dim.
  std::vector<std::string> recorded;
  std::map<std::string, onnx::TypeProto> types;  // of each recorded tensor; leading dim symbolic
  // Every tensor made by the nodes before the cut: they never change, whatever is compressed.
  std::set<std::string> before;
  // Every main-graph tensor's type as shape inference found it on the model (with a shape): for
  // the cut's outputs when inference on the cut knows less.
  std::map<std::string, onnx::TypeProto> known_types;
  int nodes_before = 0;  // main-graph nodes before the cut
  int nodes_after = 0;   // and in it
};

// The frontier of `model` (loaded and prepared, not yet compressed) for the Gemm/MatMul layers
// match::FindLayers finds eligible. A node holding subgraphs is in the cut when it holds such a
// layer or it, or anything its subgraphs read from outside, depends on one. Tensors that cannot
// be fed (constants, non-float, no row axis) pull their producers into the cut.
// FailedPrecondition, naming why, when the cut does not apply: no eligible layer, no node before
// the cut, a model input with a fixed leading dim (its batches would differ), sparse
// initializers, shape inference failing.
StatusOr<Frontier> FindFrontier(const onnx::ModelProto& model);

// The cut of `version` (any version of the frontier's model, partly or fully compressed) that
// makes `requested`: the nodes not before the cut that they need, in graph order; as graph
// inputs, the frontier tensors and the model inputs those nodes read (graph inputs first, as in
// `version`, then frontier tensors in frontier order); the initializers they read (subgraphs
// included); `requested` as graph outputs; the same ir_version, opsets, functions and metadata.
// InvalidArgument when a requested tensor is made before the cut or is not made at all; Internal
// when the cut reads a tensor that is neither made in it nor fed.
StatusOr<onnx::ModelProto> BuildCutModel(const onnx::ModelProto& version, const Frontier& frontier,
                                         const std::vector<std::string>& requested);

// Adds each frontier tensor that is not one already as a graph output of `probe` (the first
// pass's model) and returns the records for them, with stems kfc_frontier_<i> not in `taken`.
std::vector<runner::Record> ExposeFrontier(const Frontier& frontier,
                                           const std::set<std::string>& taken,
                                           onnx::ModelProto* probe);

}  // namespace kfc::pipeline
