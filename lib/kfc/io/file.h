// SPDX-License-Identifier: Apache-2.0
// File helpers: whole-file reads with a size limit, atomic writes, and the checks made on output
// paths before any work is done.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/io/atomic_file.h"

namespace kfc::io {

// Reads a whole file. Errors name `what` ("plan 'p.json'") and the cause: missing, a directory,
// unreadable, or larger than `max_bytes` (described as `limit_name`).
StatusOr<std::string> ReadFile(const std::string& path, const std::string& what, int64_t max_bytes,
                               const std::string& limit_name);

// Checks, before any work is done, that `output` can be written: its folder exists and is a
// folder, `output` is not a folder and is not the same file as `input`.
Status CheckOutputPath(const std::string& input, const std::string& output);

// Writes `bytes` to `path` atomically (temporary file in the same folder, fsync, rename). On any
// failure the temporary file is removed and `path` is left as it was.
// With a `group`, the file is staged there and appears only at the group's Commit.
Status WriteFileAtomic(const std::string& path, const std::string& bytes,
                       CommitGroup* group = nullptr);

// Fails when `path` is one of the input model's external data files (canonical paths, as
// ExternalDataStats::files lists them): writing it would change the input. `what` names the flag.
Status CheckNotInputData(const std::string& path, const std::vector<std::string>& input_files,
                         const std::string& what);

}  // namespace kfc::io
