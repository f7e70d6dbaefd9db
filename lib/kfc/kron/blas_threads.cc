// SPDX-License-Identifier: Apache-2.0
#include "kfc/kron/blas_threads.h"

#include <cblas.h>

#include <mutex>

namespace kfc::kron {
namespace {

std::mutex& PinMutex() {
  static std::mutex mu;
  return mu;
}
int pins = 0;        // guarded by PinMutex()
int restore_to = 0;  // guarded by PinMutex(): OpenBLAS's count before the first pin

}  // namespace

ScopedBlasThreads::ScopedBlasThreads(int threads) {
  std::lock_guard<std::mutex> lock(PinMutex());
  if (pins++ == 0) {
    restore_to = openblas_get_num_threads();
    openblas_set_num_threads(threads);
  }
}

ScopedBlasThreads::~ScopedBlasThreads() {
  std::lock_guard<std::mutex> lock(PinMutex());
  if (--pins == 0) openblas_set_num_threads(restore_to);
}

int ActiveBlasPins() {
  std::lock_guard<std::mutex> lock(PinMutex());
  return pins;
}

}  // namespace kfc::kron
