// CompressModel's phases, in order, over one LayerState per Gemm/MatMul (pipeline/layer_state.h):
//   select             eligibility, --include/--exclude, --min-params, readable weight
//   read and check     each selected weight read once and checked to be finite
//   decide             directive (plan or mode), calibration statistics, shape and rank
//                      (--ratio allocates across layers inside this phase)
//   factorize          each distinct factorization once; the rewrites
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

// read and check: reads each considered weight (in parallel) and skips the non-finite ones.
Status ReadAndCheck(const Options& o, const Weights& weights, std::vector<LayerState>* states);

// What the decide phase leaves besides the layers' decisions.
struct DecideOutcome {
  int64_t layers = 0;           // layers decided
  std::string ratio_shortfall;  // --ratio: why the allocation cannot meet the target; "" if met
  CurveInput ratio_curve;       // --ratio with Options::record_charts: the allocation's options
};

// decide: each considered layer's directive, calibration statistics and decision.
StatusOr<DecideOutcome> Decide(const Options& o, const Weights& weights, Calibration* calibration,
                               std::vector<LayerState>* states);

// factorize: each distinct factorization once (in parallel; spilled as done when o.spill), the
// factorized layers' outcomes in layer order, and their rewrites.
StatusOr<std::vector<rewrite::KronRewrite>> Factorize(const Options& o, const Weights& weights,
                                                      std::vector<LayerState>* states);

// Parameter and byte counts of a graph's initializers.
struct ModelTotals {
  double params = 0, bytes = 0;
};

// What rewrite and check measures of the model before and after.
struct RewriteOutcome {
  ModelTotals before, after;
  double file_bytes_before = 0, file_bytes_after = 0;
};

// rewrite and check: applies the rewrites to `model` and checks the result.
StatusOr<RewriteOutcome> RewriteAndCheck(const std::vector<rewrite::KronRewrite>& rewrites,
                                         onnx::ModelProto* model);

}  // namespace kfc::pipeline
