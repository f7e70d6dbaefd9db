// SPDX-License-Identifier: Apache-2.0
// Serializing a model: deterministic bytes, and the same bytes streamed with tensors still in
// external files (the input's or the spill) copied in by chunks, never held whole.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "kfc/core/status.h"
#include "kfc/io/external_data.h"
#include "onnx/onnx_pb.h"

namespace kfc::io {

// Deterministic serialization (map fields sorted): identical models give identical bytes.
StatusOr<std::string> SerializeModel(const onnx::ModelProto& model);

// Which tensors a streamed write reads into raw_data (see StreamModel).
using TensorFilter = std::function<bool(const onnx::TensorProto&)>;
// Where streamed bytes go, in order.
using ByteSink = std::function<Status(const char* data, size_t size)>;

// Streams to `sink` exactly the bytes SerializeModel would give for `model` once every external
// tensor (input data files or the spill) that `inline_it` selects had its bytes read into raw_data
// (external_data and data_location cleared), without ever holding those bytes whole: they are
// copied from `reader` in chunks. How: the model is serialized with a short unique marker as the
// raw_data of each such tensor, then the wire format is walked along the messages that hold
// tensors (ModelProto.graph and .functions, GraphProto.node, .initializer and
// .sparse_initializer, NodeProto.attribute, AttributeProto.t, .g, .tensors, .graphs and the sparse
// ones, FunctionProto.node, SparseTensorProto.values and .indices), with each enclosing length
// recomputed for the real data. `model` is modified during the call and restored before it
// returns. With an empty `sink` nothing is read or written: the size alone is returned. Errors: a
// read that fails (named by the tensor), a sink error, or more than protobuf's 2 GiB in all.
// Inline tensors of at least kInlineMarkMinBytes are marked too, their raw_data moved out (not
// copied) while the rest is serialized and written from there: memory never holds a second copy
// of a model's inline weights either.
inline constexpr int64_t kInlineMarkMinBytes = 4096;
StatusOr<int64_t> StreamModel(onnx::ModelProto* model, const TensorFilter& inline_it,
                              ExternalDataReader* reader, const ByteSink& sink);

// The size of `model` written inline, as the 2 GiB switch and the report count it: exact for
// tensors in memory and in the spill (StreamModel's size), and for tensors still in the input's
// files their stored reference plus their bytes (a few bytes more than inline, nothing read).
StatusOr<int64_t> InlineSize(onnx::ModelProto* model);

}  // namespace kfc::io
