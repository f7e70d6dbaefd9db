// SPDX-License-Identifier: Apache-2.0
#include "kfc/io/temp_dir.h"

#include <signal.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "kfc/io/temp_names.h"

namespace kfc::io {

StatusOr<TempDir> TempDir::Create(const std::string& prefix) {
  const char* env = std::getenv("TMPDIR");
  std::string root = env != nullptr && env[0] != '\0' ? env : "/tmp";
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  std::string pattern = root + "/" + prefix + "XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  // Created and registered for signal cleanup with signals blocked, so that an interrupt never
  // falls between the two.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  const bool made = mkdtemp(buf.data()) != nullptr;
  const int err = errno;
  const int slot = made ? RegisterTempFolder(buf.data()) : -1;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (!made) {
    return IoError("temporary folder '" + pattern + "': cannot create it: " + strerror(err));
  }
  return TempDir(std::string(buf.data()), slot);
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;  // best effort: a failure leaves the folder behind, never throws
  std::filesystem::remove_all(path_, ec);
  UnregisterTempFolder(slot_);
}

}  // namespace kfc::io
