// SPDX-License-Identifier: Apache-2.0
#include "kfc/kron/blas_threads.h"

#include <cblas.h>

namespace kfc::kron {

ScopedBlasThreads::ScopedBlasThreads(int threads) : previous_(openblas_get_num_threads()) {
  openblas_set_num_threads(threads);
}

ScopedBlasThreads::~ScopedBlasThreads() { openblas_set_num_threads(previous_); }

}  // namespace kfc::kron
