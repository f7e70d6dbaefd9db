// SPDX-License-Identifier: Apache-2.0
// Unit tests for kfc/core/parallel: every index runs once, the reported error is the smallest
// failing index's whatever the thread count, and exceptions become errors.
#include "kfc/core/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

namespace kfc {
namespace {

TEST(ParallelForTest, EveryIndexRunsExactlyOnce) {
  for (int threads : {1, 2, 3, 8}) {
    std::vector<std::atomic<int>> runs(100);
    ASSERT_TRUE(ParallelFor(100, threads, [&](int64_t i) {
                  runs[static_cast<size_t>(i)].fetch_add(1);
                  return Status::Ok();
                }).ok());
    for (const auto& r : runs) EXPECT_EQ(r.load(), 1) << threads << " threads";
  }
  EXPECT_TRUE(ParallelFor(0, 4, [](int64_t) { return Internal("never called"); }).ok());
}

TEST(ParallelForTest, TheSmallestFailingIndexWinsAndSmallerOnesAllRan) {
  for (int threads : {1, 2, 4}) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<std::atomic<int>> runs(64);
      const Status s = ParallelFor(64, threads, [&](int64_t i) -> Status {
        runs[static_cast<size_t>(i)].fetch_add(1);
        if (i == 17 || i == 40 || i == 41) return InvalidArgument("piece " + std::to_string(i));
        return Status::Ok();
      });
      ASSERT_FALSE(s.ok());
      EXPECT_EQ(s.message(), "piece 17") << threads << " threads";
      for (int i = 0; i <= 17; ++i) EXPECT_EQ(runs[static_cast<size_t>(i)].load(), 1) << i;
    }
  }
}

TEST(ParallelForTest, AnExceptionBecomesAnInternalError) {
  const Status s = ParallelFor(8, 2, [](int64_t i) -> Status {
    if (i == 3) throw std::runtime_error("boom");
    return Status::Ok();
  });
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("boom"), std::string::npos) << s.message();
}

TEST(ResolveThreadsTest, ZeroMeansOnePerCore) {
  EXPECT_EQ(ResolveThreads(3), 3);
  EXPECT_GE(ResolveThreads(0), 1);
  EXPECT_GE(ResolveThreads(-1), 1);
}

}  // namespace
}  // namespace kfc
