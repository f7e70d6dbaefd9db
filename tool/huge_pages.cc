// SPDX-License-Identifier: Apache-2.0
// The kfc-compress process's large allocations ask for transparent huge pages.
//
// Why: a run's big buffers (each weight as read, its rearranged matrix R, serialized models) are
// fresh anonymous memory, and with 4 KiB pages the kernel takes one page fault and clears one page
// per 4 KiB touched, then frees them one by one. On the 2-core VM this project measures on, with
// THP in the usual "madvise" mode, touching a fresh 64 MiB buffer took 65-86 ms and freeing it
// 3.4-7.6 ms; with madvise(MADV_HUGEPAGE) 12-16 ms and 0.2 ms (docs/performance.md, "The whole CLI
// run"). The allocations are made all over the library (std::vector, new[]), so the executable
// replaces the global operator new: blocks of at least kHugeBlockBytes come from malloc as
// before and their 2 MiB-aligned interior is advised; everything else is untouched. Memory is
// returned by free() as always. Values are not affected (the pages are zero-filled either way),
// so neither are the output bytes. The advice is a hint: where THP is off ("never") it does
// nothing.
//
// Only this executable does this: the library does not replace the allocator of the programs that
// link it (the Python module, tests).
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <new>

namespace {

constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;
// Smaller blocks would get at most a few huge pages, and small ones none; 8 MiB keeps the advice
// (one madvise call, which may split a mapping) to the buffers that dominate page faults.
constexpr std::size_t kHugeBlockBytes = std::size_t{8} << 20;

void AdviseHuge(void* p, std::size_t size) {
  const auto begin = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t first = (begin + kHugePageBytes - 1) & ~(kHugePageBytes - 1);
  const std::uintptr_t last = (begin + size) & ~(kHugePageBytes - 1);
  if (last > first) {
    // Failure (e.g. a kernel without THP) leaves ordinary pages: nothing to report.
    (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
}

void* Allocate(std::size_t size) {
  if (size == 0) size = 1;
  for (;;) {
    if (void* p = std::malloc(size)) {
      if (size >= kHugeBlockBytes) AdviseHuge(p, size);
      return p;
    }
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

}  // namespace

// The sanitizers replace operator new themselves (to track allocations); they keep theirs.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define KFC_SANITIZED_ALLOCATOR 1
#endif
#endif
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && \
    !defined(KFC_SANITIZED_ALLOCATOR)
void* operator new(std::size_t size) { return Allocate(size); }
void* operator new[](std::size_t size) { return Allocate(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#endif
