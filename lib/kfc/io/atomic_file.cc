// SPDX-License-Identifier: Apache-2.0
#include "kfc/io/atomic_file.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "kfc/io/file_identity.h"
#include "kfc/io/temp_names.h"

namespace kfc::io {
namespace fs = std::filesystem;

// One output between Open and its commit: the descriptor, where it goes, and the temporary name
// it has (always without O_TMPFILE; during the commit with it).
struct StagedFile {
  int fd = -1;
  std::string path;    // as the caller gave it, for messages
  std::string target;  // links resolved
  std::string folder;  // the target's folder
  std::string named;   // the temporary name this process created; "" when nameless
  int slot = -1;       // in the signal cleanup list
  bool placed = false;

  ~StagedFile() {
    if (fd >= 0) ::close(fd);
    if (!named.empty() && !placed) ::unlink(named.c_str());
    UnregisterTempName(slot);
  }

  Status Error(const std::string& step, int err) const {
    return IoError("output '" + path + "': " + step + ": " + std::strerror(err));
  }

  // Creates a file under a fresh temporary name in the folder: a new link to the nameless file, or
  // (fallback) a new empty file.
  Status Name(bool link) {
    for (int attempt = 0; attempt < 100; ++attempt) {
      const std::string name = TempNameIn(folder);
      // Signals are held from creating the name to recording it, so that the cleanup removes the
      // name exactly when this process created it.
      sigset_t all, old;
      sigfillset(&all);
      ::pthread_sigmask(SIG_BLOCK, &all, &old);
      int rc;
      if (link) {
        const std::string proc = "/proc/self/fd/" + std::to_string(fd);
        rc = ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW);
        if (rc != 0 && errno == ENOENT && ::access("/proc/self/fd", F_OK) != 0) {
          rc = ::linkat(fd, "", AT_FDCWD, name.c_str(), AT_EMPTY_PATH);
        }
      } else {
        rc = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (rc >= 0) fd = rc;
      }
      const int err = errno;
      if (rc >= 0) {
        named = name;
        slot = RegisterTempName(name);
      }
      ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
      if (rc >= 0) return Status::Ok();
      if (err != EEXIST) {
        return Error(link ? "cannot link the finished file into its folder"
                          : "cannot create a temporary file",
                     err);
      }
    }
    return Error("cannot find a free temporary name", EEXIST);
  }
};

CommitGroup::CommitGroup() = default;
CommitGroup::~CommitGroup() = default;

Status CommitGroup::Commit() {
  std::vector<std::unique_ptr<StagedFile>> files = std::move(files_);
  files_.clear();
  // Lock each folder (sorted, so two runs never wait on each other crosswise).
  std::set<std::string> folders;
  for (const auto& f : files) folders.insert(f->folder);
  std::vector<int> locks;
  struct Unlock {
    std::vector<int>* fds;
    ~Unlock() {
      for (int fd : *fds) ::close(fd);  // closing releases the flock
    }
  } unlock{&locks};
  for (const auto& folder : folders) {
    const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) continue;  // the link below reports what is wrong with the folder
    while (::flock(fd, LOCK_EX) != 0 && errno == EINTR) {
    }
    locks.push_back(fd);
  }
  for (auto& f : files) {
    if (f->named.empty()) KFC_RETURN_IF_ERROR(f->Name(/*link=*/true));
  }
  for (auto& f : files) {
    struct stat st {};
    if (::lstat(f->target.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      return InvalidArgument("output '" + f->path + "': '" + f->target +
                             "' is no longer a regular file; nothing was written");
    }
  }
  std::string done;
  for (auto& f : files) {
    if (::rename(f->named.c_str(), f->target.c_str()) != 0) {
      const int err = errno;
      return IoError("output '" + f->path + "': rename into place failed: " + std::strerror(err) +
                     (done.empty() ? "" : " (already written: " + done + ")"));
    }
    f->placed = true;
    UnregisterTempName(f->slot);
    f->slot = -1;
    done += (done.empty() ? "'" : ", '") + f->path + "'";
  }
  // Make the renames durable; failure here does not undo complete, valid files.
  for (int fd : locks) ::fsync(fd);
  return Status::Ok();
}

AtomicFile::AtomicFile() = default;
AtomicFile::~AtomicFile() = default;

Status AtomicFile::Fail(const std::string& step) {
  const int err = errno;
  file_.reset();
  return IoError("output '" + path_ + "': " + step + ": " + std::strerror(err));
}

Status AtomicFile::Open(const std::string& path, CommitGroup* group) {
  file_.reset();
  path_ = path;
  group_ = group;
  size_ = 0;
  KFC_ASSIGN_OR_RETURN(std::string target, ResolveWriteTarget(path, "output"));
  auto f = std::make_unique<StagedFile>();
  f->path = path;
  f->target = target;
  f->folder = fs::path(target).parent_path().string();
  if (f->folder.empty()) f->folder = "/";
#ifdef O_TMPFILE
  f->fd = ::open(f->folder.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  // File systems without O_TMPFILE refuse it with EOPNOTSUPP (or EISDIR, EINVAL on old kernels);
  // any other error is the folder's and the fallback would meet it too.
  if (f->fd < 0 && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
    return Fail("cannot create a temporary file");
  }
#endif
  if (f->fd < 0) KFC_RETURN_IF_ERROR(f->Name(/*link=*/false));
  file_ = std::move(f);
  return Status::Ok();
}

Status AtomicFile::Write(const char* data, size_t size) {
  static const char kZeros[4096] = {};
  if (!file_) return FailedPrecondition("output '" + path_ + "': not open");
  while (size > 0) {
    const char* p = data != nullptr ? data : kZeros;
    const size_t chunk =
        data != nullptr ? std::min<size_t>(size, size_t{1} << 30) : std::min(size, sizeof(kZeros));
    ssize_t n = ::write(file_->fd, p, chunk);
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
  if (!file_) return FailedPrecondition("output '" + path_ + "': not open");
  // The file is created 0600; give it the usual permissions for new files (0666 & ~umask).
  mode_t mask = ::umask(0);
  ::umask(mask);
  if (::fchmod(file_->fd, 0666 & ~mask) != 0) return Fail("chmod failed");
  if (::fsync(file_->fd) != 0) return Fail("fsync failed");
  return Status::Ok();
}

Status AtomicFile::Rename() {
  if (!file_) return FailedPrecondition("output '" + path_ + "': not open");
  if (group_ != nullptr) {
    group_->files_.push_back(std::move(file_));
    return Status::Ok();
  }
  CommitGroup one;
  one.files_.push_back(std::move(file_));
  return one.Commit();
}

Status AtomicFile::Commit() {
  KFC_RETURN_IF_ERROR(Finish());
  return Rename();
}

}  // namespace kfc::io
