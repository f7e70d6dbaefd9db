// SPDX-License-Identifier: Apache-2.0
#include "kfc/core/parallel.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace kfc {

int ResolveThreads(int requested) {
  if (requested >= 1) return requested;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

Status ParallelFor(int64_t n, int threads, const std::function<Status(int64_t)>& fn) {
  std::atomic<int64_t> next{0};
  std::mutex mu;
  int64_t failed = n;  // smallest failing i so far (guarded by mu)
  Status error = Status::Ok();
  auto worker = [&] {
    for (;;) {
      const int64_t i = next.fetch_add(1);
      if (i >= n) return;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (i > failed) return;
      }
      Status s = Status::Ok();
      try {
        s = fn(i);
      } catch (const std::exception& e) {
        s = Internal(std::string("unexpected exception: ") + e.what());
      }
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (i < failed) {
          failed = i;
          error = std::move(s);
        }
      }
    }
  };
  const int extra = static_cast<int>(std::min<int64_t>(std::max(threads, 1), n)) - 1;
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(std::max(extra, 0)));
  for (int t = 0; t < extra; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return error;
}

}  // namespace kfc
