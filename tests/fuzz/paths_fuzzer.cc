// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the writers' path checks (issue 18): the input bytes build a scratch folder
// of regular files, hard links, symbolic links (to files, to FIFOs, to folders, to nothing), FIFOs
// and folders, then name some of them as a run's reads and writes, each spelled in one of several
// ways (plain, "./x", "sub/../x", absolute, through a linked folder). io::RunFiles::Check must
// never accept a set in which a write is the same file as an existing read or as another write, or
// a write that is not a regular file or absent; and an io::AtomicFile committed to an accepted
// write must leave every read's bytes unchanged and a regular file at the target. A violated
// property traps; a crash, leak or sanitizer report is a bug too.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kfc/io/atomic_file.h"
#include "kfc/io/file_identity.h"

namespace {

namespace fs = std::filesystem;

const std::string& Root() {
  static const std::string root = [] {
    char dir[] = "/tmp/kfc-paths-fuzz.XXXXXX";
    const char* made = mkdtemp(dir);
    return std::string(made != nullptr ? made : "/tmp/kfc-paths-fuzz");
  }();
  return root;
}

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

bool SameFile(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// The file a write of `path` would create or replace, by its folder's real path and its name.
std::string Target(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  const fs::path folder = fs::canonical(p.parent_path().empty() ? "." : p.parent_path(), ec);
  return ec ? "" : (folder / p.filename()).string();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string root = Root() + "/case";
  std::error_code ec;
  fs::remove_all(root, ec);
  fs::create_directories(root + "/sub", ec);
  ::symlink(".", (root + "/here").c_str());  // a folder reached through a link
  const char* names[] = {"a", "b", "c", "d", "e", "f", "sub/g", "sub/h"};
  constexpr int kNames = 8;
  size_t at = 0;
  auto next = [&]() -> int { return at < size ? data[at++] : -1; };
  // Layout: one byte per name (kind), plus a byte for the link/hard-link partner.
  for (int i = 0; i < kNames; ++i) {
    const int kind = next();
    if (kind < 0) break;
    const std::string path = root + "/" + names[i];
    const std::string other = names[(kind >> 3) % kNames];
    switch (kind % 7) {
      case 0:
        break;  // absent
      case 1:
      case 2: {
        std::ofstream(path) << "bytes of " << names[i];
        break;
      }
      case 3:
        ::link((root + "/" + other).c_str(), path.c_str());
        break;
      case 4:
        ::symlink((std::string(i >= 6 ? "../" : "") + other).c_str(), path.c_str());
        break;
      case 5:
        ::mkfifo(path.c_str(), 0600);
        break;
      case 6:
        fs::create_directory(path, ec);
        break;
    }
  }
  // Reads and writes: (role byte, name byte, spelling byte) triples.
  kfc::io::RunFiles files;
  std::vector<std::string> reads, writes;
  for (int k = 0; k < 8; ++k) {
    const int role = next(), which = next(), spelling = next();
    if (spelling < 0) break;
    const std::string name = names[which % kNames];
    std::string path;
    switch (spelling % 4) {
      case 0:
        path = root + "/" + name;
        break;
      case 1:
        path = root + "/./" + name;
        break;
      case 2:
        path = root + "/sub/../" + name;
        break;
      case 3:
        path = root + "/here/" + name;
        break;
    }
    if (role % 2 == 0) {
      files.AddRead("read " + std::to_string(k), path);
      reads.push_back(path);
    } else {
      files.AddWrite("write " + std::to_string(k), path);
      writes.push_back(path);
    }
  }
  if (!files.Check().ok()) return 0;
  // Accepted: check the properties independently.
  for (size_t w = 0; w < writes.size(); ++w) {
    struct stat st {};
    if (::stat(writes[w].c_str(), &st) == 0 && !S_ISREG(st.st_mode)) __builtin_trap();
    if (::stat(writes[w].c_str(), &st) != 0 && ::lstat(writes[w].c_str(), &st) == 0) {
      __builtin_trap();  // a dangling link accepted as a write
    }
    for (const auto& r : reads) {
      if (SameFile(writes[w], r)) __builtin_trap();
    }
    for (size_t v = 0; v < w; ++v) {
      if (SameFile(writes[w], writes[v])) __builtin_trap();
      if (::access(writes[w].c_str(), F_OK) != 0 && Target(writes[w]) == Target(writes[v])) {
        __builtin_trap();
      }
    }
  }
  if (writes.empty()) return 0;
  std::vector<std::string> before;
  std::vector<bool> existed;  // a read that did not exist cannot be changed (its open fails)
  for (const auto& r : reads) {
    struct stat rs {};
    const bool regular = ::stat(r.c_str(), &rs) == 0 && S_ISREG(rs.st_mode);
    existed.push_back(regular);
    before.push_back(regular ? Slurp(r) : "");  // never open a FIFO
  }
  kfc::io::AtomicFile out;
  if (out.Open(writes[0]).ok() && out.Write("new", 3).ok() && out.Commit().ok()) {
    struct stat st {};
    if (::stat(writes[0].c_str(), &st) != 0 || !S_ISREG(st.st_mode)) __builtin_trap();
    if (Slurp(writes[0]) != "new") __builtin_trap();
    for (size_t r = 0; r < reads.size(); ++r) {
      struct stat rs {};
      if (existed[r] && ::stat(reads[r].c_str(), &rs) == 0 && S_ISREG(rs.st_mode) &&
          Slurp(reads[r]) != before[r]) {
        __builtin_trap();
      }
    }
  }
  return 0;
}
