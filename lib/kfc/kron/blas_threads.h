// SPDX-License-Identifier: Apache-2.0
// OpenBLAS's own thread pool, pinned while the pipeline runs its own threads: one BLAS thread per
// calling thread, so cores are not oversubscribed and every BLAS call's arithmetic (and so every
// factorization's bits) is the same whatever the number of threads or cores.
#pragma once

namespace kfc::kron {

class ScopedBlasThreads {
 public:
  explicit ScopedBlasThreads(int threads);  // sets OpenBLAS to `threads` threads
  ~ScopedBlasThreads();                     // restores the number it had
  ScopedBlasThreads(const ScopedBlasThreads&) = delete;
  ScopedBlasThreads& operator=(const ScopedBlasThreads&) = delete;

 private:
  int previous_;
};

}  // namespace kfc::kron
