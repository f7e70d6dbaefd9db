// SPDX-License-Identifier: Apache-2.0
// CompressModel's phases, in order, over one LayerState per Gemm/MatMul (pipeline/layer_state.h):
//   select             eligibility, --include/--exclude, --min-params, readable weight
//   read, check and    directive (plan or mode) and calibration statistics; then each weight read
//   decide             once, checked to be finite and its shape and rank decided from that read
//                      (--ratio allocates across layers inside this phase)
//   factorize          each distinct factorization once (the weight's second read); the rewrites
//   rewrite and check  the graph edit and the ONNX checker
//   report             built once from the outcomes (pipeline/layer_report.h)
// Each is a function in its own file (phase_<name>.cc), timed by Timed. Internal to pipeline/.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/pipeline/calibration.h"
#include "kfc/pipeline/compress.h"
#include "kfc/pipeline/layer_state.h"
#include "kfc/pipeline/name_filter.h"
#include "kfc/pipeline/size_error_curve.h"
#include "kfc/pipeline/weights.h"
#include "kfc/rewrite/kron_layer.h"

namespace kfc::pipeline {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start);

// Runs `phase` and then `log(seconds)`, the phase's one timed info line (not on failure).
Status Timed(const std::function<Status()>& phase, const std::function<void(double)>& log);

// Runs fn(i) for i in [0, n) on o.threads threads with one BLAS thread each (core/parallel.h): the
// results do not depend on the number of threads.
Status RunParallel(const Options& o, size_t n, const std::function<Status(size_t)>& fn);

// Reports a phase's progress through Options::progress (a no-op when that is empty). Done may be
// called from worker threads; the callback runs under a lock, and only Finish reports the phase
// complete.
class ProgressMeter {
 public:
  ProgressMeter(const Options& o, std::string phase,
                const std::vector<const match::LayerCandidate*>& layers);
  void Done(size_t i);  // layer i is done
  void Finish();

 private:
  void Report();

  const std::function<void(const Progress&)>& callback_;
  Clock::time_point start_;
  std::mutex mu_;
  Progress p_;
  std::vector<double> bytes_;
};

// Indices of the layers still considered, in layer order.
std::vector<size_t> ConsideredLayers(const std::vector<LayerState>& states);

// The candidates of states[i] for each i of `indices` (what a ProgressMeter counts).
std::vector<const match::LayerCandidate*> CandidatesAt(const std::vector<LayerState>& states,
                                                       const std::vector<size_t>& indices);

// select: one state per candidate; considered unless a skip reason applies. Internal error when a
// candidate's weight is not in the model.
StatusOr<std::vector<LayerState>> SelectLayers(const std::vector<match::LayerCandidate>& candidates,
                                               const Options& o, const NameFilter& filter,
                                               const Weights& weights);

// What the read, check and decide phase leaves besides the layers' decisions.
struct DecideOutcome {
  int64_t read = 0;             // weights read and checked
  int64_t layers = 0;           // layers decided (their weights finite)
  std::string ratio_shortfall;  // --ratio: why the allocation cannot meet the target; "" if met
  CurveInput ratio_curve;       // --ratio with Options::record_charts: the allocation's options
};

// read, check and decide: each considered layer's directive and calibration statistics; then in
// parallel its weight read once, checked (layers with NaN or Inf weights stay dense,
// `non_finite_weight`) and decided from that read; then --ratio's allocation. Errors are those of
// the first failing layer in graph order, whatever the number of threads.
StatusOr<DecideOutcome> ReadAndDecide(const Options& o, const Weights& weights,
                                      Calibration* calibration, std::vector<LayerState>* states);

// factorize: each distinct factorization once (in parallel; spilled as done when o.spill), the
// factorized layers' outcomes in layer order, and their rewrites.
StatusOr<std::vector<rewrite::KronRewrite>> Factorize(const Options& o, const Weights& weights,
                                                      std::vector<LayerState>* states);

// compensate (--compensate, phase_compensate.cc; docs/compensation.md): with the factors of
// `rewrites` (not spilled), assigns every compressed layer its stage in graph order, then for each
// stage s > 1 in turn runs `model` with the layers of stages < s rewritten through
// o.record_activations, and refits each stage-s layer that has full calibration statistics to
// its recorded inputs (kron/compensate.h), updating `rewrites` and the layers' outcomes. Returns
// the report's summary.
StatusOr<report::Compensation> Compensate(const Options& o, const Weights& weights,
                                          const onnx::ModelProto& model,
                                          std::vector<LayerState>* states,
                                          std::vector<rewrite::KronRewrite>* rewrites);

// Parameter and byte counts of a graph's initializers.
struct ModelTotals {
  double params = 0, bytes = 0;
};

// What rewrite and check measures of the model before and after.
struct RewriteOutcome {
  ModelTotals before, after;
  double file_bytes_before = 0, file_bytes_after = 0;
  report::Checks checks;  // what validated the output (check/validate.h)
};

// rewrite and check: applies the rewrites to `model` and checks the result.
StatusOr<RewriteOutcome> RewriteAndCheck(const std::vector<rewrite::KronRewrite>& rewrites,
                                         onnx::ModelProto* model);

}  // namespace kfc::pipeline
