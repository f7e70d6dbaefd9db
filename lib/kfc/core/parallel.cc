// SPDX-License-Identifier: Apache-2.0
#include "kfc/core/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace kfc {
namespace {

// One ParallelBlocks call open to helpers.
struct BlockTask {
  const std::function<void(int64_t)>* fn = nullptr;
  int64_t blocks = 0;
  int64_t next = 0;  // the next block to claim (guarded by HelperPool::mu)
  int64_t done = 0;  // blocks finished (guarded by HelperPool::mu)
};

// The threads of one ParallelFor: those whose items ran out wait here for block tasks.
struct HelperPool {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<BlockTask*> tasks;  // tasks with blocks left to claim
  int busy = 0;                  // threads still running items

  // Claims and runs one block of the front task; false when there is none. Called with `lock`
  // held; releases it while the block runs.
  bool RunOne(std::unique_lock<std::mutex>& lock) {
    while (!tasks.empty() && tasks.front()->next >= tasks.front()->blocks) tasks.pop_front();
    if (tasks.empty()) return false;
    BlockTask* task = tasks.front();
    const int64_t b = task->next++;
    lock.unlock();
    (*task->fn)(b);
    lock.lock();
    if (++task->done == task->blocks) cv.notify_all();
    return true;
  }

  // A thread out of items: helps until no thread runs items any more.
  void Help() {
    std::unique_lock<std::mutex> lock(mu);
    --busy;
    if (busy == 0) cv.notify_all();
    for (;;) {
      if (RunOne(lock)) continue;
      if (busy == 0) break;
      cv.wait(lock);
    }
  }
};

thread_local HelperPool* t_pool = nullptr;

}  // namespace

int ResolveThreads(int requested) {
  if (requested >= 1) return requested;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

Status ParallelFor(int64_t n, int threads, const std::function<Status(int64_t)>& fn) {
  std::atomic<int64_t> next{0};
  std::mutex mu;
  int64_t failed = n;  // smallest failing i so far (guarded by mu)
  Status error = Status::Ok();
  const int count = n < 1 ? 1 : std::max(threads, 1);
  HelperPool pool;
  pool.busy = count;
  auto run_items = [&] {
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
  auto worker = [&] {
    HelperPool* const outer = t_pool;
    t_pool = count > 1 ? &pool : outer;
    run_items();
    if (count > 1) pool.Help();
    t_pool = outer;
  };
  std::vector<std::thread> extra;
  extra.reserve(static_cast<size_t>(count - 1));
  for (int t = 1; t < count; ++t) extra.emplace_back(worker);
  worker();
  for (auto& t : extra) t.join();
  return error;
}

void ParallelBlocks(int64_t blocks, const std::function<void(int64_t)>& fn) {
  HelperPool* const pool = t_pool;
  // Posted even when no thread is idle yet: one that runs out of items mid-way joins in.
  if (pool == nullptr || blocks <= 1) {
    for (int64_t b = 0; b < blocks; ++b) fn(b);
    return;
  }
  BlockTask task;
  task.fn = &fn;
  task.blocks = blocks;
  std::unique_lock<std::mutex> lock(pool->mu);
  pool->tasks.push_back(&task);
  pool->cv.notify_all();
  // Runs blocks of this task (or of others queued before it) until none is left to claim.
  while (task.next < task.blocks && pool->RunOne(lock)) {
  }
  // No new claims of `task` can start now (RunOne drops exhausted tasks before claiming); wait for
  // the blocks helpers are still running.
  pool->cv.wait(lock, [&] { return task.done == task.blocks; });
  pool->tasks.erase(std::remove(pool->tasks.begin(), pool->tasks.end(), &task), pool->tasks.end());
}

}  // namespace kfc
