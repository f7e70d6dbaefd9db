// SPDX-License-Identifier: Apache-2.0
// Where the pipeline reads layers' weights: the model, and for tensors PrepareExternalData left in
// their files, a reader (one weight at a time, so memory holds only the weights being worked on).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/io/external_data.h"
#include "kfc/match/match.h"
#include "onnx/onnx_pb.h"

namespace kfc::pipeline {

// The tensor holding the layer's weight data: an initializer (of the layer's graph or an
// enclosing one) or a Constant node's `value`. nullptr when the candidate does not fit the model.
const onnx::TensorProto* WeightSource(const onnx::ModelProto& model,
                                      const match::LayerCandidate& c);

struct Weights {
  const onnx::ModelProto& model;
  io::ExternalDataReader* reader = nullptr;

  // False for a weight stored externally with no reader to read it (a library caller's model
  // with external tensors it did not resolve).
  bool Readable(const match::LayerCandidate& c) const;

  // W as the K x N row-major matrix of y = x W; Gemm with transB=1 stores it as [N, K]. As float32,
  // or as float64 for float64 layers (their factorization reads W unrounded).
  StatusOr<std::vector<float>> Matrix(const match::LayerCandidate& c) const;
  StatusOr<std::vector<double>> Matrix64(const match::LayerCandidate& c) const;

  // The float32 W of Matrix handed to `sink` `rows` rows at a time (rows divides K), in order. An
  // external float32 weight stored as [K, N] is read a block at a time into one small buffer,
  // which stays in cache for the sink, and W is never whole in memory; an inline one is handed
  // over from the tensor block by block (never copied whole); any other is read whole first.
  // Matrix's errors, then sink's.
  Status MatrixBlocks(const match::LayerCandidate& c, int64_t rows,
                      const std::function<Status(const float* block)>& sink) const;
};

}  // namespace kfc::pipeline
