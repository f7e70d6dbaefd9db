// SPDX-License-Identifier: Apache-2.0
// --allocation auto / --calibration-regularization auto inside a --calibration-data run
// (pipeline/runner_calibration.h): what the run may search, the split of the calibration inputs
// into fit and held-out rows, and the search itself over the recorded parts
// (pipeline/auto_select.h judges the candidates).
#pragma once

#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/io/temp_dir.h"
#include "kfc/pipeline/auto_select.h"
#include "kfc/pipeline/compress.h"
#include "kfc/pipeline/pass_runner.h"
#include "kfc/pipeline/phases.h"
#include "kfc/pipeline/recorded_parts.h"
#include "kfc/runner/runner.h"
#include "kfc_report.pb.h"

namespace kfc::pipeline {

// What auto may choose in this run: only with --ratio, and not the lambda of --allocation
// sensitivity (its measurement is of the whole set).
AutoSearch SearchFor(const Options& options, AutoSearch asked);

// Each input's rows split into fit and held-out files in tmp/fit_in and tmp/held_in; returns the
// split (held 0: too few rows, nothing written). Errors: inputs with different row counts, an
// unreadable file, a folder that cannot be made.
StatusOr<RowSplit> SplitInputs(const std::vector<runner::InputFile>& inputs, const io::TempDir& tmp,
                               std::vector<runner::InputFile>* fit,
                               std::vector<runner::InputFile>* held);

// The candidates compressed from the fit part (parts[0]) and judged on the held-out part
// (parts[1]) by the model outputs (request.record(first_output .. first_output + outputs));
// `with_data` takes the winner's values. Without a split (too few rows) or when no candidate
// could be measured, `with_data` keeps the defaults and the selection's note says why.
StatusOr<report::AutoSelection> SelectSettings(const std::string& input, const Options& options,
                                               const AutoSearch& search, const RowSplit& split,
                                               const std::vector<Part>& parts,
                                               const runner::Request& request, int first_output,
                                               size_t outputs, PassRunner* held_passes,
                                               const io::TempDir& tmp, Clock::time_point start,
                                               Options* with_data);

}  // namespace kfc::pipeline
