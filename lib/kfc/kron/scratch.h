// SPDX-License-Identifier: Apache-2.0
// Per-thread scratch buffers reused across calls: the ten or so products of each randomized SVD,
// layer after layer, need thin buffers of the same sizes, and allocating them afresh each time
// (value-initialized, or above malloc's mmap threshold) cost page faults, page clearing and
// memsets (docs/performance.md). Large per-layer buffers (R) are not kept here: held between
// layers they would add to the peak memory. This header includes no ONNX or protobuf headers.
#pragma once

#include <cstddef>

namespace kfc::kron {

// Independent buffers a thread may hold at once; each is used by one function at a time.
enum class ScratchSlot {
  kProductIn,       // float copies of the thin block going into a product
  kProductOut,      // float result of a product before it is widened to double
  kProductChunk,    // rows of A converted to double for the double-accumulation products
  kProductPartial,  // partial sums of the double-accumulation A^T in
  kCount,
};

// `size` uninitialized elements of this thread's buffer `slot`, valid until the next call for the
// same slot on the same thread (or thread exit). The buffer only grows, except that one above
// kScratchKeepBytes is freed on the next call for a smaller size, so a thread keeps at most about
// kScratchKeepBytes per slot between calls. Throws std::bad_alloc when memory runs out.
constexpr size_t kScratchKeepBytes = size_t{64} << 20;
float* ScratchFloats(ScratchSlot slot, size_t size);
double* ScratchDoubles(ScratchSlot slot, size_t size);

// Frees every scratch buffer of the calling thread (a thread's buffers are also freed when it
// exits). For the thread that ran a parallel phase itself, so its buffers do not outlive it.
void ReleaseScratch();

}  // namespace kfc::kron
