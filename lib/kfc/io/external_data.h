// SPDX-License-Identifier: Apache-2.0
// Tensors whose bytes live outside the .onnx file (ONNX's external data convention):
// data_location == EXTERNAL, and external_data entries `location` (a path relative to the model's
// folder), `offset` (bytes, default 0) and `length` (bytes, default: to the end of the file).
// `checksum` and unknown keys are ignored.
//
// Path rules, checked before a file is opened: the location is relative, has no `..` component,
// and, with symlinks resolved, names a regular file inside the model's folder.
//
// Memory: LoadExternalData inlines every external tensor into raw_data, so the whole model is
// resident once (as for a model stored inline). PrepareExternalData instead checks every external
// tensor and leaves the large ones in their files: the pipeline then reads each weight when it
// works on it (ExternalDataReader::Read, one tensor at a time) and SaveModel copies the tensors it
// keeps from file to file in bounded chunks, so no copy of all weights is ever held in memory.
#pragma once

#include <atomic>
#include <climits>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/io/spill.h"
#include "kfc/tensor/tensor.h"
#include "onnx/onnx_pb.h"

namespace kfc::io {

// Protobuf refuses to parse or serialize one message above this many bytes.
inline constexpr int64_t kProtobufLimit = INT_MAX;

// Tensors with more raw_data than this are replaced by a placeholder in CopyForChecking; external
// tensors at least this large stay in their files when the tool loads a model (smaller ones,
// which the checker reads whole, are read inline).
inline constexpr int64_t kCheckerInlineBytes = tensor::kReadWholeBytes;
// PrepareExternalData's threshold when the tool loads a model: what the checker copy does not
// keep whole stays in its file.
inline constexpr int64_t kKeptExternalMinBytes = kCheckerInlineBytes + 1;

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

  // The same bytes read into `out`, which holds `size` bytes: an error (as Read's) unless the
  // tensor has exactly that many. Saves Read's buffer where the caller has its own.
  Status ReadInto(const onnx::TensorProto& t, const std::string& what, char* out, size_t size);

  // Streams the same bytes to `sink` in chunks of at most kCopyChunkBytes.
  Status Copy(const onnx::TensorProto& t, const std::string& what,
              const std::function<Status(const char* data, size_t size)>& sink);

  // The same bytes read into the caller's `buffer` `chunk` bytes at a time (the last chunk may be
  // shorter), each passed to `sink` before the next is read: a small buffer that stays in cache
  // instead of the whole tensor in memory. Read's errors, then sink's.
  Status ReadInChunks(const onnx::TensorProto& t, const std::string& what, char* buffer,
                      size_t chunk,
                      const std::function<Status(const char* data, size_t size)>& sink);

  // The same bytes as ReadInChunks, `chunk` bytes at a time, with no buffer of the caller's: for a
  // tensor in a data file (not the spill) at an offset that is a multiple of `align` (chunk too),
  // each chunk is handed to `sink` straight from a read-only shared mapping of the file, i.e. from
  // the page cache without a copy; after every window of about kMapWindowBytes its pages are
  // released from the process (madvise MADV_DONTNEED: they stay in the page cache), so at most a
  // window per thread counts in the resident set. Otherwise (the spill, an unaligned offset, a
  // file that cannot be mapped) the chunks are read into a buffer of its own, as ReadInChunks.
  // Read's errors, then sink's. Caveat of the mapping: a data file truncated by another process
  // while it is read ends the process with SIGBUS instead of an error.
  Status MapInChunks(const onnx::TensorProto& t, const std::string& what, size_t chunk,
                     size_t align,
                     const std::function<Status(const char* data, size_t size)>& sink);
  static constexpr size_t kMapWindowBytes = size_t{2} << 20;

  // The length of external tensor `t`'s data after the checks Read makes; nothing is read.
  StatusOr<int64_t> Check(const onnx::TensorProto& t, const std::string& what);

  // Spilled tensors (io/spill.h) are read from `spill` from now on; it must outlive their use.
  void set_spill(const SpillFile* spill) { spill_ = spill; }

