// SPDX-License-Identifier: Apache-2.0
// Which file a path names, by identity (st_dev + st_ino, links resolved), so that a run never
// writes a file it reads, nor one file twice, however the paths are spelled; and opening inputs
// without ever blocking on a FIFO or a device.
//
// A path that does not exist yet is identified by its folder's identity plus its final name:
// "out/r.json" and "./out/../out/r.json" are the same file before either is written.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kfc/core/status.h"

namespace kfc::io {

struct FileIdentity {
  bool exists = false;
  uint64_t dev = 0, ino = 0;  // the file (links resolved); when !exists, its folder
  std::string name;           // when !exists: the final name in that folder
  bool operator==(const FileIdentity& o) const {
    return exists == o.exists && dev == o.dev && ino == o.ino && name == o.name;
  }
};

// The identity of `path`. Errors (naming `what` and the path): its folder does not exist, or stat
// fails for another reason than the file being absent.
StatusOr<FileIdentity> IdentifyFile(const std::string& path, const std::string& what);

// The path a write of `path` replaces, links resolved: the real path of the existing regular file
// it names, or the real path of its folder joined with its name. Errors (naming `what`): the
// folder is missing or not a folder; `path` is a directory, a device, a FIFO, a socket, a link to
// one of those, or a link to nothing (a write would replace the link itself).
StatusOr<std::string> ResolveWriteTarget(const std::string& path, const std::string& what);

// The files one run reads and writes. A read is described as a noun phrase ("the input file",
// "an external data file of the input model"), a write by its flag or role ("output", "--report").
class RunFiles {
 public:
  void AddRead(const std::string& what, const std::string& path);
  // A `maybe` write is one the run makes only in some cases (the data file of a model that turns
  // out to exceed 2 GiB): it is checked when it can be identified, and skipped when it cannot (a
  // name too long), leaving the write itself to fail if it happens.
  void AddWrite(const std::string& what, const std::string& path, bool maybe = false);
  // Every write target resolves (ResolveWriteTarget), no write is the same file as a read, and no
  // two writes are the same file. Reads that do not exist are left to their own open to report.
  // InvalidArgument naming both paths and what they are.
  Status Check() const;
  // AddRead for each path, then Check (for the input's external data files, known once the model
  // is loaded).
  Status AddReadsAndCheck(const std::string& what, const std::vector<std::string>& paths);
  // The same for the input model's external data files.
  Status AddInputDataAndCheck(const std::vector<std::string>& paths) {
    return AddReadsAndCheck("an external data file of the input model", paths);
  }

 private:
  struct Entry {
    std::string what, path;
    bool maybe = false;
  };
  std::vector<Entry> reads_, writes_;
};

// Opens `path` read-only: with O_NONBLOCK until fstat says it is a regular file (then it is
// cleared), so a FIFO or a device is refused instead of hanging the run. Returns the descriptor
// (close-on-exec; the caller closes it) and the file's size in *size. Errors, naming `what`:
// NotFound (no such file), InvalidArgument (a directory, or not a regular file), IoError.
StatusOr<int> OpenRegularFile(const std::string& path, const std::string& what, int64_t* size);

// Reads exactly `size` bytes at the descriptor's position; IoError naming `what` on a short read.
Status ReadFully(int fd, char* out, size_t size, const std::string& what);

}  // namespace kfc::io
