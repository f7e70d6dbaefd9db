// SPDX-License-Identifier: Apache-2.0
// kfc-compress: parse options, run the pipeline, render the report, map to an exit code.
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>

#include "kfc/core/logging.h"
#include "kfc/pipeline/compress.h"
#include "kfc/report/render.h"
#include "tool/options.h"
#include "tool/run.h"

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
  std::fprintf(stderr, "kfc-compress: error: %s\n", kfc::tool::OneLine(status.message()).c_str());
  return kExitFailure;
}

// The progress line on a terminal: rewritten in place with \r, finished with a newline at the end
// of each phase.
void ShowProgress(const kfc::pipeline::Progress& p) {
  constexpr double kMb = 1024.0 * 1024.0;
  char line[160];
  std::string eta;
  if (p.bytes_done > 0 && p.layers_done < p.layers_total) {
    eta = ", ETA " +
          std::to_string(static_cast<int64_t>(
              p.elapsed_s * (p.bytes_total - p.bytes_done) / p.bytes_done + 0.5)) +
          " s";
  }
  std::snprintf(line, sizeof(line), "\rkfc-compress: %s %lld/%lld layers, %.1f/%.1f MB, %.1f s%s",
                p.phase.c_str(), static_cast<long long>(p.layers_done),
                static_cast<long long>(p.layers_total), p.bytes_done / kMb, p.bytes_total / kMb,
                p.elapsed_s, eta.c_str());
  std::fprintf(stderr, "%-90s%s", line, p.layers_done == p.layers_total ? "\n" : "");
  std::fflush(stderr);
}

int Run(int argc, char** argv) {
  kfc::tool::ParseOutcome parsed = kfc::tool::ParseCommandLine(argc, argv);
  if (!parsed.error.empty()) {
    std::fprintf(stderr, "kfc-compress: error: %s\nRun 'kfc-compress --help' for usage.\n",
                 parsed.error.c_str());
  }
  if (parsed.exit_now) return parsed.exit_code;
  const kfc::tool::CliOptions& o = parsed.options;
  SetUpLogging(o.verbosity);

  if (!o.calibration_probe.empty()) {
    auto summary = kfc::pipeline::WriteCalibrationProbe(o.input, o.calibration_probe);
    if (!summary.ok()) return Fail(summary.status());
    std::fputs(summary->c_str(), stdout);
    return kExitOk;
  }
  kfc::pipeline::Options pipeline_options = o.pipeline;
  // A progress line only for people: on a terminal, at the default verbosity (-v logs each layer
  // instead, -q wants silence).
  if (o.verbosity == 0 && isatty(STDERR_FILENO)) pipeline_options.progress = ShowProgress;
  auto run = kfc::tool::RunFile(o, pipeline_options);
  if (!run.ok()) return Fail(run.status());
  const kfc::report::Report* report = &run->report;

  const std::string text = o.json ? run->json : kfc::report::RenderText(*report);
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) {
    kfc::tool::RemoveOutputs(o, *report);
    return Fail(kfc::IoError("stdout: writing the report failed"));
  }
  if (report->totals().layers_compressed() == 0) {
    kfc::Logger().warn("{}", kfc::report::CompressedSummary(*report));
  }
  if (!report->gates_passed()) {
    for (const auto& g : report->gates()) {
      if (!g.passed())
        std::fprintf(stderr, "kfc-compress: gate failed: %s: %s\n", g.gate().c_str(),
                     g.detail().c_str());
    }
    return kfc::tool::kExitGateFailed;
  }
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
