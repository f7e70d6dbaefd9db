// SPDX-License-Identifier: Apache-2.0
#include "kfc/runner/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "kfc/io/temp_names.h"

extern char** environ;

namespace kfc::runner {
namespace {

// SIGPIPE is ignored while any LineProcess lives; the previous disposition comes back after.
std::atomic<int> g_live{0};
struct sigaction g_old_pipe;

void IgnoreSigpipe() {
  if (g_live.fetch_add(1) == 0) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, &g_old_pipe);
  }
}

void RestoreSigpipe() {
  if (g_live.fetch_sub(1) == 1) sigaction(SIGPIPE, &g_old_pipe, nullptr);
}

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

enum class ChildState { kExited, kRunning, kGone };

// Waits up to `seconds` (forever when negative) for `pid` to exit, without reaping it: an exited
// child stays a zombie, so its pid (and process group id) cannot be reused until it is reaped.
ChildState WaitExited(pid_t pid, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (true) {
    siginfo_t info{};
    const int r = waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
    if (r == 0 && info.si_pid == pid) return ChildState::kExited;
    if (r < 0 && errno != EINTR) return ChildState::kGone;  // not our child any more
    if (seconds >= 0 && std::chrono::steady_clock::now() >= end) return ChildState::kRunning;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// Milliseconds left until `end` for poll(): -1 (forever) without a deadline; at most an hour at a
// time (the caller polls again).
int PollMillis(bool has_deadline, std::chrono::steady_clock::time_point end) {
  if (!has_deadline) return -1;
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now())
          .count();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<long long>(left, 3600 * 1000));
}

std::string SecondsText(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", seconds);
  return buf;
}

std::chrono::steady_clock::time_point DeadlineAfter(double seconds) {
  const double capped = std::min(seconds, 1e9);  // ~30 years: no overflow of the clock
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(
             std::chrono::duration<double>(capped));
}

}  // namespace

StatusOr<LineProcess> LineProcess::Start(const std::vector<std::string>& argv,
                                         const std::string& stderr_path,
                                         const std::vector<std::string>& env) {
  if (argv.empty() || argv[0].empty()) return InvalidArgument("runner: empty command");
  int in_pipe[2], out_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0)
    return IoError("runner: pipe: " + std::string(strerror(errno)));
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    close(in_pipe[0]);
    close(in_pipe[1]);
    return IoError("runner: pipe: " + std::string(strerror(errno)));
  }
  const int err_fd = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (err_fd < 0) {
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) close(fd);
    return IoError("runner: cannot create '" + stderr_path + "': " + strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_fd, STDERR_FILENO);
  // The child starts with default signal handling, whatever we ignore, with our signal mask from
  // before the spawn, and leads a process group of its own: the group is what a timeout or an
  // interrupt kills.
  sigset_t all, old_mask;
  sigfillset(&all);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // Our environment, with `env` replacing variables of the same name.
  std::vector<std::string> vars = env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string var = *e;
    const std::string name = var.substr(0, var.find('=') + 1);
    bool replaced = false;
    for (const auto& v : env) replaced = replaced || v.compare(0, name.size(), name) == 0;
    if (!replaced) vars.push_back(var);
  }
  std::vector<char*> envp;
  for (auto& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  // Spawned and registered for signal cleanup with signals blocked, so that an interrupt never
  // falls between the two.
  pthread_sigmask(SIG_BLOCK, &all, &old_mask);
  posix_spawnattr_setsigmask(&attr, &old_mask);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  const int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), envp.data());
  const int slot = rc == 0 ? io::RegisterChildGroup(pid) : -1;
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_fd);
  if (rc != 0) {
    close(in_pipe[1]);
    close(out_pipe[0]);
    return NotFound("runner: cannot start '" + argv[0] + "': " +
                    (rc == ENOENT ? std::string("not found") +
                                        (argv[0].find('/') == std::string::npos ? " on PATH" : "")
                                  : std::string(strerror(rc))));
  }
  IgnoreSigpipe();
  // Our end of the child's stdin never blocks: WriteLine waits in poll(), with its timeout.
  fcntl(in_pipe[1], F_SETFL, fcntl(in_pipe[1], F_GETFL) | O_NONBLOCK);
  LineProcess p;
  p.pid_ = pid;
  p.cleanup_slot_ = slot;
  p.to_child_ = in_pipe[1];
  p.from_child_ = out_pipe[0];
  p.stderr_path_ = stderr_path;
  return p;
}

