// SPDX-License-Identifier: Apache-2.0
// OpenBLAS's thread count is process-wide: overlapping pins from concurrent runs must keep it at
// one thread until the last of them ends (the Python module's concurrent compress() calls once got
// different bytes in 1 of 36 runs when the first run to finish restored the count under another).
#include "kfc/kron/blas_threads.h"

#include <cblas.h>
#include <gtest/gtest.h>

#include <optional>

namespace kfc::kron {
namespace {

TEST(BlasThreadsTest, OverlappingPinsHoldUntilTheLastEnds) {
  openblas_set_num_threads(2);
  const int before = openblas_get_num_threads();
  std::optional<ScopedBlasThreads> first, second;
  first.emplace(1);
  EXPECT_EQ(openblas_get_num_threads(), 1);
  second.emplace(1);
  EXPECT_EQ(ActiveBlasPins(), 2);
  first.reset();  // the first run ends while the second still factors
  EXPECT_EQ(openblas_get_num_threads(), 1);
  second.reset();
  EXPECT_EQ(openblas_get_num_threads(), before);
  EXPECT_EQ(ActiveBlasPins(), 0);
}

TEST(BlasThreadsTest, NestedPinInsideAnotherKeepsOneThread) {
  ScopedBlasThreads outer(1);
  {
    ScopedBlasThreads inner(1);
    EXPECT_EQ(openblas_get_num_threads(), 1);
  }
  EXPECT_EQ(openblas_get_num_threads(), 1);
}

}  // namespace
}  // namespace kfc::kron
