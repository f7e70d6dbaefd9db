// SPDX-License-Identifier: Apache-2.0
#include "tool/run.h"

#include <cstdio>
#include <filesystem>
#include <utility>

#include "kfc/core/sha256.h"
#include "kfc/io/atomic_file.h"
#include "kfc/io/file.h"
#include "kfc/io/file_identity.h"
#include "kfc/io/model_io.h"
#include "kfc/io/model_stream.h"
#include "kfc/kron/weighted.h"
#include "kfc/pipeline/calibration.h"
#include "kfc/pipeline/plan.h"
#include "kfc/pipeline/ratio.h"
#include "kfc/report/format.h"
#include "kfc/report/render.h"
#include "tool/runner_command.h"

namespace kfc::tool {
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

namespace {

// The calibration folder's files are inputs too: its sidecar and every .npy file.
void AddCalibrationReads(const std::string& dir, io::RunFiles* files) {
  if (dir.empty()) return;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == pipeline::kSidecarName ||
        (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0)) {
      files->AddRead("a calibration file", entry.path().string());
    }
  }
}

}  // namespace

void AddRunReads(const CliOptions& o, io::RunFiles* files) {
  files->AddRead("the input file", o.input);
  files->AddRead("the --plan file", o.plan_path);
  AddCalibrationReads(o.pipeline.calibration_dir, files);
}

StatusOr<FileRun> RunFile(const CliOptions& o, const pipeline::Options& pipeline_options,
                          io::RunFiles* files, io::CommitGroup* outputs, bool need_json) {
  // No write may be a read or another write (by device and inode, links resolved), and only
  // regular files are replaced: checked before any work, and again (by CompressFile) once the
  // input's external data files are known.
  if (!o.output.empty() && !o.dry_run) {
    files->AddWrite("output", o.output);
    files->AddWrite("external data file", io::DataFilePath(o.output, o.pipeline.save),
                    /*maybe=*/!o.pipeline.save.external_data);
  }
  files->AddWrite("--report", o.report_path);
  files->AddWrite("--plan-out", o.plan_out);
  KFC_RETURN_IF_ERROR(files->Check());

  pipeline::Options options = pipeline_options;
  options.save.commit = outputs;
  options.save.files = files;
  FileRun run;
  if (o.runner.inputs.empty()) {
    KFC_ASSIGN_OR_RETURN(run.report, pipeline::CompressFile(o.input, o.output, options, o.dry_run));
    if (!options.calibration_dir.empty() && options.ratio > 0 && o.runner.search.any()) {
      // auto needs the runner to measure outputs: --calibration DIR keeps the defaults.
      report::AutoSelection* a = run.report.mutable_auto_selection();
      a->set_searched_allocation(o.runner.search.allocation);
      a->set_searched_regularization(o.runner.search.regularization);
      a->set_chosen(-1);
      a->set_allocation(pipeline::AllocationName(options.allocation));
      a->set_regularization(
          options.calibration_regularization.value_or(kron::kCalibrationRegularization));
      a->set_note(
          "no search: with --calibration DIR there is no runner to measure the outputs; the "
          "defaults are used");
    }
  } else {  // --calibration-data: calibrate and verify through the runner (docs/runner.md)
    pipeline::RunnerOptions runner = o.runner;
    KFC_RETURN_IF_ERROR(ResolveRunner(o.runner_command, &runner));
    KFC_ASSIGN_OR_RETURN(run.report, pipeline::CompressFileWithRunner(o.input, o.output, options,
                                                                      runner, o.dry_run));
  }

  // All or nothing: every file is staged in `outputs`; an error before the caller commits them
  // discards them all, and existing files at those paths stay as they were.
  if (!o.plan_out.empty()) {
    KFC_ASSIGN_OR_RETURN(std::string plan,
                         pipeline::RenderPlan(run.report, pipeline::IsJsonPath(o.plan_out)));
    KFC_RETURN_IF_ERROR(io::WriteFileAtomic(o.plan_out, plan, outputs));
  }
  // JSON only when it is asked for: at 100k layers it is ~1 GB of transient memory (issue 18).
  const auto format =
      o.report_path.empty() ? report::ReportFormat::kJson : report::FormatForPath(o.report_path);
  if (need_json || (!o.report_path.empty() && format == report::ReportFormat::kJson)) {
    KFC_ASSIGN_OR_RETURN(run.json, report::RenderJson(run.report));
  }
  if (!o.report_path.empty()) {
    std::string file = run.json;
    if (format != report::ReportFormat::kJson) {
      KFC_ASSIGN_OR_RETURN(file, report::RenderAs(run.report, format));
    }
    KFC_RETURN_IF_ERROR(io::WriteFileAtomic(o.report_path, file, outputs));
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
