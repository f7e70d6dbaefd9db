// kfc-compress: parse options, run the pipeline, render the report, map to an exit code.
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include "kfc/core/logging.h"
#include "kfc/io/model_io.h"
#include "kfc/pipeline/compress.h"
#include "kfc/pipeline/plan.h"
#include "kfc/report/format.h"
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

// Errors are one line: messages from libraries (the ONNX checker) can span several.
std::string OneLine(const std::string& message) {
  std::string out;
  for (char ch : message) {
    if (ch == '\n' || ch == '\r') {
      while (!out.empty() && out.back() == ' ') out.pop_back();
      if (!out.empty() && out.compare(out.size() - 2, 2, "; ") != 0) out += "; ";
    } else {
      out += ch;
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ';')) out.pop_back();
  return out;
}

int Fail(const kfc::Status& status) {
  std::fprintf(stderr, "kfc-compress: error: %s\n", OneLine(status.message()).c_str());
  return kExitFailure;
}

bool SameFile(const std::string& a, const std::string& b) {
  std::error_code ec1, ec2;
  const auto ca = std::filesystem::weakly_canonical(a, ec1);
  const auto cb = std::filesystem::weakly_canonical(b, ec2);
  return !ec1 && !ec2 && ca == cb;
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
  if (parsed.exit_now) return parsed.exit_code;
  const kfc::tool::CliOptions& o = parsed.options;
  SetUpLogging(o.verbosity);

  if (!o.calibration_probe.empty()) {
    auto summary = kfc::pipeline::WriteCalibrationProbe(o.input, o.calibration_probe);
    if (!summary.ok()) return Fail(summary.status());
    std::fputs(summary->c_str(), stdout);
    return kExitOk;
  }
  // Side files (--report, --plan-out) must not clobber the input, the model or each other.
  const std::pair<const char*, const std::string*> side[] = {{"--report", &o.report_path},
                                                             {"--plan-out", &o.plan_out}};
  for (const auto& [flag, path] : side) {
    if (path->empty()) continue;
    if (auto s = kfc::io::CheckOutputPath(o.input, *path); !s.ok()) return Fail(s);
    if (!o.output.empty() && SameFile(*path, o.output)) {
      return Fail(kfc::InvalidArgument(std::string(flag) + " '" + *path + "' and --output '" +
                                       o.output + "' are the same file"));
    }
    const std::string data = kfc::io::DataFilePath(o.output, o.pipeline.save);
    if (!o.output.empty() && SameFile(*path, data)) {
      return Fail(kfc::InvalidArgument(std::string(flag) + " '" + *path +
                                       "' and the external data file '" + data +
                                       "' are the same file"));
    }
  }
  if (!o.report_path.empty() && !o.plan_out.empty() && SameFile(o.report_path, o.plan_out)) {
    return Fail(
        kfc::InvalidArgument("--report and --plan-out are the same file '" + o.plan_out + "'"));
  }
  kfc::pipeline::Options pipeline_options = o.pipeline;
  // A progress line only for people: on a terminal, at the default verbosity (-v logs each layer
  // instead, -q wants silence).
  if (o.verbosity == 0 && isatty(STDERR_FILENO)) pipeline_options.progress = ShowProgress;
  auto report = kfc::pipeline::CompressFile(o.input, o.output, pipeline_options, o.dry_run);
  if (!report.ok()) return Fail(report.status());

  // All or nothing: when the report cannot be delivered, the model written above goes too.
  auto undo = [&](const kfc::Status& s) {
    if (report->output_written()) std::remove(o.output.c_str());
    if (!report->external_data_file().empty()) std::remove(report->external_data_file().c_str());
    return Fail(s);
  };
  if (!o.plan_out.empty()) {
    auto plan = kfc::pipeline::RenderPlan(*report, kfc::pipeline::IsJsonPath(o.plan_out));
    if (!plan.ok()) return undo(plan.status());
    if (auto s = kfc::io::WriteFileAtomic(o.plan_out, *plan); !s.ok()) return undo(s);
  }
  auto json = kfc::report::RenderJson(*report);
  if (!json.ok()) return undo(json.status());
  if (!o.report_path.empty()) {
    const auto format = kfc::report::FormatForPath(o.report_path);
    auto rendered =
        format == kfc::report::ReportFormat::kJson ? json : kfc::report::RenderAs(*report, format);
    if (!rendered.ok()) return undo(rendered.status());
    if (auto s = kfc::io::WriteFileAtomic(o.report_path, *rendered); !s.ok()) return undo(s);
  }
  const std::string text = o.json ? *json : kfc::report::RenderText(*report);
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) {
    return undo(kfc::IoError("stdout: writing the report failed"));
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
