// SPDX-License-Identifier: Apache-2.0
// Command-line options of kfc-compress and their parsing (CLI11).
#pragma once

#include <string>

#include "kfc/pipeline/compress.h"
#include "kfc/pipeline/runner_calibration.h"

namespace kfc::tool {

// Exit codes: a contract with users' scripts (README, --help).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitGateFailed = 3;

struct CliOptions {
  std::string input;
  std::string output;
  std::string report_path;        // --report FILE.json
  std::string plan_out;           // --plan-out FILE
  std::string calibration_probe;  // --calibration-probe FILE: write the probe and exit
  std::string plan_path;          // --plan FILE (already loaded into pipeline.plan)
  bool json = false;
  bool dry_run = false;
  int verbosity = 0;  // -1 quiet, 0 default, 1 -v, 2 -vv
  pipeline::Options pipeline;
  // --calibration-data, --calibration-batch, --fail-if-output-error-above (runner.inputs empty:
  // no runner); --runner CMD as given.
  pipeline::RunnerOptions runner;
  std::string runner_command;
};

struct ParseOutcome {
  bool exit_now = false;  // --help / --version printed, or a usage error (below)
  int exit_code = kExitOk;
  std::string error;  // the usage error (exit code kExitUsage), for the caller to print
  CliOptions options;
};

// Parses argv; prints help/version to stdout. Usage errors are returned in `error`, not printed.
ParseOutcome ParseCommandLine(int argc, char** argv);

}  // namespace kfc::tool
