// SPDX-License-Identifier: Apache-2.0
// --allocation auto and --calibration-regularization auto (the defaults with --calibration-data
// and --ratio): the allocation objective and the ridge lambda chosen by the model's measured
// output error on held-out calibration rows (docs/allocation.md#auto).
//
//  1. SplitRows: the last fifth of the calibration rows (at least one) is held out; the rest fit.
//     Fewer than kAutoMinRows rows: no search, the defaults (size-weighted, lambda 10).
//  2. The runner records the probe on each part (two requests: every row runs once).
//  3. AutoCandidates: {size-weighted, uniform} x kAutoLambdas (only the part the user left to
//     auto). Each candidate is compressed from the fit rows' activations and run on the held-out
//     rows (EvaluateCandidate); its score is the outputs' relative error against the original's.
//  4. PickCandidate: the lowest score; ties go to the earlier candidate (more regularization,
//     then size-weighted first).
//  5. The real run uses the winner's values on all rows.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/pipeline/compress.h"
#include "kfc/pipeline/pass_runner.h"
#include "kfc/runner/runner.h"
#include "kfc_report.pb.h"

namespace kfc::pipeline {

inline constexpr int64_t kAutoMinRows = 10;      // fewer calibration rows: no search
inline constexpr int64_t kAutoHeldOutShare = 5;  // one row in this many is held out
// The lambda grid, in the order ties are broken (most regularized first).
inline constexpr double kAutoLambdas[] = {10.0, 0.1};

// Rows [0, fit) fit the candidates, rows [fit, rows) judge them. held == 0: too few rows.
struct RowSplit {
  int64_t fit = 0;
  int64_t held = 0;
};
RowSplit SplitRows(int64_t rows);

// What the user left to auto (tool/options.cc); both false: no search.
struct AutoSearch {
  bool allocation = false;      // --allocation auto (or not given)
  bool regularization = false;  // --calibration-regularization auto (or not given)
  bool any() const { return allocation || regularization; }
};

struct AutoCandidate {
  AllocationObjective allocation = AllocationObjective::kSizeWeighted;
  double regularization = 10.0;
  // sqrt(sum over model outputs of relative error^2) on the held-out rows; NaN: not measured.
  double held_out_error = std::numeric_limits<double>::quiet_NaN();
  double seconds = 0;
  std::string note;  // why it was not measured
};

// The candidates for `o` (its ratio set): the searched parts from the grid, the others as given
// (allocation o.allocation, lambda o.calibration_regularization or 10), in tie-break order.
std::vector<AutoCandidate> AutoCandidates(const Options& o, const AutoSearch& search);

// The index of the lowest finite held_out_error (ties: the lower index); -1 when none is finite.
int PickCandidate(const std::vector<AutoCandidate>& candidates);

// `o` with the candidate's allocation and lambda.
Options WithCandidate(const Options& o, const AutoCandidate& c);

// The held-out rows and the original model's outputs on them: what a candidate is judged by.
struct HeldOut {
  PassRunner* passes = nullptr;                    // runs versions of the model on those rows
  std::vector<std::string> outputs;                // the model outputs to compare
  std::vector<std::vector<std::string>> original;  // per output, the original's files
};

// Runs the compressed model at `model_path` on the held-out rows (through held.passes: the
// frontier cut when it applies; recordings in `work_dir`) and
// returns sqrt(sum over outputs of relative error^2) against the original's. The one place a
// candidate is judged. Errors: the runner's and the comparison's.
StatusOr<double> EvaluateCandidate(const std::string& model_path, const HeldOut& held,
                                   const std::string& work_dir);

// Compresses `input` with each candidate (fit on options.calibration_dir's activations), judges
// it with EvaluateCandidate and fills held_out_error and seconds; a candidate whose compression
// fails keeps NaN and a note. Returns the report section (chosen: PickCandidate).
StatusOr<report::AutoSelection> SearchCandidates(const std::string& input, const Options& options,
                                                 std::vector<AutoCandidate>* candidates,
                                                 const HeldOut& held, const std::string& work_dir);

// The report's name of a candidate's allocation and lambda, e.g. "uniform, lambda 0.01".
std::string CandidateName(const AutoCandidate& c);

}  // namespace kfc::pipeline
