// SPDX-License-Identifier: Apache-2.0
#include "kfc/runner/runner.h"

#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace kfc::runner {
namespace {

constexpr size_t kMaxQuotedLine = 300;

// A runner's line, shortened for an error message.
std::string Quote(const std::string& line) {
  std::string s = line.size() > kMaxQuotedLine ? line.substr(0, kMaxQuotedLine) + "..." : line;
  return "'" + s + "'";
}

bool IsFile(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

StatusOr<std::vector<std::string>> SplitCommand(const std::string& command) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (char ch : command) {
    if (quote != 0) {
      if (ch == quote) {
        quote = 0;
      } else {
        word += ch;
      }
    } else if (ch == '\'' || ch == '"') {
      quote = ch;
      in_word = true;
    } else if (ch == ' ' || ch == '\t' || ch == '\n') {
      if (in_word) words.push_back(word);
      word.clear();
      in_word = false;
    } else {
      word += ch;
      in_word = true;
    }
  }
  if (quote != 0) return InvalidArgument("runner command '" + command + "': unterminated quote");
  if (in_word) words.push_back(word);
  if (words.empty()) return InvalidArgument("runner command is empty");
  return words;
}

std::optional<std::vector<std::string>> DefaultCommand(const std::vector<std::string>& scripts) {
  for (const auto& s : scripts) {
    if (!s.empty() && IsFile(s)) return std::vector<std::string>{"node", s};
  }
  return std::nullopt;
}

std::string CommandText(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += " ";
    out += a.find(' ') == std::string::npos ? a : "'" + a + "'";
  }
  return out;
}

StatusOr<std::unique_ptr<Runner>> Runner::Start(const std::vector<std::string>& argv,
                                                const std::string& work_dir,
                                                double timeout_seconds) {
  if (!(timeout_seconds >= 0)) return InvalidArgument("runner: the timeout must be >= 0");
  // The runtime's own scratch files (ONNX Runtime leaves some in $TMPDIR) go with work_dir.
  const std::string scratch = work_dir + "/runner-tmp";
  if (mkdir(scratch.c_str(), 0700) != 0 && errno != EEXIST) {
    return IoError("runner: cannot create '" + scratch + "': " + strerror(errno));
  }
  KFC_ASSIGN_OR_RETURN(LineProcess process, LineProcess::Start(argv, work_dir + "/runner.stderr",
                                                               {"TMPDIR=" + scratch}));
  std::unique_ptr<Runner> runner(new Runner(argv, std::move(process), timeout_seconds));
  KFC_ASSIGN_OR_RETURN(Response hello, runner->ReadResponse("its greeting", "starting up"));
  if (hello.protocol() != kProtocolVersion) {
    return FailedPrecondition("runner '" + CommandText(argv) + "' speaks protocol " +
                              std::to_string(hello.protocol()) + "; kfc-compress speaks " +
                              std::to_string(kProtocolVersion));
  }
  if (!hello.ok()) {
    return FailedPrecondition("runner '" + CommandText(argv) +
                              "': " + (hello.error().empty() ? "not ready" : hello.error()));
  }
  runner->runtime_ = hello.runtime().empty() ? "unnamed runtime" : hello.runtime();
  return runner;
}

Status Runner::TimedOut(const std::string& doing) {
  process_.Kill();
  char seconds[32];
  std::snprintf(seconds, sizeof(seconds), "%g", timeout_seconds_);
  return FailedPrecondition("runner '" + CommandText(argv_) + "' did not answer within " + seconds +
                            " s while " + doing +
                            "; it was stopped (--runner-timeout SECONDS allows more, 0 no limit)");
}

StatusOr<Response> Runner::ReadResponse(const std::string& when, const std::string& doing) {
  // One deadline for the whole response, blank lines included.
  const auto start = std::chrono::steady_clock::now();
  auto left = [&]() -> double {
    if (timeout_seconds_ <= 0) return 0;
    const double spent =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return std::max(timeout_seconds_ - spent, 1e-3);
  };
  auto line = process_.ReadLine(left());
  while (line.ok() && line->find_first_not_of(" \t") == std::string::npos)
    line = process_.ReadLine(left());
  if (!line.ok() && process_.timed_out()) return TimedOut(doing);
  if (!line.ok()) {
    const std::string how = process_.ExitDescription();
    const std::string last = process_.LastStderrLine();
    return FailedPrecondition("runner '" + CommandText(argv_) + "' " + how + " before " + when +
                              (last.empty() ? "" : ": " + last));
  }
  Response response;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // later runners may say more
  if (!google::protobuf::util::JsonStringToMessage(*line, &response, options).ok()) {
    return FailedPrecondition("runner '" + CommandText(argv_) + "': expected " + when +
                              " as one JSON line on stdout, got " + Quote(*line));
  }
  return response;
}

StatusOr<Response> Runner::Run(Request request) {
  request.set_protocol(kProtocolVersion);
  request.set_id(next_id_++);
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  print.always_print_primitive_fields = true;
  std::string line;
  if (!google::protobuf::util::MessageToJsonString(request, &line, print).ok()) {
    return Internal("runner: the request cannot be rendered as JSON");
  }
  // What the runner is doing, for a timeout's message: the model, its inputs' files, the count of
  // tensors to record.
  std::string doing = "running '" + request.model() + "' on";
  for (int i = 0; i < request.inputs_size(); ++i) {
    doing += (i == 0 ? " '" : ", '") + request.inputs(i).file() + "'";
  }
  doing += " (recording " + std::to_string(request.record_size()) + " tensors)";
  if (Status s = process_.WriteLine(line, timeout_seconds_); !s.ok()) {
    if (process_.timed_out()) return TimedOut("taking the request for '" + request.model() + "'");
    // A runner that has died: say how, with its last words.
    const std::string last = process_.LastStderrLine();
    return FailedPrecondition("runner '" + CommandText(argv_) + "' " + process_.ExitDescription() +
                              (last.empty() ? "" : ": " + last));
  }
  KFC_ASSIGN_OR_RETURN(Response response,
                       ReadResponse("answering the request for '" + request.model() + "'", doing));
  if (response.id() != request.id()) {
    return FailedPrecondition("runner '" + CommandText(argv_) + "': answered request " +
                              std::to_string(response.id()) + ", expected " +
                              std::to_string(request.id()));
  }
  if (!response.ok()) {
    return FailedPrecondition(
        "runner: " + (response.error().empty() ? "failed without a message" : response.error()));
  }
  if (response.tensors_size() != request.record_size()) {
    return FailedPrecondition("runner: recorded " + std::to_string(response.tensors_size()) +
                              " tensors, " + std::to_string(request.record_size()) +
                              " were asked for");
  }
  for (int i = 0; i < response.tensors_size(); ++i) {
    const RecordedTensor& t = response.tensors(i);
    if (t.tensor() != request.record(i).tensor() || t.files().empty()) {
      return FailedPrecondition("runner: no files for tensor '" + request.record(i).tensor() + "'");
    }
    for (const auto& f : t.files()) {
      if (f.empty() || f.find('/') != std::string::npos || f == "..") {
        return FailedPrecondition("runner: file name '" + f + "' of tensor '" + t.tensor() +
                                  "' is not a plain file name");
      }
    }
  }
  return response;
}

}  // namespace kfc::runner
