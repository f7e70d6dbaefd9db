// Which runner --calibration-data starts: --runner CMD, else $KFC_RUNNER, else the default
// `node kfc-runner.js` (next to this executable, then in the source tree it was built from).
#pragma once

#include <string>

#include "kfc/core/status.h"
#include "kfc/pipeline/runner_calibration.h"

namespace kfc::tool {

// Fills runner->command (or missing_runner_hint) and start_hint. `flag` is --runner's value
// ("" when not given). InvalidArgument naming the source for a command that cannot be split.
Status ResolveRunner(const std::string& flag, pipeline::RunnerOptions* runner);

}  // namespace kfc::tool
