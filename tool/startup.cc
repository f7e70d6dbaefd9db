// SPDX-License-Identifier: Apache-2.0
// OpenBLAS's idle threads must not take CPU from the run.
//
// When libopenblas initializes (before main), it starts one server thread per extra core, and an
// idle server thread spins on sched_yield for OPENBLAS_THREAD_TIMEOUT (default 2^28 cycles) before
// it sleeps. kfc-compress pins BLAS to one thread per call (kron/blas_threads.h; every phase that
// computes runs under that pin), so the tool never gives that thread work, yet it spun while the
// run read and factorized on both cores: on a quiet 2-core machine a 4096 x 4096 -r 8 run used
// 512 ms of CPU instead of 244 ms and took 0.245 s instead of 0.179 s with the spin switched off
// by OPENBLAS_THREAD_TIMEOUT=4 (docs/performance.md, "The whole CLI run").
//
// Switching it off from inside the process is not possible: OpenBLAS reads the variable in its
// constructor, and libc's initializer resets the environment after an executable's .preinit_array
// ran (tried: the spin stayed); ending the threads (blas_thread_shutdown_) does not last, because
// openblas_set_num_threads starts them again, spinning; executing the tool again with the variable
// set worked but cost 19 ms of wall time per run. So the threads that exist when main starts
// (made by library constructors: OpenBLAS's; this program has started none yet) go to
// SCHED_IDLE: they run only on a core no other thread wants, so the spin costs the run nothing,
// and the work a multithreaded BLAS call would give them (none in the tool's phases) would still
// get done. Results do not depend on scheduling.
#include "tool/startup.h"

#include <dirent.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <system_error>

#include "kfc/check/schemas.h"

namespace kfc::tool {

void IdleLibraryThreads() {
  DIR* tasks = ::opendir("/proc/self/task");
  if (tasks == nullptr) return;  // no /proc: the threads keep their class
  const long self = ::syscall(SYS_gettid);
  while (const dirent* entry = ::readdir(tasks)) {
    char* end = nullptr;
    const long tid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || tid <= 0 || tid == self) continue;
    sched_param param{};
    param.sched_priority = 0;
    // Failure leaves the thread as it was: nothing to report.
    (void)::sched_setscheduler(static_cast<pid_t>(tid), SCHED_IDLE, &param);
  }
  ::closedir(tasks);
}

SchemaPreload::SchemaPreload() {
  try {
    thread_ = std::thread(check::LoadSchemas);
  } catch (const std::system_error&) {
    // No thread: the input check builds the registry itself, as it always did.
  }
}

SchemaPreload::~SchemaPreload() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace kfc::tool
