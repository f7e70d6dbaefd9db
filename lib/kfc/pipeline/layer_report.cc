// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/layer_report.h"

#include <cmath>
#include <set>
#include <string>

#include "kfc/core/logging.h"
#include "kfc/pipeline/ratio.h"
#include "kfc/report/render.h"
#include "kfc/tensor/tensor.h"

namespace kfc::pipeline {
namespace {

void RecordSearch(const kron::ShapeSearchResult& search, const match::LayerCandidate& c,
                  bool record_candidates, report::LayerReport* lr) {
  lr->set_shapes_evaluated(static_cast<double>(search.full_evaluations));
  for (const auto& cand : search.candidates) {
    if (cand.shape == kron::LowRankShape(c.k, c.n) && cand.evaluated) {
      lr->set_lowrank_rank(static_cast<double>(cand.rank));
      lr->set_lowrank_relative_error(RoundSignificant(cand.error));
    }
    if (!record_candidates) continue;
    auto* rc = lr->add_candidates();
    rc->set_k1(static_cast<double>(cand.shape.k1));
    rc->set_n1(static_cast<double>(cand.shape.n1));
    rc->set_k2(static_cast<double>(cand.shape.k2));
    rc->set_n2(static_cast<double>(cand.shape.n2));
    rc->set_rank(static_cast<double>(cand.rank));
    rc->set_params(static_cast<double>(cand.params));
    rc->set_error_lower(RoundSignificant(cand.error_lower));
    rc->set_error_upper(RoundSignificant(cand.error_upper));
    rc->set_evaluated(cand.evaluated);
    rc->set_error(RoundSignificant(cand.error));
  }
}

void InitLayerReport(const match::LayerCandidate& c, report::LayerReport* lr) {
  lr->set_node_name(report::ToValidUtf8(c.node_name));
  lr->set_op_type(c.op_type);
  lr->set_weight_name(report::ToValidUtf8(c.weight_name));
  lr->set_graph(report::ToValidUtf8(c.graph_path));
  lr->set_k(static_cast<double>(c.k));
  lr->set_n(static_cast<double>(c.n));
  lr->set_dtype(c.dtype ? tensor::DTypeName(c.dtype) : "");
  lr->set_lowrank_rank(-1);
  lr->set_lowrank_relative_error(-1);
  lr->set_plan_entry(-1);
  lr->set_max_error_target(-1);
  lr->set_data_relative_error(-1);
  lr->set_weight_only_data_relative_error(-1);
  const double kn = static_cast<double>(c.k) * static_cast<double>(c.n);
  const double elem_bytes = static_cast<double>(tensor::DTypeSize(c.dtype));
  lr->set_params_before(kn);
  lr->set_params_after(kn);
  lr->set_macs_before(kn);
  lr->set_macs_after(kn);
  lr->set_weight_bytes_before(kn * elem_bytes);
  lr->set_weight_bytes_after(kn * elem_bytes);
}

void SetShape(const LayerState& s, const kron::KronShape& shape, int64_t rank,
              report::LayerReport* lr) {
  lr->set_k1(static_cast<double>(shape.k1));
  lr->set_n1(static_cast<double>(shape.n1));
  lr->set_k2(static_cast<double>(shape.k2));
  lr->set_n2(static_cast<double>(shape.n2));
  lr->set_rank(static_cast<double>(rank));
  // Only -r at a fixed policy clamps; elsewhere the budget sets the rank.
  lr->set_rank_clamped(s.dir.budget == Budget::kRank &&
                       s.dir.shape.kind != ShapePolicy::Kind::kAuto && rank < s.dir.rank);
}

void EvaluateGates(const Options& o, report::Report* rep) {
  rep->set_gates_passed(true);
  auto add = [&](const std::string& name, double threshold, double value, const std::string& what) {
    report::Gate* g = rep->add_gates();
    g->set_gate(name);
    g->set_threshold(threshold);
    g->set_value(value);
    g->set_passed(value <= threshold);
    g->set_detail(report::ToValidUtf8(
        what + " " + Num(value) +
        (g->passed() ? " is within " + Num(threshold)
                     : " exceeds " + Num(threshold) + " by " + Num(value - threshold))));
    if (!g->passed()) rep->set_gates_passed(false);
  };
  if (o.fail_if_error_above >= 0) {
    double worst = 0.0;
    std::string who = "no compressed layer: error";
    for (const auto& l : rep->layers()) {
      const double e = l.calibrated() ? l.data_relative_error() : l.relative_error();
      if (l.compressed() && e > worst) {
        worst = e;
        who = "layer '" + l.node_name() + "' " + (l.calibrated() ? "data-weighted " : "") +
              "relative error";
      }
    }
    if (worst > 0.0) who = "worst " + who;
    add("fail_if_error_above", o.fail_if_error_above, worst, who);
  }
  if (o.fail_if_nothing_compressed) {
    report::Gate* g = rep->add_gates();
    g->set_gate("fail_if_nothing_compressed");
    g->set_threshold(1);
    g->set_value(rep->totals().layers_compressed());
    g->set_passed(rep->totals().layers_compressed() >= 1);
    g->set_detail(report::CompressedSummary(*rep));
    if (!g->passed()) rep->set_gates_passed(false);
  }
  if (o.fail_if_ratio_above >= 0) {
    add("fail_if_ratio_above", o.fail_if_ratio_above, rep->totals().param_ratio(),
        "model param_ratio");
  }
}

std::string ModeName(const Options& o) {
  return o.rank > 0 ? "rank" : o.max_error >= 0 ? "max_error" : o.ratio > 0 ? "ratio" : "plan";
}

}  // namespace

report::LayerReport LayerReportOf(const Options& o, const LayerState& s) {
  const match::LayerCandidate& c = *s.c;
  report::LayerReport lr;
  InitLayerReport(c, &lr);
  if (s.directed) {
    lr.set_decided_by(s.dir.decided_by);
    lr.set_plan_entry(s.dir.plan_entry);
    lr.set_rank_requested(static_cast<double>(s.dir.rank));
    lr.set_max_error_target(s.dir.max_error);
  }
  lr.set_calibrated(s.calibrated);
  if (auto it = o.layer_sensitivity.find(c.node_name); it != o.layer_sensitivity.end()) {
    lr.set_output_sensitivity(it->second);
  }
  lr.set_calibration_note(s.calibration_note);
  if (s.compensation) {
    report::LayerCompensation* lc = lr.mutable_compensation();
    lc->set_stage(s.compensation->stage);
    lc->set_compensated(s.compensation->refit);
    lc->set_compensated_output_error(RoundSignificant(s.compensation->error));
    lc->set_uncompensated_output_error(RoundSignificant(s.compensation->plain_error));
    lc->set_used_plain(s.compensation->used_plain);
    lc->set_note(report::ToValidUtf8(s.compensation->note));
  }
  if (s.shaped) {
    lr.set_shapes_compared(static_cast<double>(s.dec.compared));
    lr.set_shape_note(report::ToValidUtf8(s.dec.note));
    if (s.dec.search) RecordSearch(*s.dec.search, c, o.record_candidates, &lr);
    SetShape(s, s.dec.shape, s.dec.rank, &lr);
  }
  if (!s.factored) {
    lr.set_compressed(false);
    lr.set_skip_reason(s.skip_reason);
    lr.set_skip_detail(report::ToValidUtf8(s.skip_detail));
    return lr;
  }
  const Factored& f = *s.factored;
  SetShape(s, f.shape, f.rank, &lr);
  lr.set_compressed(true);
  lr.set_params_after(static_cast<double>(f.rank * f.shape.ParamsPerTerm()));
  if (f.shares_factors) {
    lr.set_shares_factors_with(report::ToValidUtf8(f.shares_factors_with));
    lr.set_params_after(0);
  }
  lr.set_macs_after(static_cast<double>(kron::Macs(f.shape, f.rank, f.order)));
  lr.set_contraction_order(f.order == kron::ContractionOrder::kBFirst ? "b_first" : "a_first");
  lr.set_relative_error(RoundSignificant(f.relative_error));
  lr.set_data_relative_error(RoundSignificant(f.data_error));
  lr.set_weight_only_data_relative_error(RoundSignificant(f.weight_only_data_error));
  lr.set_weight_bytes_after(lr.params_after() * static_cast<double>(tensor::DTypeSize(c.dtype)));
  if (!f.spectrum.empty()) {
    report::Spectrum* sp = lr.mutable_spectrum();
    for (double v : f.spectrum) sp->add_values(v);
    sp->set_complete(f.spectrum_complete);
  }
  return lr;
}

report::Report BuildReport(const RunOutcome& run) {
  const Options& options = *run.options;
  auto& log = Logger();
  report::Report rep;
  rep.set_report_schema_version(report::kSchemaVersion);
  rep.set_tool_version(KFC_VERSION);
  rep.set_mode(ModeName(options));
  rep.set_rank_requested(static_cast<double>(options.rank));
  rep.set_max_error(options.max_error);
  rep.set_ratio_target(options.ratio);
  if (options.plan) rep.set_plan(report::ToValidUtf8(options.plan->source()));
  ShapePolicy default_policy;
  if (options.rank == 0) default_policy.kind = ShapePolicy::Kind::kAuto;
  rep.set_shape_policy(options.shape.value_or(default_policy).Name());
  rep.set_min_params(static_cast<double>(options.min_params));
  rep.set_opset(run.opset);
  if (!options.calibration_dir.empty()) {
    rep.set_calibration(report::ToValidUtf8(options.calibration_dir));
  }
  *rep.mutable_checks() = run.input_checks;
  rep.mutable_checks()->MergeFrom(run.rewritten.checks);

  report::Totals* totals = rep.mutable_totals();
  CompressibleCount compressible;
  const std::set<std::string> compressible_sources = CompressibleSources(*run.layers);
  for (const LayerState& s : *run.layers) {
    report::LayerReport* lr = rep.add_layers();
    *lr = LayerReportOf(options, s);
    if (!lr->compressed()) {
      log.debug("layer '{}' skipped: {} ({})", s.c->node_name, lr->skip_reason(),
                lr->skip_detail());
      lr->set_params_after(lr->params_before());
    }
    if (s.considered && compressible_sources.count(s.c->source_value)) {
      if (s.factored) {
        compressible.AddFactors(s, s.factored->shape, s.factored->rank);
      } else {
        compressible.AddDense(s);
      }
    }
    if (s.c->k > 0 && s.c->n > 0) {
      totals->set_layer_params_before(totals->layer_params_before() + lr->params_before());
      totals->set_layer_params_after(totals->layer_params_after() + lr->params_after());
      totals->set_layer_macs_before(totals->layer_macs_before() + lr->macs_before());
      totals->set_layer_macs_after(totals->layer_macs_after() + lr->macs_after());
    }
  }

  const ModelTotals& before = run.rewritten.before;
  const ModelTotals& after = run.rewritten.after;
  const double found = static_cast<double>(run.layers->size());
  totals->set_layers_found(found);
  totals->set_layers_compressed(static_cast<double>(run.layers_compressed));
  totals->set_layers_skipped(found - static_cast<double>(run.layers_compressed));
  totals->set_model_params_before(before.params);
  totals->set_model_params_after(after.params);
  totals->set_weight_bytes_before(before.bytes);
  totals->set_weight_bytes_after(after.bytes);
  // As if stored inline: tensors still in the input's external files count with their bytes.
  totals->set_file_bytes_before(run.rewritten.file_bytes_before);
  totals->set_file_bytes_after(run.rewritten.file_bytes_after);
  totals->set_param_ratio(before.params > 0 ? after.params / before.params : 1.0);
  totals->set_file_ratio(totals->file_bytes_before() > 0
                             ? totals->file_bytes_after() / totals->file_bytes_before()
                             : 1.0);
  const double cb = compressible.Before(), ca = compressible.After();
  totals->set_compressible_params_before(cb);
  totals->set_compressible_params_after(ca);
  totals->set_compressible_ratio(cb > 0 ? ca / cb : 1.0);
  if (options.ratio > 0) {
    const bool met = ca <= std::floor(options.ratio * cb + 1e-9);
    rep.set_ratio_met(met);
    const std::string achieved = "compressible parameters " + Num(cb) + " -> " + Num(ca) +
                                 " (ratio " + Num(totals->compressible_ratio()) + ")";
    const std::string& shortfall = run.decided.ratio_shortfall;
    rep.set_ratio_detail(met ? achieved + " meets the target " + Num(options.ratio)
                             : achieved + " misses the target " + Num(options.ratio) + " by " +
                                   Num(totals->compressible_ratio() - options.ratio) +
                                   (shortfall.empty() ? "" : ": " + shortfall));
    if (!met) log.warn("--ratio {}: {}", options.ratio, rep.ratio_detail());
  }
  EvaluateGates(options, &rep);
  return rep;
}

}  // namespace kfc::pipeline
