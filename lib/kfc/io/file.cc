// SPDX-License-Identifier: Apache-2.0
#include "kfc/io/file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "kfc/io/atomic_file.h"
#include "kfc/io/file_identity.h"

namespace kfc::io {
namespace fs = std::filesystem;
namespace {

std::string Quote(const std::string& path) { return "'" + path + "'"; }

std::string ErrnoText() { return std::strerror(errno); }

// Folder that holds `path` ("." for a bare file name).
fs::path ParentOf(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

}  // namespace

StatusOr<std::string> ReadFile(const std::string& path, const std::string& what, int64_t max_bytes,
                               const std::string& limit_name) {
  // Non-blocking until known to be a regular file: a FIFO or a device is refused, never waited on.
  int64_t size = 0;
  KFC_ASSIGN_OR_RETURN(const int fd, OpenRegularFile(path, what, &size));
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } close_fd{fd};
  if (size > max_bytes) {
    return InvalidArgument(what + ": " + std::to_string(size) + " bytes exceeds " + limit_name);
  }
  std::string bytes(static_cast<size_t>(size), '\0');
  KFC_RETURN_IF_ERROR(ReadFully(fd, bytes.data(), bytes.size(), what));
  return bytes;
}

Status CheckOutputPath(const std::string& input, const std::string& output) {
  const std::string what = "output " + Quote(output);
  if (output.empty()) return InvalidArgument("output path is empty");
  std::error_code ec;
  const fs::path parent = ParentOf(output);
  if (!fs::exists(parent, ec)) {
    return NotFound(what + ": folder " + Quote(parent.string()) + " does not exist");
  }
  if (!fs::is_directory(parent, ec)) {
    return InvalidArgument(what + ": " + Quote(parent.string()) + " is not a folder");
  }
  if (fs::is_directory(output, ec)) return InvalidArgument(what + ": is a directory");
  KFC_RETURN_IF_ERROR(ResolveWriteTarget(output, "output").status());
  if (fs::exists(output, ec) && fs::equivalent(input, output, ec)) {
    return InvalidArgument(what + ": is the input file; write to another path");
  }
  if (::access(parent.c_str(), W_OK) != 0) {
    return IoError(what + ": folder " + Quote(parent.string()) +
                   " is not writable: " + ErrnoText());
  }
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, const std::string& bytes, CommitGroup* group) {
  AtomicFile file;
  KFC_RETURN_IF_ERROR(file.Open(path, group));
  KFC_RETURN_IF_ERROR(file.Write(bytes.data(), bytes.size()));
  return file.Commit();
}

Status CheckNotInputData(const std::string& path, const std::vector<std::string>& input_files,
                         const std::string& what) {
  std::error_code ec;
  const fs::path target = fs::weakly_canonical(path, ec);
  if (ec) return Status::Ok();  // nothing there to clobber
  for (const auto& file : input_files) {
    if (target == fs::path(file)) {
      return InvalidArgument(what + " " + Quote(path) +
                             " is an external data file of the input model; write to another name");
    }
  }
  return Status::Ok();
}
}  // namespace kfc::io
