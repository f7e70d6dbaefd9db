// SPDX-License-Identifier: Apache-2.0
// What a run leaves behind if it is interrupted, and the signal handlers that clean it up: named
// temporary files not yet renamed into place, temporary folders (io/temp_dir.h), and child
// process groups (the runner, runner/process.h). Outputs are nameless (O_TMPFILE) until they are
// committed, so names exist only for the moment between linking a finished output under a
// temporary name and renaming it onto the target, or for the whole write where the file system
// has no O_TMPFILE. Registration and the handler are async-signal-safe (fixed slots, no
// allocation; the handler only kills, waits, unlinks and removes folders with plain system calls).
#pragma once

#include <sys/types.h>

#include <string>

namespace kfc::io {

// Records `path` (a file this process created); returns its slot, or -1 when all are taken (the
// file is then simply not removed on a signal). Paths longer than the slot are not recorded.
int RegisterTempName(const std::string& path);
// Forgets the slot (after a rename or an unlink); -1 is ignored.
void UnregisterTempName(int slot);

// Records `path`, a folder this process created: on a signal it is removed with everything in it
// (symbolic links inside are removed, never followed). Slot or -1, as RegisterTempName.
int RegisterTempFolder(const std::string& path);
void UnregisterTempFolder(int slot);

// Records a child process that leads its own process group (pgid == pid): on a signal the whole
// group is killed (SIGKILL) and the leader reaped, before the folders are removed, so that no
// child writes into a folder being removed or outlives us. Slot or -1.
int RegisterChildGroup(pid_t pgid);
void UnregisterChildGroup(int slot);

// For the tool's main: SIGINT, SIGTERM, SIGHUP and SIGQUIT kill the registered child groups,
// remove the registered folders, unlink the registered names, then end the process as the
// signal would have; SIGXFSZ is ignored, so that a write over the file size limit fails with EFBIG
// and takes the normal error path (one line, exit 1, nothing left).
void InstallTempCleanupHandlers();

// What the handler does, without ending the process (for tests).
void CleanupRegisteredForTesting();

// Removes folder `path` and everything in it with async-signal-safe system calls only (openat,
// getdents64, unlinkat); links are removed, never followed. Best effort: true when it is gone.
bool RemoveTreeSignalSafe(const char* path);

// A short name for a temporary file in `folder`: ".kfc-" plus 8 random characters, so that it fits
// beside outputs whose names are up to the 255-byte limit.
std::string TempNameIn(const std::string& folder);

}  // namespace kfc::io
