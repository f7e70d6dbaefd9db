// SPDX-License-Identifier: Apache-2.0
// Unit tests for kfc/core/parallel: every index runs once, the reported error is the smallest
// failing index's whatever the thread count, and exceptions become errors.
#include "kfc/core/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
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

// Outside ParallelFor, and with one thread, the blocks run in order on the caller.
TEST(ParallelBlocksTest, WithoutHelpersBlocksRunInOrderOnTheCaller) {
  std::vector<int64_t> order;
  ParallelBlocks(5, [&](int64_t b) { order.push_back(b); });
  EXPECT_EQ(order, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  order.clear();
  ASSERT_TRUE(ParallelFor(1, 1, [&](int64_t) {
                ParallelBlocks(3, [&](int64_t b) { order.push_back(b); });
                return Status::Ok();
              }).ok());
  EXPECT_EQ(order, (std::vector<int64_t>{0, 1, 2}));
}

// One item on four threads: the three without an item help with its blocks; every block runs
// exactly once, and the caller gets control back only when all are done.
TEST(ParallelBlocksTest, IdleThreadsHelpAndEveryBlockRunsOnce) {
  for (int64_t items : {1, 2, 5}) {
    std::mutex mu;
    std::set<std::thread::id> helpers_seen;
    std::atomic<bool> all_done{true};
    ASSERT_TRUE(ParallelFor(items, 4, [&](int64_t) {
                  for (int call = 0; call < 3; ++call) {
                    std::vector<std::atomic<int>> runs(40);
                    const std::thread::id caller = std::this_thread::get_id();
                    ParallelBlocks(40, [&](int64_t b) {
                      if (b == 0 && items == 1 && call == 0) {
                        // Waits (up to 20 s) for a helper to take a block, so the test sees
                        // helping even on a loaded machine.
                        const auto until =
                            std::chrono::steady_clock::now() + std::chrono::seconds(20);
                        for (;;) {
                          {
                            std::lock_guard<std::mutex> lock(mu);
                            if (!helpers_seen.empty()) break;
                          }
                          if (std::chrono::steady_clock::now() > until) break;
                          std::this_thread::sleep_for(std::chrono::milliseconds(1));
                        }
                      }
                      if (std::this_thread::get_id() != caller) {
                        std::lock_guard<std::mutex> lock(mu);
                        helpers_seen.insert(std::this_thread::get_id());
                      }
                      runs[static_cast<size_t>(b)].fetch_add(1);
                    });
                    for (const auto& r : runs) {
                      if (r.load() != 1) all_done = false;
                    }
                  }
                  return Status::Ok();
                }).ok());
    EXPECT_TRUE(all_done.load()) << items << " items";
    if (items == 1) EXPECT_FALSE(helpers_seen.empty());
  }
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
