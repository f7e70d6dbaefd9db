#include "tool/runner_command.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "kfc/runner/runner.h"

namespace kfc::tool {
namespace {

// The folder of this executable ("" when /proc/self/exe cannot be read).
std::string ExecutableDir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "" : exe.parent_path().string();
}

}  // namespace

Status ResolveRunner(const std::string& flag, pipeline::RunnerOptions* runner) {
  std::string command = flag, source = "--runner";
  if (command.empty()) {
    const char* env = std::getenv("KFC_RUNNER");
    if (env != nullptr && env[0] != '\0') {
      command = env;
      source = "KFC_RUNNER";
    }
  }
  if (!command.empty()) {
    auto argv = runner::SplitCommand(command);
    if (!argv.ok()) return InvalidArgument(source + ": " + argv.status().message());
    runner->command = *argv;
    return Status::Ok();
  }
  std::vector<std::string> scripts;
  const std::string dir = ExecutableDir();
  if (!dir.empty()) scripts.push_back(dir + "/" + runner::kRunnerScript);
#ifdef KFC_RUNNER_SOURCE
  scripts.push_back(KFC_RUNNER_SOURCE);
#endif
  auto found = runner::DefaultCommand(scripts);
  if (!found) {
    std::string places;
    for (const auto& s : scripts) places += (places.empty() ? "'" : "', '") + s;
    runner->missing_runner_hint = "the default runner " + std::string(runner::kRunnerScript) +
                                  " is not at " + places +
                                  "': install it next to kfc-compress, or give --runner CMD";
    return Status::Ok();
  }
  runner->command = *found;
  runner->start_hint =
      " (the default runner " + found->back() +
      " needs Node.js 18 or newer on PATH and its npm dependencies: see docs/runner.md; or give "
      "--runner CMD)";
  return Status::Ok();
}

}  // namespace kfc::tool
