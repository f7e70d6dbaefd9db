#include "kfc/io/file_digest.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "kfc/core/sha256.h"

namespace kfc::io {

StatusOr<std::string> FileSha256(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    const int err = errno;
    const std::string what = "'" + path + "': cannot open for its sha256: " + std::strerror(err);
    return err == ENOENT ? NotFound(what) : IoError(what);
  }
  Sha256 hash;
  std::vector<char> buffer(size_t{1} << 20);
  for (;;) {
    const size_t got = std::fread(buffer.data(), 1, buffer.size(), f);
    hash.Update(buffer.data(), got);
    if (got < buffer.size()) break;
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return IoError("'" + path + "': read error while computing its sha256");
  return hash.HexDigest();
}

}  // namespace kfc::io
