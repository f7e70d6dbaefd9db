// SPDX-License-Identifier: Apache-2.0
#include "kfc/kron/scratch.h"

#include <sys/mman.h>

#include <new>

namespace kfc::kron {
namespace {

// Mapped directly, not through malloc: long-lived buffers in malloc's heap, between the weights
// each layer allocates and frees, fragmented it (peak RSS grew by a weight's size per thread).
struct Buffer {
  void* data = nullptr;
  size_t bytes = 0;
  void Reset() {
    if (data != nullptr) munmap(data, bytes);
    data = nullptr;
    bytes = 0;
  }
  ~Buffer() { Reset(); }
};

thread_local Buffer t_buffers[static_cast<size_t>(ScratchSlot::kCount)];

void* Get(ScratchSlot slot, size_t bytes) {
  Buffer& b = t_buffers[static_cast<size_t>(slot)];
  if (bytes == 0) bytes = 1;
  if (bytes > b.bytes || (b.bytes > kScratchKeepBytes && bytes <= b.bytes / 2)) {
    b.Reset();
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    b.data = p;
    b.bytes = bytes;
  }
  return b.data;
}

}  // namespace

float* ScratchFloats(ScratchSlot slot, size_t size) {
  return static_cast<float*>(Get(slot, size * sizeof(float)));
}

double* ScratchDoubles(ScratchSlot slot, size_t size) {
  return static_cast<double*>(Get(slot, size * sizeof(double)));
}

void ReleaseScratch() {
  for (Buffer& b : t_buffers) b.Reset();
}

}  // namespace kfc::kron
