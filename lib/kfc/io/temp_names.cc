// SPDX-License-Identifier: Apache-2.0
#include "kfc/io/temp_names.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>

namespace kfc::io {
namespace {

constexpr int kSlots = 64;
constexpr size_t kPathBytes = 4096;

struct Slot {
  std::atomic<int> state{0};  // 0 free, 1 being filled, 2 registered
  char path[kPathBytes];
};
Slot g_slots[kSlots];

void CleanupAndReraise(int sig) {
  for (Slot& s : g_slots) {
    if (s.state.load() == 2) ::unlink(s.path);
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

int RegisterTempName(const std::string& path) {
  if (path.size() >= kPathBytes) return -1;
  for (int i = 0; i < kSlots; ++i) {
    int expected = 0;
    if (g_slots[i].state.compare_exchange_strong(expected, 1)) {
      std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
      g_slots[i].state.store(2);
      return i;
    }
  }
  return -1;
}

void UnregisterTempName(int slot) {
  if (slot >= 0 && slot < kSlots) g_slots[slot].state.store(0);
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
