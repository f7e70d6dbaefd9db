// kfc-compress: parse options, run the pipeline, render the report, map to an exit code.
#include <google/protobuf/message.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>

#include "kfc/core/logging.h"
#include "kfc/io/atomic_file.h"
#include "kfc/io/file_identity.h"
#include "kfc/io/file.h"
#include "kfc/io/model_io.h"
#include "kfc/io/temp_names.h"
#include "kfc/pipeline/calibration.h"
#include "kfc/pipeline/compress.h"
#include "kfc/pipeline/plan.h"
#include "kfc/report/format.h"
#include "kfc/report/render.h"
#include "tool/options.h"
#include "tool/runner_command.h"

namespace {

using kfc::tool::kExitFailure;
using kfc::tool::kExitOk;

// Names come from the model: an escape sequence or a newline in one must not reach a terminal or
// split a line. Control bytes (and the C1 controls U+0080..U+009F) are shown as \xNN.
std::string EscapeControls(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const bool c1 = c == 0xc2 && i + 1 < text.size() &&
                    static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(text[i + 1]) <= 0x9f;
    if (c < 0x20 || c == 0x7f || c1) {
      const unsigned v = c1 ? static_cast<unsigned char>(text[++i]) : c;
      char buf[8];
      std::snprintf(buf, sizeof(buf), c1 ? "\\u%04x" : "\\x%02x", v);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Every string field of `m`, recursively, through EscapeControls (for the text report; JSON
// escapes control characters itself).
void EscapeStrings(google::protobuf::Message* m) {
  const auto* reflection = m->GetReflection();
  const auto* descriptor = m->GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const auto* f = descriptor->field(i);
    using FD = google::protobuf::FieldDescriptor;
    if (f->cpp_type() == FD::CPPTYPE_STRING) {
      if (f->is_repeated()) {
        for (int j = 0; j < reflection->FieldSize(*m, f); ++j) {
          reflection->SetRepeatedString(m, f, j,
                                        EscapeControls(reflection->GetRepeatedString(*m, f, j)));
        }
      } else if (reflection->HasField(*m, f) || !f->has_presence()) {
        reflection->SetString(m, f, EscapeControls(reflection->GetString(*m, f)));
      }
    } else if (f->cpp_type() == FD::CPPTYPE_MESSAGE) {
      if (f->is_repeated()) {
        for (int j = 0; j < reflection->FieldSize(*m, f); ++j) {
          EscapeStrings(reflection->MutableRepeatedMessage(m, f, j));
        }
      } else if (reflection->HasField(*m, f)) {
        EscapeStrings(reflection->MutableMessage(m, f));
      }
    }
  }
}

// stderr, with control characters in each message escaped.
class EscapingStderrSink : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string payload =
        EscapeControls(std::string_view(msg.payload.data(), msg.payload.size()));
    spdlog::details::log_msg escaped = msg;
    escaped.payload = payload;
    spdlog::memory_buf_t formatted;
    formatter_->format(escaped, formatted);
    std::fwrite(formatted.data(), 1, formatted.size(), stderr);
    std::fflush(stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

void SetUpLogging(int verbosity) {
  auto& log = kfc::Logger();
  log.sinks().push_back(std::make_shared<EscapingStderrSink>());
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
  std::fprintf(stderr, "kfc-compress: error: %s\n",
               EscapeControls(OneLine(status.message())).c_str());
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

// The calibration folder's files are inputs too: its sidecar and every .npy file.
void AddCalibrationReads(const std::string& dir, kfc::io::RunFiles* files) {
  if (dir.empty()) return;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == kfc::pipeline::kSidecarName ||
        (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0)) {
      files->AddRead("a calibration file", entry.path().string());
    }
  }
}

// Writes `text` to stdout and flushes it; false when it did not all get there (a full disk, a
// closed pipe), in which case no output is committed.
bool PrintAll(const std::string& text) {
  return std::fwrite(text.data(), 1, text.size(), stdout) == text.size() &&
         std::fflush(stdout) == 0;
}

int Run(int argc, char** argv) {
  kfc::tool::ParseOutcome parsed = kfc::tool::ParseCommandLine(argc, argv);
  if (parsed.exit_now) return parsed.exit_code;
  const kfc::tool::CliOptions& o = parsed.options;
  SetUpLogging(o.verbosity);
  kfc::io::InstallTempCleanupHandlers();

  // Every file this run reads, and every file it writes: no write may be a read or another write
  // (by device and inode, links resolved), and only regular files are replaced. Checked before any
  // work, and again once the input's external data files are known.
  kfc::io::RunFiles files;
  files.AddRead("the input file", o.input);
  files.AddRead("the --plan file", o.plan_path);
  // stdout redirected to a file is that file: a --report there would replace it under our feet.
  files.AddRead("this run's stdout", "/dev/stdout");
  AddCalibrationReads(o.pipeline.calibration_dir, &files);
  // Every output is staged here and appears only after the report reached stdout.
  kfc::io::CommitGroup outputs;

  if (!o.calibration_probe.empty()) {
    files.AddWrite("--calibration-probe", o.calibration_probe);
    files.AddWrite("calibration sidecar", kfc::pipeline::SidecarPathFor(o.calibration_probe));
    if (auto s = files.Check(); !s.ok()) return Fail(s);
    auto summary =
        kfc::pipeline::WriteCalibrationProbe(o.input, o.calibration_probe, &outputs, &files);
    if (!summary.ok()) return Fail(summary.status());
    if (!PrintAll(*summary)) return Fail(kfc::IoError("stdout: writing the summary failed"));
    if (auto s = outputs.Commit(); !s.ok()) return Fail(s);
    return kExitOk;
  }
  if (!o.output.empty() && !o.dry_run) {
    files.AddWrite("output", o.output);
    files.AddWrite("external data file", kfc::io::DataFilePath(o.output, o.pipeline.save),
                   /*maybe=*/!o.pipeline.save.external_data);
  }
  files.AddWrite("--report", o.report_path);
  files.AddWrite("--plan-out", o.plan_out);
  if (auto s = files.Check(); !s.ok()) return Fail(s);

  kfc::pipeline::Options pipeline_options = o.pipeline;
  pipeline_options.save.commit = &outputs;
  pipeline_options.save.files = &files;
  // A progress line only for people: on a terminal, at the default verbosity (-v logs each layer
  // instead, -q wants silence).
  if (o.verbosity == 0 && isatty(STDERR_FILENO)) pipeline_options.progress = ShowProgress;
  kfc::StatusOr<kfc::report::Report> report = kfc::Internal("not run");
  if (o.runner.inputs.empty()) {
    report = kfc::pipeline::CompressFile(o.input, o.output, pipeline_options, o.dry_run);
  } else {  // --calibration-data: calibrate and verify through the runner
    kfc::pipeline::RunnerOptions runner = o.runner;
    if (auto s = kfc::tool::ResolveRunner(o.runner_command, &runner); !s.ok()) return Fail(s);
    report = kfc::pipeline::CompressFileWithRunner(o.input, o.output, pipeline_options, runner,
                                                   o.dry_run);
  }
  if (!report.ok()) return Fail(report.status());

  // All or nothing: every file is staged; an error before the commit below discards them all, and
  // existing files at those paths stay as they were.
  if (!o.plan_out.empty()) {
    auto plan = kfc::pipeline::RenderPlan(*report, kfc::pipeline::IsJsonPath(o.plan_out));
    if (!plan.ok()) return Fail(plan.status());
    if (auto s = kfc::io::WriteFileAtomic(o.plan_out, *plan, &outputs); !s.ok()) return Fail(s);
  }
  // JSON only when it is asked for: at 100k layers it is ~1 GB of transient memory (issue 18).
  const auto report_format = o.report_path.empty() ? kfc::report::ReportFormat::kJson
                                                   : kfc::report::FormatForPath(o.report_path);
  std::string json;
  if (o.json || (!o.report_path.empty() && report_format == kfc::report::ReportFormat::kJson)) {
    auto rendered = kfc::report::RenderJson(*report);
    if (!rendered.ok()) return Fail(rendered.status());
    json = std::move(*rendered);
  }
  if (!o.report_path.empty()) {
    std::string file = json;
    if (report_format != kfc::report::ReportFormat::kJson) {
      auto rendered = kfc::report::RenderAs(*report, report_format);
      if (!rendered.ok()) return Fail(rendered.status());
      file = std::move(*rendered);
    }
    if (auto s = kfc::io::WriteFileAtomic(o.report_path, file, &outputs); !s.ok()) return Fail(s);
  }
  std::string text;
  if (o.json) {
    text = std::move(json);
  } else {
    kfc::report::Report printable = std::move(*report);
    EscapeStrings(&printable);
    text = kfc::report::RenderText(printable);
    *report = std::move(printable);  // the gates below read it; escaping changed only strings
  }
  if (!PrintAll(text)) return Fail(kfc::IoError("stdout: writing the report failed"));
  if (auto s = outputs.Commit(); !s.ok()) return Fail(s);
  if (!report->gates_passed()) {
    for (const auto& g : report->gates()) {
      if (!g.passed())
        std::fprintf(stderr, "kfc-compress: gate failed: %s: %s\n", g.gate().c_str(),
                     EscapeControls(g.detail()).c_str());
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
