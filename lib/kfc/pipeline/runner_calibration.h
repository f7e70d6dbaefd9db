// SPDX-License-Identifier: Apache-2.0
// One-command calibration and end-to-end verification (--calibration-data), through the runner
// (runner/runner.h, docs/runner.md):
//  1. the probe (pipeline/calibration.h) is written to a private temporary folder, and the
//     runner runs it on the calibration inputs, recording every exposed layer input and every
//     model output;
//  2. the model is compressed with those activations, exactly as with --calibration DIR;
//  3. before anything is written, the compressed model is saved to the temporary folder and run
//     on the same inputs; each model output is compared with the original's (report
//     output_errors), and --fail-if-output-error-above gates on the worst one;
//  4. the temporary folder goes, whatever happened.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/pipeline/auto_select.h"
#include "kfc/pipeline/compress.h"
#include "kfc_report.pb.h"

namespace kfc::pipeline {

// One --calibration-data value: [INPUT=]FILE.npy, split at the first '='. `name` is "" when
// left out (allowed for a model with one input).
struct CalibrationInput {
  std::string name;
  std::string file;
  static CalibrationInput Parse(const std::string& text);
};

struct RunnerOptions {
  std::vector<CalibrationInput> inputs;  // --calibration-data, one per model input
  // The runner's argv (--runner, KFC_RUNNER, or `node .../kfc-runner.js`). Empty: no runner was
  // found, which is an error naming `missing_runner_hint`.
  std::vector<std::string> command;
  std::string missing_runner_hint;
  // Appended to an error starting the default runner (e.g. how to install Node.js).
  std::string start_hint;
  int64_t batch_size = 256;                  // --calibration-batch: rows per run of the model
  double fail_if_output_error_above = -1.0;  // --fail-if-output-error-above; -1: off
  // --runner-timeout: seconds the runner may take to greet or to answer one request; 0: no limit.
  double timeout_seconds = 600;
  // --allocation auto / --calibration-regularization auto (the defaults with --ratio): choose
  // them by held-out output error (pipeline/auto_select.h).
  AutoSearch search;
};

// Checks the runner options' values: at least one input, batch_size >= 1, the gate in [0, inf).
Status ValidateRunnerOptions(const RunnerOptions& runner);

// CompressFile (compress.h) with the calibration recorded by the runner from `runner.inputs`
// (options.calibration_dir must be empty) and the outputs verified before the model is written.
// Errors, each one line, nothing written: an input name the model does not have, a model input
// without data, the runner missing or failing (a model it cannot run, a file of the wrong dtype
// or shape: its message), plus CompressFile's. A failed output gate is no error: the report says
// so and, as for the other gates, no model is written unless write_on_gate_failure.
StatusOr<report::Report> CompressFileWithRunner(const std::string& input, const std::string& output,
                                                const Options& options, const RunnerOptions& runner,
                                                bool dry_run);

}  // namespace kfc::pipeline
