// SPDX-License-Identifier: Apache-2.0
// Outputs written atomically. An AtomicFile's bytes go to a nameless file (O_TMPFILE) in the
// target's folder (links resolved: a link to a regular file is written through, anything but a
// regular file is refused); it appears at the target only when committed, by linking it under a
// short temporary name and renaming that onto the target. Until then (and after any failure) the
// target is left as it was and nothing of the write is visible; a process killed before the commit
// leaves nothing behind. Where the file system has no O_TMPFILE, the file has a short temporary
// name from the start, removed on failure and, in the tool, on SIGINT/SIGTERM/SIGHUP/SIGQUIT
// (io/temp_names.h). Cleanup only ever removes names this process created.
//
// Several outputs that belong together (a model and its data file, the report, the plan) are
// staged into one CommitGroup and appear together at its Commit, after everything else succeeded.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kfc/core/status.h"

namespace kfc::io {

struct StagedFile;

class CommitGroup {
 public:
  CommitGroup();
  ~CommitGroup();  // discards whatever was not committed; no target is touched
  CommitGroup(const CommitGroup&) = delete;
  CommitGroup& operator=(const CommitGroup&) = delete;

  // Makes every staged file appear at its target, in the order they were staged. Each target
  // folder is locked (flock, exclusive) for the duration, so the commits of concurrent runs do not
  // interleave: a model and its data file written by one run are never paired with another run's.
  // First every file is linked under a temporary name (a failure removes those names and changes
  // no target); each target is checked again to be a regular file or absent; then each is renamed
  // onto its target and the folders are fsynced. A rename failing midway (the target replaced by a
  // folder meanwhile) leaves the earlier ones done; the error names the file.
  Status Commit();
  // Files staged and not yet committed.
  size_t size() const { return files_.size(); }

 private:
  friend class AtomicFile;
  std::vector<std::unique_ptr<StagedFile>> files_;
};

class AtomicFile {
 public:
  AtomicFile();
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Creates the nameless file in the folder of `path`'s write target (ResolveWriteTarget). With a
  // `group`, Rename hands the finished file to it instead of putting it in place. Errors name
  // `path`: not a regular file, a missing folder, no room.
  Status Open(const std::string& path, CommitGroup* group = nullptr);
  // Appends `size` bytes; with data == nullptr, appends zeros (padding).
  Status Write(const char* data, size_t size);
  // Bytes written so far.
  int64_t size() const { return size_; }
  // Gives the file the usual permissions for new files (0666 & ~umask) and fsyncs it.
  Status Finish();
  // Puts the finished file in place (a CommitGroup of one), or stages it into the group.
  Status Rename();
  // Finish, then Rename.
  Status Commit();

 private:
  Status Fail(const std::string& step);

  std::string path_;
  std::unique_ptr<StagedFile> file_;
  CommitGroup* group_ = nullptr;
  int64_t size_ = 0;
};

}  // namespace kfc::io
