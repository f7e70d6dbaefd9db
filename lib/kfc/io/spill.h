// SPDX-License-Identifier: Apache-2.0
// A spill file: an anonymous temporary file in the output's folder that holds tensor bytes
// between the moment they are produced (a layer's factors) and the final write, so that memory
// never holds all of them at once. The file has no name from the moment it exists (O_TMPFILE, or
// created and unlinked at once where the file system lacks O_TMPFILE), so nothing is left behind
// whatever happens; its space is freed when the SpillFile is destroyed.
//
// A spilled tensor is an external tensor (tensor::HasExternalData) whose location is kLocation:
// dims and dtype as usual, external_data `location`, `offset` and `length` into the spill. An
// ExternalDataReader given the spill (ExternalDataReader::set_spill) reads and copies it like any
// external tensor, and SaveModel writes it where it belongs (inline or to the output's data file).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "kfc/core/status.h"
#include "onnx/onnx_pb.h"

namespace kfc::io {

class SpillFile {
 public:
  // The location of spilled tensors. It starts with a NUL byte, which no file name can hold (the
  // reader refuses such locations in models), so no tensor of an input model can refer to it.
  static const std::string& Location();

  SpillFile() = default;
  ~SpillFile();
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;

  // Creates the anonymous file in the folder of `output` (the path the model will be written to,
  // which error messages name).
  Status Open(const std::string& output);
  // Creates it in `folder` for bytes other than factors: errors start with `subject` and name
  // `kind` ("calibration statistics").
  Status OpenIn(const std::string& folder, const std::string& subject, const std::string& kind);
  bool is_open() const { return fd_ >= 0; }

  // Moves t's raw_data into the spill and makes `t` refer to it (data_location EXTERNAL, location
  // Location(), offset, length). Bytes identical to a tensor spilled before (a 64-bit digest, then
  // the bytes compared) are stored once: both tensors then refer to the same range, so equal
  // references mean equal bytes and different ones different bytes. May be called from several
  // threads at once. Errors (disk full, ...) name the output and the cause; `t` is then unchanged.
  Status Spill(onnx::TensorProto* t);

  // Appends `size` bytes, without looking for equal ones, and returns their offset: for bytes read
  // back with Read only, never referred to by a tensor. May be called from several threads at once.
  StatusOr<int64_t> Append(const char* data, size_t size);

  // Reads `size` bytes at `offset` of the spill.
  Status Read(int64_t offset, char* out, size_t size) const;

  int fd() const { return fd_; }
  const std::string& folder() const { return folder_; }
  // Bytes in the file, and what Spill was given (duplicates included), and how many tensors.
  int64_t size() const;
  int64_t bytes_spilled() const;
  int64_t tensors_spilled() const;

 private:
  Status Fail(const std::string& step, int err) const;
  // Spill's work once `bytes` are out of `t`.
  Status Write(const std::string& bytes, onnx::TensorProto* t);
  // Writes `size` bytes at the end of the file (mu_ held).
  Status WriteAtEnd(const char* data, size_t size);
  // Whether the `size` bytes at `offset` equal `data`.
  StatusOr<bool> Equals(int64_t offset, const char* data, size_t size) const;

  std::string subject_, kind_ = "factors", folder_;
  std::string temp_name_ = ".kfc-spill-XXXXXX";  // mkstemp's template, where O_TMPFILE fails
  int fd_ = -1;
  mutable std::mutex mu_;  // guards everything below and the file's contents
  int64_t size_ = 0, bytes_spilled_ = 0, tensors_spilled_ = 0;
  std::multimap<uint64_t, std::pair<int64_t, int64_t>> by_digest_;  // digest -> (offset, length)
};

// Whether `t` is stored in a spill file (its external location is SpillFile::Location()).
bool IsSpilled(const onnx::TensorProto& t);

}  // namespace kfc::io
