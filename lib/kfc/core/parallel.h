// SPDX-License-Identifier: Apache-2.0
// Running independent pieces of work on several threads, deterministically: which piece fails
// first, and what each piece computes, do not depend on the number of threads.
#pragma once

#include <cstdint>
#include <functional>

#include "kfc/core/status.h"

namespace kfc {

// The number of threads `requested` asks for: itself when >= 1, else the machine's cores (at least
// 1).
int ResolveThreads(int requested);

// Calls fn(i) for every i in [0, n) on up to `threads` threads (the calling thread among them),
// each i exactly once, in increasing order of start. On failure no new i starts after the failing
// one, and the result is the error of the smallest failing i: every smaller i ran and succeeded,
// so the error does not depend on timing. An exception thrown by fn becomes Internal.
Status ParallelFor(int64_t n, int threads, const std::function<Status(int64_t i)>& fn);

}  // namespace kfc
