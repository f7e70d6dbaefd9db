// The sha256 of a file's bytes, as `sha256sum` prints it (the input digest of the provenance).
#pragma once

#include <string>

#include "kfc/core/status.h"

namespace kfc::io {

// 64 lowercase hex digits. NotFound / IoError naming the file when it cannot be read.
StatusOr<std::string> FileSha256(const std::string& path);

}  // namespace kfc::io
