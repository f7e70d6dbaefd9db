// SPDX-License-Identifier: Apache-2.0
// The work behind both entry points of kfc-compress, below argv parsing and above the pipeline:
// the CLI's path-based run (also Python's compress_file) and the in-memory run behind Python's
// compress. Neither prints anything: callers render the report and map errors to exit codes.
#pragma once

#include <string>

#include "kfc/core/status.h"
#include "kfc/io/atomic_file.h"
#include "kfc/io/file_identity.h"
#include "kfc/pipeline/compress.h"
#include "kfc_report.pb.h"
#include "tool/options.h"

namespace kfc::tool {

// `message` on one line: libraries' messages (the ONNX checker's) can span several.
std::string OneLine(const std::string& message);

struct FileRun {
  report::Report report;
  std::string json;  // report::RenderJson(report), as --json prints and --report writes it
};

// The files a run reads (the input, --plan, the calibration folder's sidecar and .npy files), for
// the identity checks of io::RunFiles; callers add their own (the CLI: its stdout).
void AddRunReads(const CliOptions& o, io::RunFiles* files);

// The CLI's run after parsing: checks that no output (the model, its data file, --report,
// --plan-out) is one of `files`' reads or another output and that each is a regular file or
// absent, compresses o.input to o.output (pipeline::CompressFile, or CompressFileWithRunner with
// --calibration-data), then renders --plan-out and --report (JSON, Markdown or HTML by extension:
// report/format.h). Every output is staged in `outputs`: nothing appears until the caller commits
// it (the CLI does after the report reached stdout). `json` is rendered when `need_json` or the
// report file is JSON. A failed gate is not an error here: the report says so (gates_passed false).
StatusOr<FileRun> RunFile(const CliOptions& o, const pipeline::Options& pipeline_options,
                          io::RunFiles* files, io::CommitGroup* outputs, bool need_json);

struct BytesRun {
  std::string model;  // the compressed model's bytes; empty when a gate failed (see below)
  report::Report report;
  std::string json;
};

// In memory: parses `model_bytes` (io::ParseModel), checks it as CompressFile does, compresses it
// (the provenance's input_sha256 is that of `model_bytes`) and serializes the result
// (io::SerializeModel: the bytes CompressFile writes for a model that needs no external data).
// Weights stored in external files are skipped (`external_data`): there is no folder to read them
// from. When a gate failed, `model` is empty unless options.write_on_gate_failure. Errors: invalid
// options, unparsable or invalid model, a model over protobuf's 2 GiB limit, any pipeline error.
StatusOr<BytesRun> RunBytes(const std::string& model_bytes, const pipeline::Options& options);

}  // namespace kfc::tool
