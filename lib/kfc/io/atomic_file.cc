// SPDX-License-Identifier: Apache-2.0
#include "kfc/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace kfc::io {
namespace fs = std::filesystem;
namespace {

fs::path FolderOf(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

}  // namespace

AtomicFile::~AtomicFile() { Discard(); }

void AtomicFile::Discard() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!tmp_.empty() && !renamed_) ::unlink(tmp_.c_str());
  tmp_.clear();
}

Status AtomicFile::Fail(const std::string& step) {
  Status s = IoError("output '" + path_ + "': " + step + ": " + std::strerror(errno));
  Discard();
  return s;
}

Status AtomicFile::Open(const std::string& path) {
  Discard();
  path_ = path;
  size_ = 0;
  renamed_ = false;
  std::string tmpl =
      (FolderOf(path) / ("." + fs::path(path).filename().string() + ".tmp-XXXXXX")).string();
  fd_ = ::mkstemp(tmpl.data());
  if (fd_ < 0) return Fail("cannot create a temporary file");
  tmp_ = tmpl;
  return Status::Ok();
}

Status AtomicFile::Write(const char* data, size_t size) {
  static const char kZeros[4096] = {};
  while (size > 0) {
    const char* p = data != nullptr ? data : kZeros;
    const size_t chunk =
        data != nullptr ? std::min<size_t>(size, size_t{1} << 30) : std::min(size, sizeof(kZeros));
    ssize_t n = ::write(fd_, p, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail("write failed");
    }
    if (data != nullptr) data += n;
    size -= static_cast<size_t>(n);
    size_ += n;
  }
  return Status::Ok();
}

Status AtomicFile::Finish() {
  // mkstemp creates 0600; give the file the usual permissions for new files (0666 & ~umask).
  mode_t mask = ::umask(0);
  ::umask(mask);
  if (::fchmod(fd_, 0666 & ~mask) != 0) return Fail("chmod failed");
  if (::fsync(fd_) != 0) return Fail("fsync failed");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return Fail("close failed");
  return Status::Ok();
}

Status AtomicFile::Rename() {
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) return Fail("rename into place failed");
  renamed_ = true;
  // Make the rename itself durable; failure here does not undo a complete, valid file.
  if (int dir = ::open(FolderOf(path_).c_str(), O_RDONLY | O_DIRECTORY); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return Status::Ok();
}

Status AtomicFile::Commit() {
  KFC_RETURN_IF_ERROR(Finish());
  return Rename();
}

}  // namespace kfc::io
