// SPDX-License-Identifier: Apache-2.0
// OpenBLAS's own thread pool, pinned while the pipeline runs its own threads: one BLAS thread per
// calling thread, so cores are not oversubscribed and every BLAS call's arithmetic (and so every
// factorization's bits) is the same whatever the number of threads or cores.
//
// OpenBLAS's thread count is one setting for the whole process, so pins are counted: the first
// pin saves the setting and the last one to end restores it. Concurrent runs (library callers,
// the Python module's threads) therefore never see another run's restore while they still factor.
#pragma once

namespace kfc::kron {

class ScopedBlasThreads {
 public:
  // Pins OpenBLAS to `threads` threads until the last overlapping pin ends. Every pin in this
  // code base asks for 1; a pin asking for another count while one is active keeps the active
  // count (the first pin wins), so bits never depend on which run started first.
  explicit ScopedBlasThreads(int threads);
  ~ScopedBlasThreads();  // the last overlapping pin restores the count OpenBLAS had before
  ScopedBlasThreads(const ScopedBlasThreads&) = delete;
  ScopedBlasThreads& operator=(const ScopedBlasThreads&) = delete;
};

// The number of pins active now (for tests).
int ActiveBlasPins();

}  // namespace kfc::kron
