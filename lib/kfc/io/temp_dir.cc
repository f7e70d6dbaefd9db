#include "kfc/io/temp_dir.h"

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

namespace kfc::io {

StatusOr<TempDir> TempDir::Create(const std::string& prefix) {
  const char* env = std::getenv("TMPDIR");
  std::string root = env != nullptr && env[0] != '\0' ? env : "/tmp";
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  std::string pattern = root + "/" + prefix + "XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    return IoError("temporary folder '" + pattern + "': cannot create it: " + strerror(errno));
  }
  return TempDir(std::string(buf.data()));
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;  // best effort: a failure leaves the folder behind, never throws
  std::filesystem::remove_all(path_, ec);
}

}  // namespace kfc::io
