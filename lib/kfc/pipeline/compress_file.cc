// SPDX-License-Identifier: Apache-2.0
// The path-based twins of CompressModel: CompressFile (load, prepare external data, compress,
// write atomically) and WriteCalibrationProbe.
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <string>

#include "kfc/check/validate.h"
#include "kfc/core/logging.h"
#include "kfc/io/file.h"
#include "kfc/io/file_digest.h"
#include "kfc/io/model_io.h"
#include "kfc/pipeline/calibration.h"
#include "kfc/pipeline/compress.h"
#include "kfc/pipeline/phases.h"
#include "kfc/report/render.h"

namespace kfc::pipeline {

StatusOr<std::string> WriteCalibrationProbe(const std::string& input, const std::string& probe,
                                            io::CommitGroup* group, io::RunFiles* files) {
  KFC_RETURN_IF_ERROR(io::CheckOutputPath(input, probe));
  const std::string sidecar = SidecarPathFor(probe);
  KFC_RETURN_IF_ERROR(io::CheckOutputPath(input, sidecar));
  KFC_ASSIGN_OR_RETURN(onnx::ModelProto model, io::LoadModel(input));
  // Prepared as CompressFile prepares it, so that the sidecar's fingerprint matches there.
  io::ExternalDataReader reader(input);
  KFC_ASSIGN_OR_RETURN(const io::ExternalDataStats external,
                       io::PrepareExternalData(&model, &reader, io::kKeptExternalMinBytes));
  if (files) KFC_RETURN_IF_ERROR(files->AddInputDataAndCheck(external.files));
  KFC_RETURN_IF_ERROR(CheckModel(model, "input model '" + input + "'"));
  KFC_ASSIGN_OR_RETURN(Probe p, BuildProbe(model, input));
  KFC_RETURN_IF_ERROR(CheckModel(p.model, "probe model"));
  KFC_ASSIGN_OR_RETURN(std::string bytes, io::SerializeModel(p.model));
  google::protobuf::util::JsonPrintOptions json_options;
  json_options.add_whitespace = true;
  json_options.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(p.sidecar, &json, json_options).ok()) {
    return Internal("calibration sidecar: JSON rendering failed");
  }
  io::CommitGroup both;  // the probe and its sidecar appear together, or neither
  KFC_RETURN_IF_ERROR(io::WriteFileAtomic(sidecar, json, group ? group : &both));
  KFC_RETURN_IF_ERROR(io::WriteFileAtomic(probe, bytes, group ? group : &both));
  KFC_RETURN_IF_ERROR(both.Commit());
  int layers = 0;
  for (const auto& t : p.sidecar.tensors()) layers += t.layers_size();
  return "probe '" + probe + "': " + std::to_string(p.sidecar.tensors_size()) +
         " exposed activations for " + std::to_string(layers) + " layers; sidecar '" + sidecar +
         "'\n";
}

StatusOr<report::Report> CompressFile(const std::string& input, const std::string& output,
                                      const Options& options, bool dry_run) {
  KFC_RETURN_IF_ERROR(ValidateOptions(options));
  if (!dry_run) KFC_RETURN_IF_ERROR(io::CheckOutputPath(input, output));
  auto start = Clock::now();
  KFC_ASSIGN_OR_RETURN(onnx::ModelProto model, io::LoadModel(input));
  // Large external tensors stay in their files: each weight is read when a layer needs it, and
  // the ones kept dense are copied from file to file when the output is written.
  io::ExternalDataReader reader(input);
  KFC_ASSIGN_OR_RETURN(const io::ExternalDataStats external,
                       io::PrepareExternalData(&model, &reader, io::kKeptExternalMinBytes));
  if (options.save.files)
    KFC_RETURN_IF_ERROR(options.save.files->AddInputDataAndCheck(external.files));
  if (!dry_run) {
    KFC_RETURN_IF_ERROR(io::CheckNotInputData(output, external.files, "output"));
    KFC_RETURN_IF_ERROR(io::CheckNotInputData(io::DataFilePath(output, options.save),
                                              external.files, "external data file"));
  }
  report::Checks input_checks;
  KFC_RETURN_IF_ERROR(
      check::CheckModel(model, "input model '" + input + "'", "input", {}, &input_checks));
  if (external.tensors > 0) {
    Logger().info(
        "loaded '{}' and checked {} external tensors ({} bytes in {} files; {} left there, read "
        "layer by layer) in {:.3f} s",
        input, external.tensors, external.bytes, external.files.size(), external.kept,
        SecondsSince(start));
  } else {
    Logger().info("loaded '{}' in {:.3f} s", input, SecondsSince(start));
  }

  Options with_reader = options;
  with_reader.external_reader = &reader;
  with_reader.input_checks = &input_checks;
  if (with_reader.input_sha256.empty()) {
    KFC_ASSIGN_OR_RETURN(with_reader.input_sha256, io::FileSha256(input));
  }
  // Factors go to a nameless file next to the output as they are produced (none for a dry run).
  io::SpillFile spill;
  if (!dry_run) {
    KFC_RETURN_IF_ERROR(spill.Open(output));
    reader.set_spill(&spill);
    with_reader.spill = &spill;
  }
  KFC_ASSIGN_OR_RETURN(Result result, CompressModel(std::move(model), with_reader));
  result.report.set_input(report::ToValidUtf8(input));
  result.report.set_dry_run(dry_run);
  if (options.before_write) {
    KFC_RETURN_IF_ERROR(options.before_write(&result.model, &reader, &result.report));
  }
  if (dry_run) return std::move(result.report);
  if (!result.report.gates_passed() && !options.write_on_gate_failure) {
    Logger().warn("a quality gate failed: '{}' not written (--write-on-gate-failure writes it)",
                  output);
    return std::move(result.report);
  }

  start = Clock::now();
  // before_write (the runner's output check) may have read the spill already: count this write's.
  const int64_t spill_read_before = reader.spill_bytes_read();
  result.report.set_output(report::ToValidUtf8(output));
  KFC_ASSIGN_OR_RETURN(const io::SaveResult saved,
                       io::SaveModel(&result.model, output, options.save, &reader));
  result.report.set_output_written(true);
  result.report.set_external_data_file(report::ToValidUtf8(saved.data_path));
  result.report.set_external_data_automatic(saved.automatic);
  if (saved.automatic) {
    Logger().warn("'{}' would exceed protobuf's 2 GiB limit inline: weights written to '{}'",
                  output, saved.data_path);
  }
  const int64_t spill_read = reader.spill_bytes_read() - spill_read_before;
  const std::string from_spill =
      spill_read > 0 ? "; " + std::to_string(spill_read) + " bytes of factors from the spill" : "";
  if (saved.data_path.empty()) {
    Logger().info("wrote '{}' ({} bytes{}) in {:.3f} s", output, saved.model_bytes, from_spill,
                  SecondsSince(start));
  } else {
    Logger().info("wrote '{}' ({} bytes) and '{}' ({} bytes, {} tensors{}) in {:.3f} s", output,
                  saved.model_bytes, saved.data_path, saved.data_bytes, saved.data_tensors,
                  from_spill, SecondsSince(start));
  }
  if (reader.bytes_read() > reader.mapped_bytes()) {
    Logger().info("external data: {} bytes read in {:.3f} s (summed over threads)",
                  reader.bytes_read() - reader.mapped_bytes(), reader.read_seconds());
  }
  if (reader.mapped_bytes() > 0) {
    Logger().info("external data: {} bytes read from a mapping of the file (where they are used)",
                  reader.mapped_bytes());
  }
  return std::move(result.report);
}

}  // namespace kfc::pipeline
