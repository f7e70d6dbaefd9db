// SPDX-License-Identifier: Apache-2.0
// The model runner: a separate process that runs ONNX models in an ONNX Runtime (by default
// `node tool/kfc-runner.js` on onnxruntime-node, which this binary cannot link) and records the
// tensors it is asked for as .npy files. The protocol (proto/kfc_runner.proto, docs/runner.md):
// one JSON object per line; a greeting, then one response per request, in order.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/runner/process.h"
#include "kfc_runner.pb.h"

namespace kfc::runner {

inline constexpr int kProtocolVersion = 1;
inline constexpr int64_t kDefaultBatchSize = 256;
inline constexpr char kRunnerScript[] = "kfc-runner.js";
// --runner-timeout's default: seconds the runner may take to greet, or to answer one request.
inline constexpr double kDefaultTimeoutSeconds = 600;

// Splits a --runner / KFC_RUNNER command line into words at spaces and tabs, without a shell;
// single or double quotes keep spaces inside a word ("python3 '/my dir/runner.py'").
// InvalidArgument on an unterminated quote or an empty command.
StatusOr<std::vector<std::string>> SplitCommand(const std::string& command);

// The default runner: `node SCRIPT` for the first of `scripts` that exists (kfc-runner.js next
// to the executable, then the source tree's). nullopt when none does.
std::optional<std::vector<std::string>> DefaultCommand(const std::vector<std::string>& scripts);

// The command as one line for messages.
std::string CommandText(const std::vector<std::string>& argv);

class Runner {
 public:
  // Starts the runner (`argv`; its stderr goes to work_dir/runner.stderr, and its TMPDIR is
  // work_dir/runner-tmp, so the runtime's scratch files go with work_dir) and reads its
  // greeting. Errors, each one line: the program cannot be started; it exits or answers
  // something else before greeting (with its last stderr line, e.g. "onnxruntime-node is not
  // installed"); it speaks another protocol version; it does not greet within `timeout_seconds`.
  // `timeout_seconds` (0: no limit) bounds the greeting and each request: a runner that takes
  // longer is killed, with its process group, and the call fails naming what it was doing.
  static StatusOr<std::unique_ptr<Runner>> Start(const std::vector<std::string>& argv,
                                                 const std::string& work_dir,
                                                 double timeout_seconds = kDefaultTimeoutSeconds);

  // Sends `request` (protocol and id are filled in) and returns the runner's response, checked:
  // ok, one recorded tensor per Request.record with at least one file each. Errors: the runner's
  // own error ("runner: input 'x': ..."), a runner that dies or answers out of protocol, or that
  // does not answer within the timeout (it is then killed).
  StatusOr<Response> Run(Request request);

  // The greeting's runtime, e.g. "onnxruntime-node 1.30.0".
  const std::string& runtime() const { return runtime_; }
  const std::vector<std::string>& argv() const { return argv_; }
  // Everything the runner wrote to stderr so far (for debug logs).
  std::string Stderr() const { return process_.Stderr(); }

 private:
  Runner(std::vector<std::string> argv, LineProcess process, double timeout_seconds)
      : argv_(std::move(argv)), process_(std::move(process)), timeout_seconds_(timeout_seconds) {}
  // The next response line, parsed. `when` says what was awaited ("before WHEN"), `doing` what
  // the runner was doing meanwhile ("while DOING"), for errors.
  StatusOr<Response> ReadResponse(const std::string& when, const std::string& doing);
  // The error for a runner that ran out of time `doing` something; kills it.
  Status TimedOut(const std::string& doing);

  std::vector<std::string> argv_;
  LineProcess process_;
  double timeout_seconds_ = kDefaultTimeoutSeconds;
  std::string runtime_;
  int next_id_ = 1;
};

}  // namespace kfc::runner
