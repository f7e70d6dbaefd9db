// The report phase: the report protobuf built once, at the end, from the layers' outcomes and the
// run's (nothing before it writes or reads the report). Internal to pipeline/.
#pragma once

#include <vector>

#include "kfc/pipeline/layer_state.h"
#include "kfc/pipeline/phases.h"
#include "kfc_report.pb.h"

namespace kfc::pipeline {

// What the report is built from.
struct RunOutcome {
  const Options* options = nullptr;
  int32_t opset = 0;
  const std::vector<LayerState>* layers = nullptr;
  DecideOutcome decided;
  RewriteOutcome rewritten;
  int64_t layers_compressed = 0;
};

// One layer's report line.
report::LayerReport LayerReportOf(const Options& o, const LayerState& s);

// The whole report: options, layers, totals, the --ratio outcome and the gates. Logs the skipped
// layers (debug) and a missed --ratio target (warn).
report::Report BuildReport(const RunOutcome& run);

}  // namespace kfc::pipeline
