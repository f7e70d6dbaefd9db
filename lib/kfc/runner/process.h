// SPDX-License-Identifier: Apache-2.0
// A child process the tool talks to in lines: its stdin and stdout are pipes, its stderr goes
// to a file (read back for error messages, so a chatty child can never block on a full pipe).
// The child leads its own process group, registered for signal cleanup (io/temp_names.h): when
// the tool is interrupted, the child and everything it started are killed. POSIX only
// (posix_spawnp).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "kfc/core/status.h"

namespace kfc::runner {

class LineProcess {
 public:
  // Starts argv[0] (searched on PATH when it has no '/') with argv, in our environment with
  // `env` ("NAME=value" entries) replacing or adding variables. `stderr_path` receives the
  // child's stderr (created or truncated). Errors: an empty argv, a program that cannot be
  // started (not found, not executable), pipe or file failures. While a LineProcess exists,
  // SIGPIPE is ignored, so a child that dies turns writes into errors instead of killing us.
  static StatusOr<LineProcess> Start(const std::vector<std::string>& argv,
                                     const std::string& stderr_path,
                                     const std::vector<std::string>& env = {});

  LineProcess(LineProcess&& other) noexcept;
  LineProcess& operator=(LineProcess&&) = delete;
  LineProcess(const LineProcess&) = delete;
  // Closes stdin, waits up to 5 s for the child to exit, then kills its process group.
  ~LineProcess();

  // Writes `line` and a newline to the child's stdin. Error when the child has gone, or when it
  // takes no input for `timeout_seconds` (0: waits forever; timed_out() is then true).
  Status WriteLine(const std::string& line, double timeout_seconds = 0);
  // Reads the next line from the child's stdout (without the newline). Blocks until one comes,
  // or `timeout_seconds` pass (0: forever): then an error, and timed_out() is true.
  // NotFound at end of stream (the child closed stdout or exited): then ExitDescription() and
  // the stderr file say why.
  StatusOr<std::string> ReadLine(double timeout_seconds = 0);
  // True after a WriteLine or ReadLine that ran out of time.
  bool timed_out() const { return timed_out_; }
  // Kills the child's process group (SIGKILL) and reaps the child.
  void Kill();
  // After ReadLine's end of stream: waits for the child (up to 5 s) and describes how it ended,
  // e.g. "exited with code 1" or "was killed by signal 9".
  std::string ExitDescription();
  // The last non-empty line the child wrote to stderr so far ("" when none).
  std::string LastStderrLine() const;
  // Everything the child wrote to stderr so far.
  std::string Stderr() const;

 private:
  LineProcess() = default;
  void CloseStdin();
  // Waits up to `seconds` for the child to exit (forever when negative) without reaping it, kills
  // what is left of its process group (all of it when the child has not exited), then reaps it.
  // True when the child exited by itself.
  bool Reap(double seconds);

  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
  std::string stderr_path_;
  std::string buffer_;  // read from stdout, not yet returned as lines
  bool exited_ = false;
  int wait_status_ = 0;
  bool timed_out_ = false;
  int cleanup_slot_ = -1;  // io::RegisterChildGroup's slot
};

}  // namespace kfc::runner
