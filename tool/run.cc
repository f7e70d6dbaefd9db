// SPDX-License-Identifier: Apache-2.0
#include "tool/run.h"

#include <cstdio>
#include <filesystem>
#include <utility>

#include "kfc/core/sha256.h"
#include "kfc/io/file.h"
#include "kfc/io/model_io.h"
#include "kfc/io/model_stream.h"
#include "kfc/pipeline/plan.h"
#include "kfc/report/format.h"
#include "kfc/report/render.h"
#include "tool/runner_command.h"

namespace kfc::tool {
namespace {

bool SameFile(const std::string& a, const std::string& b) {
  std::error_code ec1, ec2;
  const auto ca = std::filesystem::weakly_canonical(a, ec1);
  const auto cb = std::filesystem::weakly_canonical(b, ec2);
  return !ec1 && !ec2 && ca == cb;
}

}  // namespace

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

void RemoveOutputs(const CliOptions& o, const report::Report& report) {
  if (report.output_written()) std::remove(o.output.c_str());
  if (!report.external_data_file().empty()) std::remove(report.external_data_file().c_str());
}

StatusOr<FileRun> RunFile(const CliOptions& o, const pipeline::Options& pipeline_options) {
  // Side files (--report, --plan-out) must not clobber the input, the model or each other.
  const std::pair<const char*, const std::string*> side[] = {{"--report", &o.report_path},
                                                             {"--plan-out", &o.plan_out}};
  for (const auto& [flag, path] : side) {
    if (path->empty()) continue;
    KFC_RETURN_IF_ERROR(io::CheckOutputPath(o.input, *path));
    if (!o.output.empty() && SameFile(*path, o.output)) {
      return InvalidArgument(std::string(flag) + " '" + *path + "' and --output '" + o.output +
                             "' are the same file");
    }
    const std::string data = io::DataFilePath(o.output, o.pipeline.save);
    if (!o.output.empty() && SameFile(*path, data)) {
      return InvalidArgument(std::string(flag) + " '" + *path + "' and the external data file '" +
                             data + "' are the same file");
    }
  }
  if (!o.report_path.empty() && !o.plan_out.empty() && SameFile(o.report_path, o.plan_out)) {
    return InvalidArgument("--report and --plan-out are the same file '" + o.plan_out + "'");
  }
  FileRun run;
  if (o.runner.inputs.empty()) {
    KFC_ASSIGN_OR_RETURN(run.report,
                         pipeline::CompressFile(o.input, o.output, pipeline_options, o.dry_run));
  } else {  // --calibration-data: calibrate and verify through the runner (docs/runner.md)
    pipeline::RunnerOptions runner = o.runner;
    KFC_RETURN_IF_ERROR(ResolveRunner(o.runner_command, &runner));
    KFC_ASSIGN_OR_RETURN(run.report, pipeline::CompressFileWithRunner(
                                         o.input, o.output, pipeline_options, runner, o.dry_run));
  }

  // All or nothing: when the report cannot be delivered, the model written above goes too.
  auto undo = [&](const Status& s) {
    RemoveOutputs(o, run.report);
    return s;
  };
  if (!o.plan_out.empty()) {
    auto plan = pipeline::RenderPlan(run.report, pipeline::IsJsonPath(o.plan_out));
    if (!plan.ok()) return undo(plan.status());
    if (auto s = io::WriteFileAtomic(o.plan_out, *plan); !s.ok()) return undo(s);
  }
  auto json = report::RenderJson(run.report);
  if (!json.ok()) return undo(json.status());
  run.json = std::move(*json);
  if (!o.report_path.empty()) {
    const auto format = report::FormatForPath(o.report_path);
    auto rendered = format == report::ReportFormat::kJson ? StatusOr<std::string>(run.json)
                                                          : report::RenderAs(run.report, format);
    if (!rendered.ok()) return undo(rendered.status());
    if (auto s = io::WriteFileAtomic(o.report_path, *rendered); !s.ok()) return undo(s);
  }
  return run;
}

StatusOr<BytesRun> RunBytes(const std::string& model_bytes, const pipeline::Options& options) {
  KFC_RETURN_IF_ERROR(pipeline::ValidateOptions(options));
  KFC_ASSIGN_OR_RETURN(onnx::ModelProto model, io::ParseModel(model_bytes, "model bytes"));
  KFC_RETURN_IF_ERROR(pipeline::CheckModel(model, "input model"));
  // The provenance names the input by its digest, as CompressFile does from the file's bytes.
  pipeline::Options with_digest = options;
  if (with_digest.input_sha256.empty()) with_digest.input_sha256 = Sha256Hex(model_bytes);
  KFC_ASSIGN_OR_RETURN(pipeline::Result result,
                       pipeline::CompressModel(std::move(model), with_digest));
  BytesRun run;
  run.report = std::move(result.report);
  if (run.report.gates_passed() || options.write_on_gate_failure) {
    KFC_ASSIGN_OR_RETURN(run.model, io::SerializeModel(result.model));
    run.report.set_output_written(true);
  }
  KFC_ASSIGN_OR_RETURN(run.json, report::RenderJson(run.report));
  return run;
}

}  // namespace kfc::tool
