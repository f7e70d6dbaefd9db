// SPDX-License-Identifier: Apache-2.0
#include "kfc/kron/scratch.h"

#include <memory>

namespace kfc::kron {
namespace {

struct Buffer {
  std::unique_ptr<unsigned char[]> data;
  size_t bytes = 0;
};

thread_local Buffer t_buffers[static_cast<size_t>(ScratchSlot::kCount)];

void* Get(ScratchSlot slot, size_t bytes) {
  Buffer& b = t_buffers[static_cast<size_t>(slot)];
  if (bytes > b.bytes || (b.bytes > kScratchKeepBytes && bytes <= b.bytes / 2)) {
    b.data.reset();
    b.bytes = 0;
    b.data.reset(new unsigned char[bytes]);
    b.bytes = bytes;
  }
  return b.data.get();
}

}  // namespace

float* ScratchFloats(ScratchSlot slot, size_t size) {
  return static_cast<float*>(Get(slot, size * sizeof(float)));
}

double* ScratchDoubles(ScratchSlot slot, size_t size) {
  return static_cast<double*>(Get(slot, size * sizeof(double)));
}

}  // namespace kfc::kron
