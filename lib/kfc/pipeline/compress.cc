// SPDX-License-Identifier: Apache-2.0
// CompressModel: the phases in order (pipeline/phases.h), over one LayerState per Gemm/MatMul;
// the report is built once, at the end, from their outcomes (pipeline/layer_report.h).
#include "kfc/pipeline/compress.h"

#include <memory>
#include <optional>

#include "kfc/check/validate.h"
#include "kfc/core/logging.h"
#include "kfc/io/model_io.h"
#include "kfc/pipeline/layer_report.h"
#include "kfc/pipeline/phases.h"
#include "kfc/pipeline/provenance.h"
#include "kfc/pipeline/size_error_curve.h"
#include "kfc/rewrite/metadata.h"

namespace kfc::pipeline {

StatusOr<Result> CompressModel(const onnx::ModelProto& model, const Options& options) {
  return CompressModel(onnx::ModelProto(model), options);
}

StatusOr<Result> CompressModel(onnx::ModelProto&& model, const Options& options) {
  KFC_RETURN_IF_ERROR(ValidateOptions(options));
  if (options.compensate && (!options.record_activations || options.calibration_dir.empty())) {
    return InvalidArgument(
        "--compensate needs --calibration-data: it runs the partly compressed model in the "
        "runner to record each stage's inputs");
  }
  KFC_ASSIGN_OR_RETURN(const NameFilter filter,
                       NameFilter::Create(options.include, options.exclude));
  auto& log = Logger();
  const Weights weights{model, options.external_reader};
  RunOutcome run;
  run.options = &options;
  run.opset = static_cast<int32_t>(match::DefaultOpset(model));
  if (options.input_checks != nullptr) {
    run.input_checks = *options.input_checks;
  } else {
    KFC_RETURN_IF_ERROR(check::CheckModel(model, "input model", "input", {}, &run.input_checks));
  }

  std::shared_ptr<Calibration> calibration;
  if (!options.calibration_dir.empty()) {
    KFC_ASSIGN_OR_RETURN(calibration, Calibration::Load(options.calibration_dir, model));
    // Parked statistics (pipeline/calibration.h) go next to the factors' spill, when there is one.
    if (options.spill != nullptr) calibration->SetScratchFolder(options.spill->folder());
  }

  // match: every Gemm/MatMul, eligible or with its skip reason.
  std::vector<match::LayerCandidate> candidates;
  KFC_RETURN_IF_ERROR(Timed(
      [&] {
        candidates = match::FindLayers(model);
        return Status::Ok();
      },
      [&](double s) {
        log.info("matched {} Gemm/MatMul layers in {:.3f} s", candidates.size(), s);
      }));
  // Layers inside model-local functions are not searched (torch.onnx.dynamo_export before
  // torch 2.5 puts every nn.Linear in one): say so, rather than "the model has no Gemm or MatMul".
  for (const auto& f : model.functions()) {
    int64_t layers = 0;
    for (const auto& node : f.node()) layers += match::IsLayerOp(node);
    if (layers == 0) continue;
    log.warn(
        "model-local function '{}.{}' holds {} Gemm/MatMul node(s), left as they are: only the "
        "graph and its subgraphs are searched (inline the functions first, e.g. with "
        "onnx.inliner.inline_local_functions)",
        f.domain(), f.name(), layers);
  }
  if (options.plan) {
    for (const auto& w : options.plan->Bind(candidates)) log.warn("{}", w);
  }

  // select, then read, check and decide (--ratio inside).
  std::vector<LayerState> states;
  KFC_RETURN_IF_ERROR(Timed(
      [&]() -> Status {
        KFC_ASSIGN_OR_RETURN(states, SelectLayers(candidates, options, filter, weights));
        for (const auto& p : filter.Unmatched()) log.warn("{} matches no eligible layer", p);
        KFC_ASSIGN_OR_RETURN(run.decided,
                             ReadAndDecide(options, weights, calibration.get(), &states));
        return Status::Ok();
      },
      [&](double s) {
        log.info("read and checked {} weights, decided {} layers in {:.3f} s", run.decided.read,
                 run.decided.layers, s);
      }));

  // factorize.
  std::vector<rewrite::KronRewrite> rewrites;
  KFC_RETURN_IF_ERROR(Timed(
      [&]() -> Status {
        // Compensation refits factors after this phase: they stay in memory, not spilled.
        Options factor_options = options;
        if (options.compensate) factor_options.spill = nullptr;
        KFC_ASSIGN_OR_RETURN(rewrites, Factorize(factor_options, weights, &states));
        return Status::Ok();
      },
      [&](double s) {
        if (options.spill != nullptr && !options.compensate) {
          const int64_t tensors = options.spill->tensors_spilled();
          log.info(
              "factorized {} of {} layers in {:.3f} s; {} bytes of factors spilled ({} tensor{})",
              rewrites.size(), candidates.size(), s, options.spill->bytes_spilled(), tensors,
              tensors == 1 ? "" : "s");
        } else {
          log.info("factorized {} of {} layers in {:.3f} s", rewrites.size(), candidates.size(), s);
        }
      }));
  run.layers_compressed = static_cast<int64_t>(rewrites.size());

  // compensate (--compensate): later stages refitted on the partly compressed model's inputs.
  std::optional<report::Compensation> compensation;
  if (options.compensate) {
    KFC_ASSIGN_OR_RETURN(compensation, Compensate(options, weights, model, &states, &rewrites));
  }

  // rewrite and check.
  Result result;
  result.model = std::move(model);
  KFC_RETURN_IF_ERROR(Timed(
      [&]() -> Status {
        KFC_ASSIGN_OR_RETURN(run.rewritten, RewriteAndCheck(rewrites, &result.model));
        return Status::Ok();
      },
      [&](double s) { log.info("rewrote and checked the graph in {:.3f} s", s); }));

  // report.
  run.layers = &states;
  result.report = BuildReport(run);
  // Provenance (pipeline/provenance.h), from the report's totals; the file size then counts it.
  report::Report& rep = result.report;
  if (compensation) *rep.mutable_compensation() = std::move(*compensation);
  rewrite::ReplaceMetadata(&result.model, kMetadataPrefix, ProvenanceEntries(options, rep));
  KFC_ASSIGN_OR_RETURN(const int64_t file_bytes_after, io::InlineSize(&result.model));
  rep.mutable_totals()->set_file_bytes_after(static_cast<double>(file_bytes_after));
  const double file_bytes_before = rep.totals().file_bytes_before();
  rep.mutable_totals()->set_file_ratio(
      file_bytes_before > 0 ? static_cast<double>(file_bytes_after) / file_bytes_before : 1.0);
  if (options.record_charts) {
    if (!run.decided.ratio_curve.groups.empty()) {
      CurveInput curve = run.decided.ratio_curve;
      curve.fixed_params += rep.totals().compressible_params_after();
      curve.fixed_cost = CompressedCost(rep, "ratio");
      SetSizeErrorCurve(curve, "ratio_allocation", &rep);
    } else {
      SetSizeErrorCurve(CurveFromSpectra(rep), "chosen_shapes", &rep);
    }
  }
  for (LayerState& s : states) {
    result.layers.push_back({*s.c, std::move(s.factors), std::move(s.bias_correction)});
  }
  return result;
}

}  // namespace kfc::pipeline
