// SPDX-License-Identifier: Apache-2.0
#include "kfc/io/file_identity.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace kfc::io {
namespace fs = std::filesystem;
namespace {

std::string Quote(const std::string& path) { return "'" + path + "'"; }

// Folder that holds `path` ("." for a bare file name) and its final name.
std::pair<std::string, std::string> SplitPath(const std::string& path) {
  const fs::path p(path);
  std::string folder = p.parent_path().string();
  return {folder.empty() ? "." : folder, p.filename().string()};
}

const char* KindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

StatusOr<std::string> RealPath(const std::string& path, const std::string& what) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) {
    return IoError(what + ": cannot resolve " + Quote(path) + ": " + std::strerror(errno));
  }
  return std::string(buf);
}

}  // namespace

StatusOr<FileIdentity> IdentifyFile(const std::string& path, const std::string& what) {
  FileIdentity id;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    id.exists = true;
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    return id;
  }
  if (errno != ENOENT) return IoError(what + " " + Quote(path) + ": " + std::strerror(errno));
  const auto [folder, name] = SplitPath(path);
  if (::stat(folder.c_str(), &st) != 0) {
    return NotFound(what + " " + Quote(path) + ": folder " + Quote(folder) + " does not exist");
  }
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  id.name = name;
  return id;
}

StatusOr<std::string> ResolveWriteTarget(const std::string& path, const std::string& what) {
  const std::string who = what + " " + Quote(path);
  if (path.empty()) return InvalidArgument(what + ": the path is empty");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) {
      return InvalidArgument(who + " is " + KindOf(st.st_mode) +
                             "; only regular files are written");
    }
    return RealPath(path, who);
  }
  if (errno != ENOENT) return IoError(who + ": " + std::strerror(errno));
  struct stat lst {};
  if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    return InvalidArgument(who + " is a symbolic link to nothing; write to another path");
  }
  const auto [folder, name] = SplitPath(path);
  if (name.empty() || name == "." || name == "..") {
    return InvalidArgument(who + " names a folder, not a file");
  }
  if (::stat(folder.c_str(), &st) != 0) {
    return NotFound(who + ": folder " + Quote(folder) + " does not exist");
  }
  if (!S_ISDIR(st.st_mode)) return InvalidArgument(who + ": " + Quote(folder) + " is not a folder");
  KFC_ASSIGN_OR_RETURN(std::string real_folder, RealPath(folder, who));
  return (fs::path(real_folder) / name).string();
}

void RunFiles::AddRead(const std::string& what, const std::string& path) {
  if (!path.empty()) reads_.push_back({what, path, false});
}

void RunFiles::AddWrite(const std::string& what, const std::string& path, bool maybe) {
  if (!path.empty()) writes_.push_back({what, path, maybe});
}

Status RunFiles::Check() const {
  std::vector<FileIdentity> reads, writes;
  std::vector<bool> read_exists;
  for (const auto& [what, path, maybe] : reads_) {
    auto id = IdentifyFile(path, what);
    read_exists.push_back(id.ok() && id->exists);
    reads.push_back(id.ok() ? *id : FileIdentity{});
  }
  std::vector<size_t> write_index;
  for (size_t i = 0; i < writes_.size(); ++i) {
    const auto& [what, path, maybe] = writes_[i];
    auto target = ResolveWriteTarget(path, what);
    auto identity = IdentifyFile(path, what);
    if (maybe && (!identity.ok() || !target.ok())) continue;
    KFC_RETURN_IF_ERROR(target.status());
    KFC_RETURN_IF_ERROR(identity.status());
    const FileIdentity& id = *identity;
    for (size_t r = 0; r < reads.size(); ++r) {
      if (read_exists[r] && id == reads[r]) {
        return InvalidArgument(what + " " + Quote(path) + " is " + reads_[r].what + " (" +
                               Quote(reads_[r].path) +
                               "), which must not change; write to another path");
      }
    }
    for (size_t w = 0; w < writes.size(); ++w) {
      if (id == writes[w]) {
        const Entry& other = writes_[write_index[w]];
        return InvalidArgument(what + " " + Quote(path) + " and " + other.what + " " +
                               Quote(other.path) + " are the same file");
      }
    }
    writes.push_back(id);
    write_index.push_back(i);
  }
  return Status::Ok();
}

Status RunFiles::AddReadsAndCheck(const std::string& what, const std::vector<std::string>& paths) {
  for (const auto& p : paths) AddRead(what, p);
  return Check();
}

StatusOr<int> OpenRegularFile(const std::string& path, const std::string& what, int64_t* size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound(what + ": no such file");
    if (errno == EISDIR) return InvalidArgument(what + ": is a directory, not a file");
    return IoError(what + ": cannot open: " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return IoError(what + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    if (S_ISDIR(st.st_mode)) return InvalidArgument(what + ": is a directory, not a file");
    return InvalidArgument(what + ": is " + std::string(KindOf(st.st_mode)) +
                           ", not a regular file");
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    const int err = errno;
    ::close(fd);
    return IoError(what + ": " + std::strerror(err));
  }
  if (size != nullptr) *size = static_cast<int64_t>(st.st_size);
  return fd;
}

Status ReadFully(int fd, char* out, size_t size, const std::string& what) {
  while (size > 0) {
    const ssize_t n = ::read(fd, out, std::min<size_t>(size, size_t{1} << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError(what + ": read failed: " + std::strerror(errno));
    if (n == 0) return IoError(what + ": read failed: the file is shorter than it was");
    out += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace kfc::io
