// SPDX-License-Identifier: Apache-2.0
// Named temporary files a run has created and not yet renamed into place, removed if the run is
// interrupted. Outputs are nameless (O_TMPFILE) until they are committed, so names exist only for
// the moment between linking a finished output under a temporary name and renaming it onto the
// target, or for the whole write where the file system has no O_TMPFILE. Registration and the
// handler are async-signal-safe (fixed slots, no allocation, unlink only).
#pragma once

#include <string>

namespace kfc::io {

// Records `path` (a file this process created); returns its slot, or -1 when all are taken (the
// file is then simply not removed on a signal). Paths longer than the slot are not recorded.
int RegisterTempName(const std::string& path);
// Forgets the slot (after a rename or an unlink); -1 is ignored.
void UnregisterTempName(int slot);

// For the tool's main: SIGINT, SIGTERM, SIGHUP and SIGQUIT unlink the registered names, then end
// the process as the signal would have; SIGXFSZ is ignored, so that a write over the file size
// limit fails with EFBIG and takes the normal error path (one line, exit 1, nothing left).
void InstallTempCleanupHandlers();

// A short name for a temporary file in `folder`: ".kfc-" plus 8 random characters, so that it fits
// beside outputs whose names are up to the 255-byte limit.
std::string TempNameIn(const std::string& folder);

}  // namespace kfc::io
