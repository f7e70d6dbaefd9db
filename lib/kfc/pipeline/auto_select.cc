// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/auto_select.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "kfc/core/logging.h"
#include "kfc/kron/weighted.h"
#include "kfc/pipeline/ratio.h"
#include "kfc/pipeline/sensitivity.h"
#include "kfc/report/render.h"
#include "kfc/runner/compare.h"

namespace kfc::pipeline {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

RowSplit SplitRows(int64_t rows) {
  if (rows < kAutoMinRows) return {rows, 0};
  const int64_t held = std::max<int64_t>(1, rows / kAutoHeldOutShare);
  return {rows - held, held};
}

std::vector<AutoCandidate> AutoCandidates(const Options& o, const AutoSearch& search) {
  std::vector<double> lambdas = {
      o.calibration_regularization.value_or(kron::kCalibrationRegularization)};
  if (search.regularization) lambdas.assign(std::begin(kAutoLambdas), std::end(kAutoLambdas));
  std::vector<AllocationObjective> allocations = {o.allocation};
  if (search.allocation) {
    allocations = {AllocationObjective::kSizeWeighted, AllocationObjective::kUniform};
  }
  std::vector<AutoCandidate> out;
  for (double lambda : lambdas) {
    for (AllocationObjective a : allocations) {
      AutoCandidate c;
      c.allocation = a;
      c.regularization = lambda;
      out.push_back(c);
    }
  }
  return out;
}

int PickCandidate(const std::vector<AutoCandidate>& candidates) {
  int best = -1;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const double e = candidates[i].held_out_error;
    if (!std::isfinite(e)) continue;
    if (best < 0 || e < candidates[static_cast<size_t>(best)].held_out_error) {
      best = static_cast<int>(i);
    }
  }
  return best;
}

Options WithCandidate(const Options& o, const AutoCandidate& c) {
  Options out = o;
  out.allocation = c.allocation;
  out.calibration_regularization = c.regularization;
  return out;
}

std::string CandidateName(const AutoCandidate& c) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", c.regularization);
  return std::string(AllocationName(c.allocation)) + ", lambda " + buf;
}

StatusOr<double> EvaluateCandidate(const std::string& model_path, const HeldOut& held,
                                   const std::string& work_dir) {
  const auto t0 = Clock::now();
  KFC_ASSIGN_OR_RETURN(const std::vector<std::vector<std::string>> files,
                       held.passes->RunFile(model_path, held.outputs, work_dir));
  double e2 = 0;
  for (size_t k = 0; k < files.size(); ++k) {
    KFC_ASSIGN_OR_RETURN(
        const runner::Difference d,
        runner::CompareRecordings(held.original[k], files[k], "output '" + held.outputs[k] + "'"));
    e2 += d.relative_error * d.relative_error;
  }
  Logger().info("runner: ran a candidate on {} held-out rows and compared {} outputs in {:.3f} s",
                static_cast<int64_t>(held.passes->rows()), files.size(), SecondsSince(t0));
  return std::sqrt(e2);
}

StatusOr<report::AutoSelection> SearchCandidates(const std::string& input, const Options& options,
                                                 std::vector<AutoCandidate>* candidates,
                                                 const HeldOut& held, const std::string& work_dir) {
  auto& log = Logger();
  RatioOptionsCache cache;  // per lambda, shared by the allocations
  for (size_t i = 0; i < candidates->size(); ++i) {
    AutoCandidate& c = (*candidates)[i];
    const auto t0 = Clock::now();
    const std::string dir = work_dir + "/candidate" + std::to_string(i);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return IoError("temporary folder '" + dir + "': " + ec.message());
    Options trial = WithCandidate(TrialOptions(options), c);
    trial.ratio_cache = &cache;
    StatusOr<report::Report> compressed =
        CompressFile(input, dir + "/model.onnx", trial, /*dry_run=*/false);
    if (!compressed.ok()) {
      c.note = compressed.status().message();
    } else if (!compressed->output_written()) {
      c.note = "not written: " + compressed->ratio_detail();
    } else {
      StatusOr<double> e = EvaluateCandidate(dir + "/model.onnx", held, dir);
      if (!e.ok()) return e.status().WithContext("auto: candidate " + CandidateName(c));
      c.held_out_error = *e;
    }
    c.seconds = SecondsSince(t0);
    fs::remove_all(dir, ec);
    if (c.note.empty()) {
      log.info("auto: candidate {}: held-out output error {:.6g} ({:.3f} s)", CandidateName(c),
               c.held_out_error, c.seconds);
    } else {
      log.info("auto: candidate {}: not measured: {}", CandidateName(c), c.note);
    }
  }
  report::AutoSelection out;
  out.set_searched(true);
  out.set_chosen(PickCandidate(*candidates));
  for (const auto& c : *candidates) {
    report::AutoCandidate* r = out.add_candidates();
    r->set_allocation(AllocationName(c.allocation));
    r->set_regularization(c.regularization);
    r->set_held_out_error(std::isfinite(c.held_out_error) ? c.held_out_error : -1.0);
    r->set_seconds(c.seconds);
    r->set_note(report::ToValidUtf8(c.note));
  }
  return out;
}

}  // namespace kfc::pipeline
