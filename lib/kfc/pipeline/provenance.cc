// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/provenance.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "kfc/pipeline/ratio.h"

namespace kfc::pipeline {
namespace {

std::string Number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

std::string Count(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%" PRId64, static_cast<int64_t>(v));
  return buf;
}

std::string BeforeAfter(double before, double after) {
  return Count(before) + " -> " + Count(after);
}

// A regex as a shell would need it quoted.
std::string Quoted(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

}  // namespace

std::string OptionsText(const Options& o) {
  std::string out;
  auto add = [&](const std::string& flag) { out += (out.empty() ? "" : " ") + flag; };
  if (o.rank > 0) add("-r " + std::to_string(o.rank));
  if (o.max_error >= 0) add("--max-error " + Number(o.max_error));
  if (o.ratio > 0) add("--ratio " + Number(o.ratio));
  if (o.plan) add("--plan PLAN (" + std::to_string(o.plan->entries().size()) + " entries)");
  ShapePolicy default_policy;
  if (o.rank == 0) default_policy.kind = ShapePolicy::Kind::kAuto;
  add("--shape " + o.shape.value_or(default_policy).Name());
  add(std::string("--objective ") + (o.objective == Objective::kMacs ? "macs" : "params"));
  if (o.allow_slower) add("--allow-slower-than-dense");
  // Always written: it decides shapes, and 0 (MACs alone) is a common choice.
  add("--node-cost " + std::to_string(o.node_cost_macs));
  add("--min-params " + std::to_string(o.min_params));
  for (const auto& re : o.include) add("--include " + Quoted(re));
  for (const auto& re : o.exclude) add("--exclude " + Quoted(re));
  if (!o.calibration_dir.empty()) add("--calibration DIR");
  if (o.compensate) add("--compensate");
  if (o.allocation != AllocationObjective::kSizeWeighted) {
    add(std::string("--allocation ") + AllocationName(o.allocation));
  }
  if (o.calibration_regularization) {
    add("--calibration-regularization " + Number(*o.calibration_regularization));
  }
  if (o.fail_if_error_above >= 0) add("--fail-if-error-above " + Number(o.fail_if_error_above));
  if (o.fail_if_ratio_above >= 0) add("--fail-if-ratio-above " + Number(o.fail_if_ratio_above));
  if (o.write_on_gate_failure) add("--write-on-gate-failure");
  if (!o.skip_unprofitable) add("(unprofitable layers compressed)");
  return out;
}

std::vector<std::pair<std::string, std::string>> ProvenanceEntries(const Options& o,
                                                                   const report::Report& r) {
  const std::string p = kMetadataPrefix;
  const report::Totals& t = r.totals();
  double worst = 0;
  for (const auto& l : r.layers()) {
    if (!l.compressed()) continue;
    worst = std::max(worst, l.calibrated() && l.data_relative_error() >= 0 ? l.data_relative_error()
                                                                           : l.relative_error());
  }
  std::vector<std::pair<std::string, std::string>> e = {
      {p + "version", r.tool_version()},
      {p + "options", OptionsText(o)},
  };
  if (!o.input_sha256.empty()) e.push_back({p + "input_sha256", o.input_sha256});
  if (!o.auto_selection.empty()) e.push_back({p + "auto_selection", o.auto_selection});
  e.push_back(
      {p + "layers_compressed", Count(t.layers_compressed()) + " of " + Count(t.layers_found())});
  e.push_back({p + "layer_params", BeforeAfter(t.layer_params_before(), t.layer_params_after())});
  e.push_back({p + "layer_macs_per_row", BeforeAfter(t.layer_macs_before(), t.layer_macs_after())});
  e.push_back({p + "model_params", BeforeAfter(t.model_params_before(), t.model_params_after())});
  e.push_back({p + "worst_relative_error", Number(worst)});
  return e;
}

std::string LayerDocString(const report::LayerReport& l) {
  std::string out = "kfc-compress: " + l.op_type() + " '" + l.node_name() + "' (weight '" +
                    l.weight_name() + "', " + Count(l.k()) + "x" + Count(l.n()) + ") as " +
                    Count(l.k1()) + "x" + Count(l.n1()) + " (x) " + Count(l.k2()) + "x" +
                    Count(l.n2()) + " at rank " + Count(l.rank()) + ", relative error " +
                    Number(l.relative_error());
  if (l.calibrated() && l.data_relative_error() >= 0) {
    out += ", data-weighted " + Number(l.data_relative_error());
  }
  out += "; parameters " + BeforeAfter(l.params_before(), l.params_after()) + ", MACs per row " +
         BeforeAfter(l.macs_before(), l.macs_after());
  return out;
}

}  // namespace kfc::pipeline
