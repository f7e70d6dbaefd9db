// kfc-compress: parse options, run the pipeline, render the report, map to an exit code.
#include <spdlog/sinks/stdout_sinks.h>

#include <cstdio>
#include <exception>

#include "kfc/core/logging.h"
#include "kfc/io/model_io.h"
#include "kfc/pipeline/compress.h"
#include "kfc/report/render.h"
#include "tool/options.h"

namespace {

using kfc::tool::kExitFailure;
using kfc::tool::kExitOk;

void SetUpLogging(int verbosity) {
  auto& log = kfc::Logger();
  log.sinks().push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  log.set_pattern("kfc-compress: %l: %v");
  switch (verbosity) {
    case -1:
      log.set_level(spdlog::level::err);
      break;
    case 0:
      log.set_level(spdlog::level::info);
      break;
    case 1:
      log.set_level(spdlog::level::debug);
      break;
    default:
      log.set_level(spdlog::level::trace);
      break;
  }
}

int Fail(const kfc::Status& status) {
  std::fprintf(stderr, "kfc-compress: error: %s\n", status.message().c_str());
  return kExitFailure;
}

int Run(int argc, char** argv) {
  kfc::tool::ParseOutcome parsed = kfc::tool::ParseCommandLine(argc, argv);
  if (parsed.exit_now) return parsed.exit_code;
  const kfc::tool::CliOptions& o = parsed.options;
  SetUpLogging(o.verbosity);

  if (!o.report_path.empty()) {
    if (auto s = kfc::io::CheckOutputPath(o.input, o.report_path); !s.ok()) return Fail(s);
    if (o.report_path == o.output)
      return Fail(kfc::InvalidArgument("--report and --output are the same file"));
  }
  auto report = kfc::pipeline::CompressFile(o.input, o.output, o.pipeline, o.dry_run);
  if (!report.ok()) return Fail(report.status());

  auto json = kfc::report::RenderJson(*report);
  if (!json.ok()) return Fail(json.status());
  if (!o.report_path.empty()) {
    if (auto s = kfc::io::WriteFileAtomic(o.report_path, *json); !s.ok()) {
      if (!o.dry_run) std::remove(o.output.c_str());  // all or nothing
      return Fail(s);
    }
  }
  const std::string text = o.json ? *json : kfc::report::RenderText(*report);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    // Library code returns Status; this is the last line of defence against a crash.
    std::fprintf(stderr, "kfc-compress: error: internal: %s\n", e.what());
    return kExitFailure;
  }
}
