// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/sensitivity.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include "kfc/core/logging.h"
#include "kfc/runner/compare.h"

namespace kfc::pipeline {
namespace {

namespace fs = std::filesystem;

}  // namespace

Options TrialOptions(const Options& options) {
  Options o = options;
  o.allocation = AllocationObjective::kSizeWeighted;
  o.layer_sensitivity.clear();
  o.before_write = nullptr;
  o.compensate = false;  // the trials run no stages
  o.record_activations = nullptr;
  o.progress = nullptr;
  o.fail_if_error_above = -1.0;
  o.fail_if_ratio_above = -1.0;
  o.fail_if_nothing_compressed = false;
  o.write_on_gate_failure = false;
  o.record_charts = false;
  o.record_candidates = false;
  o.save = io::SaveOptions{};
  return o;
}

std::string ExactRegex(const std::string& text) {
  std::string out = "^";
  for (char ch : text) {
    if (std::string("\\^$.|?*+()[]{}").find(ch) != std::string::npos) out += '\\';
    out += ch;
  }
  return out + "$";
}

StatusOr<std::map<std::string, double>> MeasureSensitivity(const std::string& input,
                                                           const Options& options,
                                                           const SensitivityRun& run) {
  auto& log = Logger();
  const auto start = std::chrono::steady_clock::now();
  // The layers --ratio decides, from a dry run.
  KFC_ASSIGN_OR_RETURN(const report::Report listed,
                       CompressFile(input, "", TrialOptions(options), /*dry_run=*/true));
  std::vector<std::string> names;
  for (const auto& l : listed.layers()) {
    if (l.decided_by() == "ratio") names.push_back(l.node_name());
  }
  std::error_code ec;
  fs::create_directories(run.work_dir, ec);
  if (ec) return IoError("temporary folder '" + run.work_dir + "': " + ec.message());
  std::map<std::string, double> out;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    const std::string what = "--allocation sensitivity: layer '" + name + "'";
    const std::string dir = run.work_dir + "/layer" + std::to_string(i);
    fs::create_directories(dir, ec);
    if (ec) return IoError("temporary folder '" + dir + "': " + ec.message());
    Options trial = TrialOptions(options);
    trial.include = {ExactRegex(name)};
    StatusOr<report::Report> compressed_alone =
        CompressFile(input, dir + "/model.onnx", trial, /*dry_run=*/false);
    if (!compressed_alone.ok()) return compressed_alone.status().WithContext(what);
    const report::Report& rep = *compressed_alone;
    double e = 0;
    bool compressed = false;
    for (const auto& l : rep.layers()) {
      if (l.node_name() != name || !l.compressed()) continue;
      compressed = true;
      e = l.calibrated() && l.data_relative_error() >= 0 ? l.data_relative_error()
                                                         : l.relative_error();
    }
    if (!compressed || !(e > 0)) {
      log.info("{}: not compressed alone at --ratio {} (sensitivity 0)", what, options.ratio);
      out[name] = 0.0;
      fs::remove_all(dir, ec);
      continue;
    }
    StatusOr<std::vector<std::vector<std::string>>> ran =
        run.passes->RunFile(dir + "/model.onnx", run.outputs, dir);
    if (!ran.ok()) return ran.status().WithContext(what);
    double big_e2 = 0;
    for (size_t k = 0; k < ran->size(); ++k) {
      StatusOr<runner::Difference> d =
          runner::CompareRecordings(run.original[k], (*ran)[k], "output '" + run.outputs[k] + "'");
      if (!d.ok()) return d.status().WithContext(what);
      big_e2 += d->relative_error * d->relative_error;
    }
    out[name] = big_e2 / (e * e);
    log.info(
        "{}: alone at --ratio {}: layer output error {:.4g}, model output error {:.4g}, "
        "sensitivity {:.4g}",
        what, options.ratio, e, std::sqrt(big_e2), out[name]);
    fs::remove_all(dir, ec);
  }
  log.info("--allocation sensitivity: {} layers measured in {:.3f} s", names.size(),
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return out;
}

}  // namespace kfc::pipeline
