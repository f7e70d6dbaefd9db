// SPDX-License-Identifier: Apache-2.0
// The calibration rows as the runner recorded them, request by request
// (pipeline/runner_calibration.h): the whole set in one part, or (auto, pipeline/auto_run.h) a fit
// part and a held-out part. Each part's recordings stay in its own folder; these functions run a
// part, list a tensor's files in row order over the parts, and link the parts' files into the one
// folder the calibration loader reads.
#pragma once

#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/runner/runner.h"

namespace kfc::pipeline {

// The calibration rows one runner request recorded: the whole set, or (auto) its fit or held-out
// part. Every part's recordings are in `dir`.
struct Part {
  std::vector<runner::InputFile> inputs;
  std::string dir;
  runner::Response response;
};

// The runner's files of recorded tensor `i` of `response`, as paths in `dir`.
std::vector<std::string> FilesOf(const runner::Response& response, int i, const std::string& dir);

// Recorded tensor `i`'s files over all parts, in row order.
std::vector<std::string> FilesOf(const std::vector<Part>& parts, int i);

// `request` run on `inputs`, recorded into `dir`. Errors: the runner's.
StatusOr<Part> RecordPart(runner::Runner* runner, runner::Request request,
                          const std::vector<runner::InputFile>& inputs, const std::string& dir);

// Hard links (copies where links fail) of every part's recordings of the request's first `tensors`
// tensors into `dir` (holding the sidecar), named <stem>.p<part>.<batch>.npy so that the
// calibration loader reads them in row order. Errors: a file that can be neither linked nor copied.
Status LinkParts(const std::vector<Part>& parts, const runner::Request& request, int tensors,
                 const std::string& dir);

}  // namespace kfc::pipeline
