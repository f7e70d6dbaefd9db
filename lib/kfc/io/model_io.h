// SPDX-License-Identifier: Apache-2.0
// Reading and writing ONNX model files. Writes are atomic: the bytes go to a temporary file in the
// target folder, which is renamed into place only when complete. The bytes come from
// model_stream.h (SerializeModel, StreamModel); whole-file helpers are in file.h.
#pragma once

#include <cstdint>
#include <string>

#include "kfc/core/status.h"
#include "kfc/io/atomic_file.h"
#include "kfc/io/external_data.h"
#include "kfc/io/file_identity.h"
#include "kfc/io/model_stream.h"
#include "onnx/onnx_pb.h"

namespace kfc::io {

// Reads and parses an ONNX model. Errors name the path and the cause: missing file, a directory,
// unreadable, over protobuf's 2 GiB limit, not a protobuf (truncated or corrupt), or a protobuf
// that is not an ONNX model (no graph, no ir_version, no opset_import).
StatusOr<onnx::ModelProto> LoadModel(const std::string& path);

// Parses serialized model bytes with LoadModel's checks; errors start with `what` ("model bytes").
StatusOr<onnx::ModelProto> ParseModel(const std::string& bytes, const std::string& what);

// Offsets of tensors in a data file SaveModel writes are multiples of this: the page size, so
// each tensor can be mmapped in place (ONNX Runtime's own writer aligns to it too).
inline constexpr int64_t kExternalDataAlignment = 4096;
inline constexpr int64_t kDefaultExternalDataThreshold = 1024;
// Scalars and vectors up to this many elements always stay inline (see SaveModel).
inline constexpr int64_t kShapeLikeElements = 64;

struct SaveOptions {
  bool external_data = false;  // --external-data: always write large initializers to data_file
  // The data file's name, in the output's folder; "" means "<output file name>.data".
  std::string data_file;
  // Initializers with at least this many bytes of raw_data go to the data file.
  int64_t threshold = kDefaultExternalDataThreshold;
  // Above this serialized size the model is written with external data even when not asked
  // (protobuf cannot write more). An internal knob: tests lower it to exercise that path.
  int64_t inline_limit = kProtobufLimit;
  // When set, the files are staged into this group and appear only at its Commit (the tool commits
  // after the report reached stdout); else they are put in place before SaveModel returns.
  CommitGroup* commit = nullptr;
  // When set, the run's reads and writes (io/file_identity.h): CompressFile adds the input's
  // external data files to the reads and checks again before any work.
  RunFiles* files = nullptr;
};

// A data file name is a plain file name: not empty, no '/', not "." or "..".
// InvalidArgument naming the name otherwise.
Status ValidateDataFileName(const std::string& name);

// Where SaveModel puts the data file for `output`: the output's folder joined with
// options.data_file, or with "<output file name>.data".
std::string DataFilePath(const std::string& output, const SaveOptions& options);

struct SaveResult {
  int64_t model_bytes = 0;  // size of the .onnx file written
  std::string data_path;    // the data file written ("" when none)
  int64_t data_bytes = 0;   // its size, padding included
  int64_t data_tensors = 0;
  bool automatic = false;  // external data without being asked: inline would exceed inline_limit
};

// Writes `model` to `path`. Inline when it fits and options.external_data is off; else every
// initializer (main graph and subgraphs) whose raw_data has at least options.threshold bytes,
// except scalars and vectors of at most kShapeLikeElements (shape-like inputs, which ONNX Runtime
// must read while it loads), goes
// to the data file (DataFilePath), in graph order at offsets aligned to kExternalDataAlignment,
// and the model refers to it by file name (location, offset, length). Both files are written
// atomically and the data file is renamed first; on any failure neither new file is left behind.
// Identical models and options give identical bytes. `model` is modified during the call (raw_data
// moved out while the header is serialized) and restored before it returns.
// Tensors still stored in the input's external files (PrepareExternalData) or in the spill
// (io/spill.h) are read through `reader` and copied in bounded chunks, into the data file or into
// the model's own bytes (StreamModel), never held whole. Their bytes count toward the 2 GiB switch.
StatusOr<SaveResult> SaveModel(onnx::ModelProto* model, const std::string& path,
                               const SaveOptions& options, ExternalDataReader* reader = nullptr);

}  // namespace kfc::io
