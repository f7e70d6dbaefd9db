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
//
// A thread with no i left to start does not exit: until every i is done, it helps the others'
// ParallelBlocks calls. So `threads` threads stay busy when fewer items than threads remain (one
// large item, or the tail of many), without changing what any item computes.
Status ParallelFor(int64_t n, int threads, const std::function<Status(int64_t i)>& fn);

// Calls fn(b) for every b in [0, blocks), each exactly once, and returns when all are done. They
// run on the calling thread, helped by threads of the enclosing ParallelFor (if any) that have no
// item of their own left (and by the caller's thread itself, which may also run blocks of other
// threads' calls while it waits); outside a ParallelFor, or in one with a single thread, on the
// calling thread alone, in order. The blocks must be independent (each writes its own output) and
// fn must not throw: then the result is the same whichever threads run which blocks, so a caller
// that fixes its blocking independently of the thread count gets the same bits for any number of
// threads.
void ParallelBlocks(int64_t blocks, const std::function<void(int64_t b)>& fn);

}  // namespace kfc
