// SPDX-License-Identifier: Apache-2.0
// A file written atomically: bytes go to a temporary file in the target's folder, which replaces
// the target only on Commit. Until then (and after any failure) the target is left as it was, and
// the destructor removes the temporary file.
#pragma once

#include <cstdint>
#include <string>

#include "kfc/core/status.h"

namespace kfc::io {

class AtomicFile {
 public:
  AtomicFile() = default;
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Creates the temporary file next to `path`. Errors name `path`.
  Status Open(const std::string& path);
  // Appends `size` bytes; with data == nullptr, appends zeros (padding).
  Status Write(const char* data, size_t size);
  // Bytes written so far.
  int64_t size() const { return size_; }
  // Gives the file the usual permissions for new files (0666 & ~umask), fsyncs and closes it.
  Status Finish();
  // Renames the finished file onto the target and fsyncs the folder.
  Status Rename();
  // Finish, then Rename.
  Status Commit();

 private:
  Status Fail(const std::string& step);
  void Discard();

  std::string path_, tmp_;
  int fd_ = -1;
  int64_t size_ = 0;
  bool renamed_ = false;
};

}  // namespace kfc::io
