// SPDX-License-Identifier: Apache-2.0
// The whole job: match, factorize, rewrite, validate, report. No argv parsing here.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kfc/check/validate.h"
#include "kfc/core/status.h"
#include "kfc/io/external_data.h"
#include "kfc/io/model_io.h"
#include "kfc/io/spill.h"
#include "kfc/kron/factorize.h"
#include "kfc/kron/shape_search.h"
#include "kfc/match/match.h"
#include "kfc/pipeline/plan.h"
#include "kfc_report.pb.h"
#include "onnx/onnx_pb.h"

namespace kfc::pipeline {

inline constexpr int64_t kDefaultMinParams = 4096;
// Newest ONNX IR version accepted (checked as IR 8, the newest ONNX 1.12 knows; see CheckModel).
inline constexpr int64_t kMaxIrVersion = check::kMaxIrVersion;
// Up to this many weight elements (1024 x 1024), the default shape is the least-error one among
// the shapes tied for fewest parameters per term (one singular-value pass each); above it, the
// squarest of them (the exact search would cost several full SVDs per layer).
inline constexpr int64_t kTieSearchMaxElements = int64_t{1} << 20;

// Where a run is, for a progress display: called before each layer of each phase and once at
// the end of the phase (layers_done == layers_total).
class RatioOptionsCache;  // pipeline/ratio.h

struct Progress {
  std::string phase;  // "deciding" (weights read and checked; shapes, ranks, spectra) or
                      // "factorizing"
  int64_t layers_done = 0;
  int64_t layers_total = 0;
  double bytes_done = 0;   // weight bytes of the layers done
  double bytes_total = 0;  // weight bytes of all Gemm/MatMul layers
  double elapsed_s = 0;    // since the phase started
};

// What a layer's choice minimizes where its error target is what is fixed (--max-error and plan
// entries with max_error); -r and --ratio fix parameters, so there it changes nothing.
enum class Objective {
  kParams,  // fewest parameters (ties: least error)
  kMacs,    // fewest MACs per input row (ties: fewest parameters, then least error)
};

// --allocation: the cost --ratio's allocation minimizes over the layers' options, with e_l a
// layer's relative error (with calibration, of its output on the recorded inputs):
//   kSizeWeighted  sum_l K_l*N_l * e_l^2 (the default);
//   kPerLayer      sum_l e_l^2, every layer's relative error alike;
//   kUniform       no cost: every layer gets the same fraction of its dense parameters, the least
//                  error within it;
//   kSensitivity   sum_l c_l * e_l^2, c_l the measured sensitivity of the model's outputs to
//                  layer l's output error (Options::layer_sensitivity).
enum class AllocationObjective { kSizeWeighted, kPerLayer, kUniform, kSensitivity };

// Exactly one mode sets each layer's budget: -r (rank), --max-error, or --ratio; with a --plan,
// the mode is optional and applies to the layers no plan entry matches.
struct Options {
  int64_t rank = 0;  // -r: Kronecker terms per layer (>= 1), clamped to min(k1*n1, k2*n2); 0: unset
  // --max-error: per layer, the fewest parameters (over the shape policy's shapes and ranks) whose
  // relative error is <= max_error, in [0, 1]; layers that cannot meet it with a saving are
  // skipped (`error_target_unmet`). -1: unset.
  double max_error = -1.0;
  // --ratio: the compressible weights end at <= ratio of their parameters, in (0, 1], allocated
  // across layers to minimize sum_l K_l*N_l * e_l^2 (pipeline/allocate.h). -1: unset.
  double ratio = -1.0;
  // --allocation: what --ratio's allocation minimizes (pipeline/ratio.h, docs/allocation.md).
  AllocationObjective allocation = AllocationObjective::kSizeWeighted;
  // --allocation sensitivity: per layer (node name), d(model output error^2)/d(layer output
  // error^2), both relative, as pipeline/sensitivity.h measures it through the runner.
  std::map<std::string, double> layer_sensitivity;
  // --shape. Unset: balanced under -r, auto under --max-error and --ratio.
  std::optional<ShapePolicy> shape;
  std::optional<Plan> plan;  // --plan
  // --calibration DIR: minimize the error on the layers' recorded inputs (pipeline/calibration.h).
  std::string calibration_dir;
  // --compensate (docs/compensation.md): compress in stages in graph order, each stage's layers
  // refitted to the inputs they receive once the earlier stages are compressed, to reproduce the
  // original outputs. Needs calibration_dir and record_activations (CompressFileWithRunner,
  // pipeline/runner_calibration.h, sets both from --calibration-data); factors are then not
  // spilled.
  bool compensate = false;
  // --calibration-regularization: lambda of C_reg = C + lambda * mean(diag C) * I for every
  // calibrated layer (kron/weighted.h; docs/calibration.md). nullopt: kCalibrationRegularization.
  std::optional<double> calibration_regularization;
  // How --allocation auto / --calibration-regularization auto chose the two values above (one
  // line, recorded in provenance as kfc_compress.auto_selection); "" when they were not chosen.
  std::string auto_selection;
  // Runs `model` (its large tensors possibly still in the input's files, readable through the
  // reader) on the calibration inputs and records the named tensors (graph outputs of `model`):
  // for each, its .npy files, whose rows follow the calibration rows in order.
  std::function<StatusOr<std::vector<std::vector<std::string>>>(
      onnx::ModelProto*, io::ExternalDataReader*, const std::vector<std::string>&)>
      record_activations;
  // --objective. Whatever it is, a compressed layer never costs more MACs per input row than the
  // dense layer (K*N) unless allow_slower: the choice is made among the shapes and ranks that
  // are not slower, and a layer where none qualifies is skipped (`slower_than_dense`).
  Objective objective = Objective::kParams;
  bool allow_slower = false;  // --allow-slower-than-dense
  // --node-cost: "slower" judged at batch 1 in ONNX Runtime, where each node a compressed layer
  // adds to the dense one counts as this many MACs per row (kron::ExtraNodes); so a layer too
  // small to gain from a Kronecker form's extra nodes gets the low-rank form (two nodes) under -r
  // with the default shape policy, or stays dense. 0: MACs alone. The default is the command
  // line's, kron::kNodeCostMacs (measured: bench/make_node_chain_model.py).
  int64_t node_cost_macs = kron::kNodeCostMacs;
  // The input's sha256 (64 hex digits), recorded in the output's metadata as
  // kfc_compress.input_sha256 (pipeline/provenance.h); CompressFile sets it from the input file.
  // Empty: not recorded.
  std::string input_sha256;
  bool record_candidates = false;  // put every searched shape into the report (auto only)
  // --ratio: BuildRatioOptions' results reused across runs that differ only in allocation and
  // lambda (pipeline/ratio.h; auto's candidates). nullptr: none.
  RatioOptionsCache* ratio_cache = nullptr;
  // Put the chart data into the report (HTML reports): each compressed layer's spectrum and the
  // model's size-error curve (pipeline/size_error_curve.h).
  bool record_charts = false;
  int64_t min_params = kDefaultMinParams;  // layers with fewer weight elements are left alone
  std::vector<std::string> include;  // POSIX extended regexes searched in node and weight names
  std::vector<std::string> exclude;
  // When false, layers whose factorized form is not smaller are compressed anyway (tests use it to
  // compress at full rank).
  bool skip_unprofitable = true;
  // Quality gates (-1: off). A failed gate is recorded in the report (gates_passed false); the
  // path-based CompressFile then writes no model unless write_on_gate_failure.
  double fail_if_error_above = -1.0;  // any compressed layer's relative error above this
  double fail_if_ratio_above = -1.0;  // the whole model's param_ratio above this
  bool write_on_gate_failure = false;
  // --fail-if-nothing-compressed: a gate that fails when no layer was compressed.
  bool fail_if_nothing_compressed = false;
  // How CompressFile writes the output: --external-data[=FILE], --external-data-threshold, and
  // the automatic switch to external data above protobuf's 2 GiB limit.
  io::SaveOptions save;
  std::function<void(const Progress&)> progress;  // optional: see Progress
  // --threads: layers are read, decided and factorized on this many threads (0: one per core),
  // each with a single BLAS thread, so the output is the same bytes for every value.
  int threads = 0;
  // Reads the weights that PrepareExternalData left in their files (CompressFile sets it). Without
  // it, layers whose weight is external are skipped (`external_data`).
  io::ExternalDataReader* external_reader = nullptr;
  // When set (CompressFile does, for the output's folder), each factorization's constants are
  // encoded as the rewriter stores them as soon as it is done, and those of at least
  // 4 KiB are moved to this file (io/spill.h) and freed, so memory never holds
  // all factors: the returned model refers to them there (write it with SaveModel through a reader
  // given the spill), and LayerResult::factors then has empty a and b. Without it, factors stay in
  // memory, and the model holds them inline.
  io::SpillFile* spill = nullptr;
  // CompressFile only: called with the compressed model (its large tensors possibly still in the
  // input's files or the spill, readable through the reader) and the report, before the gates
  // decide whether it is written, with --dry-run too. An error stops the run with nothing
  // written. pipeline/runner_calibration.h verifies the outputs here.
  std::function<Status(onnx::ModelProto*, io::ExternalDataReader*, report::Report*)> before_write;
  // The input model's checks (check/validate.h), when the caller ran them (CompressFile does);
  // without them CompressModel checks the input itself. Either way they open the report's checks.
  const report::Checks* input_checks = nullptr;
};

// Checks option values: exactly one mode (at most one with a plan), rank >= 1, max_error and gate
// errors in [0, 1], ratios in (0, 1], min_params >= 0, shape dims >= 1, regexes compile, and that
// shape-only plan entries have a mode to go with.
Status ValidateOptions(const Options& options);

struct LayerResult {
  match::LayerCandidate layer;
  // Set when compressed; approximates W (alpha excluded). The factors hold the values stored:
  // float32 values for float32 layers, already rounded to float16 or bfloat16 for those layers (and
  // relative_error is theirs), full doubles for float64 layers (factorized in double).
  std::optional<kron::KronFactors> factors;
  std::vector<float> bias_correction;  // calibration: mu^T (W - W_hat); empty otherwise
};

struct Result {
  onnx::ModelProto model;  // the rewritten model (a copy; the input is not modified)
  report::Report report;   // input/output paths and dry_run are left for the caller
  std::vector<LayerResult> layers;
};

// Compresses `model` per `options`. The input and the output have passed CheckModel (the report's
// `checks` says how). Errors: invalid options, an input model the checker rejects, a weight that
// cannot be decoded, LAPACK failure.
StatusOr<Result> CompressModel(const onnx::ModelProto& model, const Options& options);
// The same, rewriting `model` in place of a copy (no second copy of its weights in memory).
StatusOr<Result> CompressModel(onnx::ModelProto&& model, const Options& options);

// Full check of a model (check::CheckModel): onnx::checker plus strict shape inference when the
// ONNX library knows every node's schema at the model's opset; else structure, the checker node by
// node where the schemas apply, and shape inference through those. `what` names the model in the
// message ("input model 'a.onnx'").
Status CheckModel(const onnx::ModelProto& model, const std::string& what);

// Path-based twin: load `input`, check its external data (PrepareExternalData: the large tensors
// stay in their files and are read one layer at a time), compress, write `output` atomically
// (with external data per options.save; both files or neither). Nothing is written with
// dry_run, on any error, or when a gate failed (unless write_on_gate_failure); the report says
// whether the output was written (output_written) and carries the paths as given.
StatusOr<report::Report> CompressFile(const std::string& input, const std::string& output,
                                      const Options& options, bool dry_run);

// --calibration-probe: writes the probe model (pipeline/calibration.h) to `probe` and its sidecar
// next to it, both atomically. Returns a one-line summary for stdout.
// With a `group`, both are staged there instead (see io::CommitGroup); with `files`, the input's
// external data files are checked against the run's writes before any work.
StatusOr<std::string> WriteCalibrationProbe(const std::string& input, const std::string& probe,
                                            io::CommitGroup* group = nullptr,
                                            io::RunFiles* files = nullptr);

}  // namespace kfc::pipeline
