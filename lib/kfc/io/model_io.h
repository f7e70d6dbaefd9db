// Reading and writing ONNX model files. Writes are atomic: the bytes go to a temporary file in the
// target folder, which is renamed into place only when complete.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/io/atomic_file.h"
#include "kfc/io/external_data.h"
#include "kfc/io/file_identity.h"
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
StatusOr<int64_t> StreamModel(onnx::ModelProto* model, const TensorFilter& inline_it,
                              ExternalDataReader* reader, const ByteSink& sink);

// The size of `model` written inline, as the 2 GiB switch and the report count it: exact for
// tensors in memory and in the spill (StreamModel's size), and for tensors still in the input's
// files their stored reference plus their bytes (a few bytes more than inline, nothing read).
StatusOr<int64_t> InlineSize(onnx::ModelProto* model);

// Checks, before any work is done, that `output` can be written: its folder exists and is a
// folder, `output` is not a folder and is not the same file as `input`.
Status CheckOutputPath(const std::string& input, const std::string& output);

// Writes `bytes` to `path` atomically (temporary file in the same folder, fsync, rename). On any
// failure the temporary file is removed and `path` is left as it was.
// With a `group`, the file is staged there and appears only at the group's Commit.
Status WriteFileAtomic(const std::string& path, const std::string& bytes,
                       CommitGroup* group = nullptr);

// Fails when `path` is one of the input model's external data files (canonical paths, as
// ExternalDataStats::files lists them): writing it would change the input. `what` names the flag.
Status CheckNotInputData(const std::string& path, const std::vector<std::string>& input_files,
                         const std::string& what);

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
