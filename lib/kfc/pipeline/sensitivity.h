// SPDX-License-Identifier: Apache-2.0
// --allocation sensitivity: how much each --ratio layer's output error moves the model's outputs,
// measured through the runner (runner/runner.h) on the calibration inputs.
//
// For each layer l the --ratio run decides (a dry run lists them):
//  1. the model with layer l alone compressed, at --ratio of its own parameters, fitted to its
//     recorded inputs as the real run fits it: its relative output error e_l (the report's
//     data_relative_error; relative_error without calibration);
//  2. the runner runs that model on the calibration inputs; E_l^2 = the sum over model outputs of
//     the squared relative error against the original model's recorded outputs;
//  3. c_l = E_l^2 / e_l^2, the slope d(model output error^2) / d(layer output error^2) at the
//     trial point (0 when layer l cannot be compressed alone, or its error is 0).
// The allocation then minimizes sum_l c_l * e_l^2: the predicted squared output error, each
// layer's errors assumed to add independently.
// Cost: one dry run of the whole --ratio compression, then per layer one single-layer compression
// and one runner pass over the calibration inputs (of the model after the frontier when the cut
// is on: runner_cut.h).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/pipeline/compress.h"
#include "kfc/pipeline/pass_runner.h"

namespace kfc::pipeline {

struct SensitivityRun {
  PassRunner* passes = nullptr;                    // runs the trials (the frontier cut, if on)
  std::vector<std::string> outputs;                // the model outputs to compare
  std::vector<std::vector<std::string>> original;  // per output, the original's files (batch order)
  std::string work_dir;  // a private folder for the trial models and their recordings
};

// Layer node name -> c_l for every layer `options` (with --ratio and, usually, calibration_dir)
// decides by --ratio. Errors: the trial compressions' and the runner's, naming the layer.
StatusOr<std::map<std::string, double>> MeasureSensitivity(const std::string& input,
                                                           const Options& options,
                                                           const SensitivityRun& run);

// Options for a trial compression (sensitivity, auto_select.h): `options` without what belongs
// to the real run (gates, hooks, charts, compensation), allocation size-weighted.
Options TrialOptions(const Options& options);

// A POSIX extended regex matching exactly `text`.
std::string ExactRegex(const std::string& text);

}  // namespace kfc::pipeline