LineProcess::LineProcess(LineProcess&& other) noexcept
    : pid_(other.pid_),
      to_child_(other.to_child_),
      from_child_(other.from_child_),
      stderr_path_(std::move(other.stderr_path_)),
      buffer_(std::move(other.buffer_)),
      exited_(other.exited_),
      wait_status_(other.wait_status_),
      timed_out_(other.timed_out_),
      cleanup_slot_(other.cleanup_slot_) {
  other.cleanup_slot_ = -1;
  other.pid_ = -1;
  other.to_child_ = -1;
  other.from_child_ = -1;
}

LineProcess::~LineProcess() {
  if (pid_ < 0) return;
  CloseStdin();
  CloseFd(&from_child_);
  if (!exited_) Reap(5.0);
  io::UnregisterChildGroup(cleanup_slot_);
  RestoreSigpipe();
}

void LineProcess::CloseStdin() { CloseFd(&to_child_); }

bool LineProcess::Reap(double seconds) {
  if (exited_) return true;
  const ChildState state = WaitExited(pid_, seconds);
  // An exited leader is still a zombie here, so the group id is still its own: what is left of
  // the group (children it started) goes too.
  // Unregistered before the reaping, so that the signal handler never kills a group id that
  // has been freed (and perhaps reused).
  if (state != ChildState::kGone) kill(-pid_, SIGKILL);
  io::UnregisterChildGroup(cleanup_slot_);
  cleanup_slot_ = -1;
  if (state != ChildState::kGone) {
    while (waitpid(pid_, &wait_status_, 0) < 0 && errno == EINTR) {
    }
  }
  exited_ = true;
  return state != ChildState::kRunning;
}

void LineProcess::Kill() {
  CloseStdin();
  Reap(0);
}

Status LineProcess::WriteLine(const std::string& line, double timeout_seconds) {
  const std::string data = line + "\n";
  const bool has_deadline = timeout_seconds > 0;
  const auto end = DeadlineAfter(has_deadline ? timeout_seconds : 0);
  size_t done = 0;
  while (done < data.size()) {
    if (to_child_ < 0) return IoError("runner: its stdin is closed");
    const ssize_t n = write(to_child_, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd p {};
      p.fd = to_child_;
      p.events = POLLOUT;
      const int millis = PollMillis(has_deadline, end);
      if (has_deadline && millis == 0) {
        timed_out_ = true;
        return IoError("runner: it took no input for " + SecondsText(timeout_seconds) + " s");
      }
      poll(&p, 1, millis);
      continue;
    }
    if (n <= 0) {
      CloseStdin();
      return IoError(std::string("runner: writing the request failed: ") +
                     (errno == EPIPE ? "the runner has exited" : strerror(errno)));
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

StatusOr<std::string> LineProcess::ReadLine(double timeout_seconds) {
  const bool has_deadline = timeout_seconds > 0;
  const auto end = DeadlineAfter(has_deadline ? timeout_seconds : 0);
  while (true) {
    const size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    if (from_child_ < 0) return NotFound("runner: end of its output");
    struct pollfd p {};
    p.fd = from_child_;
    p.events = POLLIN;
    const int millis = PollMillis(has_deadline, end);
    const int ready = millis == 0 ? 0 : poll(&p, 1, millis);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      if (has_deadline && PollMillis(true, end) == 0) {
        timed_out_ = true;
        return FailedPrecondition("runner: no answer within " + SecondsText(timeout_seconds) +
                                  " s");
      }
      continue;  // an hour-long slice of a longer wait
    }
    char chunk[65536];
    const ssize_t n = read(from_child_, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      CloseFd(&from_child_);
      return NotFound("runner: end of its output");
    }
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

std::string LineProcess::ExitDescription() {
  if (!exited_) {
    CloseStdin();
    if (!Reap(5.0)) return "stopped answering (killed after 5 s)";
  }
  if (WIFEXITED(wait_status_))
    return "exited with code " + std::to_string(WEXITSTATUS(wait_status_));
  if (WIFSIGNALED(wait_status_))
    return "was killed by signal " + std::to_string(WTERMSIG(wait_status_));
  return "ended";
}

std::string LineProcess::Stderr() const {
  std::ifstream in(stderr_path_, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string LineProcess::LastStderrLine() const {
  const std::string all = Stderr();
  std::string last;
  std::istringstream lines(all);
  for (std::string line; std::getline(lines, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    // Node.js ends an uncaught exception's report with its version: not the cause.
    if (!line.empty() && line.rfind("Node.js v", 0) != 0) last = line;
  }
  return last;
}

}  // namespace kfc::runner
