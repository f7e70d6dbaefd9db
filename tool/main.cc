// SPDX-License-Identifier: Apache-2.0
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
#include "kfc/io/file.h"
#include "kfc/io/file_identity.h"
#include "kfc/io/model_io.h"
#include "kfc/io/temp_names.h"
#include "kfc/pipeline/calibration.h"
#include "kfc/pipeline/compress.h"
#include "kfc/pipeline/plan.h"
#include "kfc/report/format.h"
#include "kfc/report/render.h"
#include "tool/huge_pages.h"
#include "tool/options.h"
#include "tool/run.h"
#include "tool/startup.h"

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

int Fail(const kfc::Status& status) {
  std::fprintf(stderr, "kfc-compress: error: %s\n",
               EscapeControls(kfc::tool::OneLine(status.message())).c_str());
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

// Writes `text` to stdout and flushes it; false when it did not all get there (a full disk, a
// closed pipe), in which case no output is committed.
bool PrintAll(const std::string& text) {
  return std::fwrite(text.data(), 1, text.size(), stdout) == text.size() &&
         std::fflush(stdout) == 0;
}

int Run(int argc, char** argv) {
  kfc::tool::ParseOutcome parsed = kfc::tool::ParseCommandLine(argc, argv);
  if (!parsed.error.empty()) {
    std::fprintf(stderr, "kfc-compress: error: %s\nRun 'kfc-compress --help' for usage.\n",
                 EscapeControls(parsed.error).c_str());
  }
  if (parsed.exit_now) return parsed.exit_code;
  const kfc::tool::CliOptions& o = parsed.options;
  // The schema registry (~8 ms of CPU, needed by the input check) builds while the run checks its
  // files and loads the model.
  const kfc::tool::SchemaPreload schemas;
  SetUpLogging(o.verbosity);
  kfc::io::InstallTempCleanupHandlers();

  // Every file this run reads, and every file it writes: no write may be a read or another write
  // (by device and inode, links resolved), and only regular files are replaced. Checked before any
  // work, and again once the input's external data files are known.
  kfc::io::RunFiles files;
  kfc::tool::AddRunReads(o, &files);
  // stdout redirected to a file is that file: a --report there would replace it under our feet.
  files.AddRead("this run's stdout", "/dev/stdout");
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
  kfc::pipeline::Options pipeline_options = o.pipeline;
  // A progress line only for people: on a terminal, at the default verbosity (-v logs each layer
  // instead, -q wants silence).
  if (o.verbosity == 0 && isatty(STDERR_FILENO)) pipeline_options.progress = ShowProgress;
  auto run = kfc::tool::RunFile(o, pipeline_options, &files, &outputs, /*need_json=*/o.json);
  if (!run.ok()) return Fail(run.status());
  kfc::report::Report* report = &run->report;
  std::string& json = run->json;
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
  if (report->totals().layers_compressed() == 0) {
    kfc::Logger().warn("{}", EscapeControls(kfc::report::CompressedSummary(*report)));
  }
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
  kfc::tool::IdleLibraryThreads();
  kfc::tool::UseHugePagesIfAsked();
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    // Library code returns Status; this is the last line of defence against a crash.
    std::fprintf(stderr, "kfc-compress: error: internal: %s\n", e.what());
    return kExitFailure;
  }
}
