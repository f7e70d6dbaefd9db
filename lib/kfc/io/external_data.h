// Tensors whose bytes live outside the .onnx file (ONNX's external data convention):
// data_location == EXTERNAL, and external_data entries `location` (a path relative to the model's
// folder), `offset` (bytes, default 0) and `length` (bytes, default: to the end of the file).
// `checksum` and unknown keys are ignored.
//
// Path rules, checked before a file is opened: the location is relative, has no `..` component,
// and, with symlinks resolved, names a regular file inside the model's folder.
//
// Memory: LoadExternalData inlines every external tensor into raw_data, so the whole model is
// resident once (as for a model stored inline); each data file is opened once and each tensor's
// range read once, with no copy of the whole file. ExternalDataReader serves one tensor at a time,
// so layer-at-a-time reading (mmap) can later replace the inlining without changing its callers.
#pragma once

#include <climits>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "onnx/onnx_pb.h"

namespace kfc::io {

// Protobuf refuses to parse or serialize one message above this many bytes.
inline constexpr int64_t kProtobufLimit = INT_MAX;

// Calls `fn(tensor, what)` for every tensor in the model: initializers, sparse initializers'
// values and indices, tensor-valued node attributes (Constant's `value`, ...) in the graph,
// its subgraphs and the model's functions. `what` names the tensor for error messages:
// "initializer 'W'", "attribute 'value' of node 'c1'", with " in graph 'body'" for subgraphs.
// Stops at the first error and returns it.
using TensorVisitor = std::function<Status(onnx::TensorProto* tensor, const std::string& what)>;
Status ForEachTensor(onnx::ModelProto* model, const TensorVisitor& fn);

// Reads external tensors of the model at `model_path`, one at a time. Each data file is checked
// against the path rules and opened once, on first use; files stay open until destruction.
class ExternalDataReader {
 public:
  explicit ExternalDataReader(const std::string& model_path);
  ~ExternalDataReader();
  ExternalDataReader(const ExternalDataReader&) = delete;
  ExternalDataReader& operator=(const ExternalDataReader&) = delete;

  // The bytes of external tensor `t`, exactly ExpectedDataBytes(t) of them. Errors name `what`
  // and the location: a missing or empty location, a path rule broken, a missing or unreadable
  // file, a bad offset or length, a range past the end of the file
  // ("initializer 'W1': external data [offset 4096, length 9437184] exceeds 'model.data'
  // (8388608 bytes)"), a length that disagrees with dims and dtype, or inline data as well.
  StatusOr<std::string> Read(const onnx::TensorProto& t, const std::string& what);

  // Canonical paths of the data files opened so far, sorted.
  std::vector<std::string> Files() const;

 private:
  struct File {
    int fd = -1;
    int64_t size = 0;
  };
  StatusOr<const File*> Open(const std::string& location, const std::string& what);

  std::string folder_;
  std::map<std::string, File> files_;  // by canonical path
};

struct ExternalDataStats {
  std::vector<std::string> files;  // canonical paths of the data files read
  int64_t tensors = 0;             // external tensors inlined
  int64_t bytes = 0;               // their bytes
};

// Resolves every external tensor of `model` (loaded from `model_path`) into raw_data, clearing
// external_data and data_location, then checks that every tensor's inline data agrees with its
// dims (tensor::CheckInlineData). Run it before the ONNX checker, which, given an in-memory
// model, would look for the data files relative to the working folder.
StatusOr<ExternalDataStats> LoadExternalData(onnx::ModelProto* model,
                                             const std::string& model_path);

// Tensors with more raw_data than this are replaced by a placeholder in CopyForChecking.
inline constexpr int64_t kCheckerInlineBytes = 64 * 1024;

// A deep copy of `model` in which every raw_data above kCheckerInlineBytes holds only its first
// element (dims and dtype unchanged), without ever copying the large data. The ONNX checker and
// shape inference read dims, not the bytes of large tensors (the constant inputs they do read,
// like Reshape shapes, are small), so checking the copy checks the model, also when its weights
// add up to more than protobuf's 2 GiB.
onnx::ModelProto CopyForChecking(const onnx::ModelProto& model);

}  // namespace kfc::io
