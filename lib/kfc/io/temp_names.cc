// SPDX-License-Identifier: Apache-2.0
#include "kfc/io/temp_names.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <random>

namespace kfc::io {
namespace {

constexpr int kNameSlots = 64;
constexpr int kFolderSlots = 16;
constexpr int kGroupSlots = 16;
constexpr size_t kPathBytes = 4096;
// Folder removal recurses this deep at most (our folders are two or three levels deep); each level
// holds one directory-entry buffer on the stack of whichever thread took the signal.
constexpr int kMaxDepth = 16;
constexpr size_t kDirBufferBytes = 1024;

struct PathSlot {
  std::atomic<int> state{0};  // 0 free, 1 being filled, 2 registered
  char path[kPathBytes];
};
struct GroupSlot {
  std::atomic<int> state{0};
  std::atomic<pid_t> pgid{0};
};
PathSlot g_names[kNameSlots];
PathSlot g_folders[kFolderSlots];
GroupSlot g_groups[kGroupSlots];

template <int N>
int RegisterPath(PathSlot (&slots)[N], const std::string& path) {
  if (path.empty() || path.size() >= kPathBytes) return -1;
  for (int i = 0; i < N; ++i) {
    int expected = 0;
    if (slots[i].state.compare_exchange_strong(expected, 1)) {
      std::memcpy(slots[i].path, path.c_str(), path.size() + 1);
      slots[i].state.store(2);
      return i;
    }
  }
  return -1;
}

template <typename Slot, int N>
void Unregister(Slot (&slots)[N], int slot) {
  if (slot >= 0 && slot < N) slots[slot].state.store(0);
}

// The record getdents64 fills in (not declared by glibc's headers).
struct DirEntry64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[1];
};

bool IsDotOrDotDot(const char* name) {
  return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

// Removes everything inside the open folder `fd`. Entries removed while the folder is being read
// can make the listing skip others, so it reads again until a pass removes nothing.
void EmptyFolder(int fd, int depth) {
  alignas(8) char buf[kDirBufferBytes];
  for (int pass = 0; pass < 1000; ++pass) {
    bool removed = false;
    if (::lseek(fd, 0, SEEK_SET) != 0) return;
    while (true) {
      const long n = ::syscall(SYS_getdents64, fd, buf, sizeof(buf));
      if (n <= 0) break;
      for (long off = 0; off < n;) {
        const auto* d = reinterpret_cast<const DirEntry64*>(buf + off);
        off += d->d_reclen;
        if (IsDotOrDotDot(d->d_name)) continue;
        if (::unlinkat(fd, d->d_name, 0) == 0) {
          removed = true;
          continue;
        }
        if ((errno == EISDIR || errno == EPERM) && depth > 0) {
          const int sub = ::openat(fd, d->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (sub >= 0) {
            EmptyFolder(sub, depth - 1);
            ::close(sub);
          }
          if (::unlinkat(fd, d->d_name, AT_REMOVEDIR) == 0) removed = true;
        }
      }
    }
    if (!removed) return;
  }
}

void SleepMillis(long ms) {
  struct timespec ts {};
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  ::nanosleep(&ts, nullptr);
}

void CleanupRegistered() {
  const int saved_errno = errno;
  // 1. Child groups: killed, and each leader waited for (up to 2 s), so that none writes into a
  // folder while it is removed.
  for (GroupSlot& g : g_groups) {
    if (g.state.load() == 2 && g.pgid.load() > 0) ::kill(-g.pgid.load(), SIGKILL);
  }
  for (GroupSlot& g : g_groups) {
    if (g.state.load() != 2 || g.pgid.load() <= 0) continue;
    for (int i = 0; i < 200; ++i) {
      const pid_t r = ::waitpid(g.pgid.load(), nullptr, WNOHANG);
      if (r != 0 && !(r < 0 && errno == EINTR)) break;  // reaped, or not (or no longer) ours
      SleepMillis(10);
    }
  }
  // 2. Folders, 3. names.
  for (PathSlot& s : g_folders) {
    if (s.state.load() == 2) RemoveTreeSignalSafe(s.path);
  }
  for (PathSlot& s : g_names) {
    if (s.state.load() == 2) ::unlink(s.path);
  }
  errno = saved_errno;
}

void CleanupAndReraise(int sig) {
  CleanupRegistered();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

int RegisterTempName(const std::string& path) { return RegisterPath(g_names, path); }
void UnregisterTempName(int slot) { Unregister(g_names, slot); }

int RegisterTempFolder(const std::string& path) { return RegisterPath(g_folders, path); }
void UnregisterTempFolder(int slot) { Unregister(g_folders, slot); }

int RegisterChildGroup(pid_t pgid) {
  if (pgid <= 0) return -1;
  for (int i = 0; i < kGroupSlots; ++i) {
    int expected = 0;
    if (g_groups[i].state.compare_exchange_strong(expected, 1)) {
      g_groups[i].pgid.store(pgid);
      g_groups[i].state.store(2);
      return i;
    }
  }
  return -1;
}
void UnregisterChildGroup(int slot) { Unregister(g_groups, slot); }

void CleanupRegisteredForTesting() { CleanupRegistered(); }

bool RemoveTreeSignalSafe(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT;
  EmptyFolder(fd, kMaxDepth);
  ::close(fd);
  return ::rmdir(path) == 0 || errno == ENOENT;
}

void InstallTempCleanupHandlers() {
  struct sigaction sa {};
  sa.sa_handler = CleanupAndReraise;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
    sigaddset(&sa.sa_mask, sig);
  }
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
    struct sigaction old {};
    // A signal ignored by whoever started us stays ignored.
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    ::sigaction(sig, &sa, nullptr);
  }
  ::signal(SIGXFSZ, SIG_IGN);
}

std::string TempNameIn(const std::string& folder) {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng(std::random_device{}() ^
                                   (static_cast<uint64_t>(::getpid()) << 32));
  std::string name = ".kfc-";
  for (int i = 0; i < 8; ++i) name += kChars[rng() % (sizeof(kChars) - 1)];
  return folder + "/" + name;
}

}  // namespace kfc::io
