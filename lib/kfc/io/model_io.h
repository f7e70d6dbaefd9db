// Reading and writing ONNX model files. Writes are atomic: the bytes go to a temporary file in the
// target folder, which is renamed into place only when complete.
#pragma once

#include <cstdint>
#include <string>

#include "kfc/core/status.h"
#include "onnx/onnx_pb.h"

namespace kfc::io {

// Reads a whole file. Errors name `what` ("plan 'p.json'") and the cause: missing, a directory,
// unreadable, or larger than `max_bytes` (described as `limit_name`).
StatusOr<std::string> ReadFile(const std::string& path, const std::string& what, int64_t max_bytes,
                               const std::string& limit_name);

// Reads and parses an ONNX model. Errors name the path and the cause: missing file, a directory,
// unreadable, over protobuf's 2 GiB limit, not a protobuf (truncated or corrupt), or a protobuf
// that is not an ONNX model (no graph, no ir_version, no opset_import).
StatusOr<onnx::ModelProto> LoadModel(const std::string& path);

// Deterministic serialization (map fields sorted): identical models give identical bytes.
StatusOr<std::string> SerializeModel(const onnx::ModelProto& model);

// Checks, before any work is done, that `output` can be written: its folder exists and is a
// folder, `output` is not a folder and is not the same file as `input`.
Status CheckOutputPath(const std::string& input, const std::string& output);

// Writes `bytes` to `path` atomically (temporary file in the same folder, fsync, rename). On any
// failure the temporary file is removed and `path` is left as it was.
Status WriteFileAtomic(const std::string& path, const std::string& bytes);

}  // namespace kfc::io