  // Canonical paths of the data files opened so far, sorted.
  std::vector<std::string> Files() const;

  // Bytes read by Read, Copy and MapInChunks so far, and the seconds spent in those reads (summed
  // over threads) but for the mapped ones, which are read where they are used (not timed); reads
  // of the spill are not counted.
  int64_t bytes_read() const { return bytes_read_.load(); }
  double read_seconds() const { return static_cast<double>(read_nanos_.load()) * 1e-9; }
  // Of bytes_read(), those MapInChunks handed over from a mapping.
  int64_t mapped_bytes() const { return mapped_bytes_.load(); }
  // Bytes read from the spill so far.
  int64_t spill_bytes_read() const { return spill_bytes_read_.load(); }

  // Read, Copy and Check may be called from several threads at once.
  static constexpr size_t kCopyChunkBytes = size_t{8} << 20;

 private:
  struct File {
    int fd = -1;
    int64_t size = 0;
    // The whole file mapped read-only on the first MapInChunks (nullptr until then, or when that
    // failed: map_tried); unmapped at destruction.
    const char* map = nullptr;
    bool map_tried = false;
  };
  struct Extent {
    int fd = -1;
    bool spill = false;
    int64_t offset = 0, length = 0;
    std::string location;
    File* file = nullptr;  // a data file's (not the spill's)
  };
  StatusOr<File*> Open(const std::string& location, const std::string& what);
  const char* MapOf(File* file);
  StatusOr<Extent> Locate(const onnx::TensorProto& t, const std::string& what);
  Status ReadRange(const Extent& e, int64_t from, char* out, size_t size, const std::string& what);

  std::string folder_;
  mutable std::mutex mu_;              // guards files_
  std::map<std::string, File> files_;  // by canonical path; nodes never move
  std::atomic<int64_t> bytes_read_{0}, read_nanos_{0}, spill_bytes_read_{0}, mapped_bytes_{0};
  const SpillFile* spill_ = nullptr;
};

struct ExternalDataStats {
  std::vector<std::string> files;  // canonical paths of the data files read
  int64_t tensors = 0;             // external tensors checked
  int64_t bytes = 0;               // their bytes
  int64_t kept = 0;                // of them, left in their files (PrepareExternalData)
};

// Checks every external tensor of `model` through `reader` (made for the model's path) as Read
// would, without reading the large ones: those of at least `keep_from_bytes` stay external, to be
// read through `reader` when needed; smaller ones are read into raw_data (shape inference reads
// small constants, like Reshape shapes). Then checks every inline tensor against its dims
// (tensor::CheckInlineData). `reader` must outlive every use of the kept tensors.
StatusOr<ExternalDataStats> PrepareExternalData(onnx::ModelProto* model, ExternalDataReader* reader,
                                                int64_t keep_from_bytes);

// Makes `t` refer to `length` bytes at `offset` of `location`: data_location EXTERNAL and
// external_data entries location, offset and length (replacing any). raw_data is left alone.
void SetExternalReference(onnx::TensorProto* t, const std::string& location, int64_t offset,
                          int64_t length);

// Bytes of the tensors of `model` still stored externally (their dims times their dtype size).
int64_t ExternalDataBytes(const onnx::ModelProto& model);

// Resolves every external tensor of `model` (loaded from `model_path`) into raw_data, clearing
// external_data and data_location, then checks that every tensor's inline data agrees with its
// dims (tensor::CheckInlineData). Run it before the ONNX checker, which, given an in-memory
// model, would look for the data files relative to the working folder.
StatusOr<ExternalDataStats> LoadExternalData(onnx::ModelProto* model,
                                             const std::string& model_path);

// A deep copy of `model` in which every raw_data above kCheckerInlineBytes, and every external
// tensor, holds only one element (dims and dtype unchanged), without ever copying the large data.
// The ONNX checker and shape inference read dims, not the bytes of large tensors (the constant
// inputs they do read, like Reshape shapes, are small), so checking the copy checks the model, also
// when its weights add up to more than protobuf's 2 GiB.
onnx::ModelProto CopyForChecking(const onnx::ModelProto& model);

}  // namespace kfc::io
