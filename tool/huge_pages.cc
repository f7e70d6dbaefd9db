// SPDX-License-Identifier: Apache-2.0
// With KFC_HUGE_PAGES=1 in the environment, the kfc-compress process's large allocations ask for
// transparent huge pages. Off by default: measured on this project's VM, it is a large gain or a
// large loss depending on where the kernel finds free 2 MiB blocks.
//
// Why it can help: a run's big buffers (each weight as read, its rearranged matrix R, serialized
// models) are fresh anonymous memory, and with 4 KiB pages the kernel takes one page fault and
// clears one page per 4 KiB touched, then frees them one by one. With THP in the usual "madvise"
// mode, madvise(MADV_HUGEPAGE) makes it one fault per 2 MiB. Touching a fresh 64 MiB buffer in a
// new process (16 processes each): 4 KiB pages 51-153 ms (median 78), huge pages 9-28 ms (median
// 15); freeing it 3.4-15 ms -> 0.2 ms. Why it can hurt: 4 KiB faults reuse recently freed pages,
// huge pages need free 2 MiB blocks, and on this VM such blocks are often memory the host has not
// backed yet, which the guest then clears at a fraction of the usual speed. Whole runs of one
// 4096 x 4096 layer at -r 8 were bimodal: some 25% under the 4 KiB runs in CPU time, others (more
// often while perf record wrote its data) up to 60% over, nearly all of it in clear_page_erms
// (docs/performance.md, "The whole CLI run").
//
// The allocations are made all over the library (std::vector, new[]), so the executable replaces
// the global operator new: blocks of at least kHugeBlockBytes come from malloc as before and,
// when asked, their 2 MiB-aligned interior is advised; everything else is untouched. Memory is
// returned by free() as always. Values are not affected (the pages are zero-filled either way), so
// neither are the output bytes. Only this executable does this: the library does not replace the
// allocator of the programs that link it (the Python module, tests).
#include "tool/huge_pages.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace {

constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;
// Smaller blocks would get at most a few huge pages, and small ones none; 8 MiB keeps the advice
// (one madvise call, which may split a mapping) to the buffers that dominate page faults.
constexpr std::size_t kHugeBlockBytes = std::size_t{8} << 20;

std::atomic<bool> advise_huge{false};

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
      if (size >= kHugeBlockBytes && advise_huge.load(std::memory_order_relaxed)) {
        AdviseHuge(p, size);
      }
      return p;
    }
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

}  // namespace

namespace kfc::tool {

void UseHugePagesIfAsked() {
  const char* v = std::getenv("KFC_HUGE_PAGES");
  advise_huge.store(v != nullptr && std::strcmp(v, "1") == 0, std::memory_order_relaxed);
}

}  // namespace kfc::tool

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
