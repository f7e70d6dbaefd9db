// The whole job: match, factorize, rewrite, validate, report. No argv parsing here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/kron/factorize.h"
#include "kfc/kron/shape_search.h"
#include "kfc/match/match.h"
#include "kfc_report.pb.h"
#include "onnx/onnx_pb.h"

namespace kfc::pipeline {

inline constexpr int64_t kDefaultMinParams = 4096;
// Newest ONNX IR version accepted (checked as IR 8, the newest ONNX 1.12 knows; see CheckModel).
inline constexpr int64_t kMaxIrVersion = 10;
// Up to this many weight elements (1024 x 1024), the default shape is the least-error one among
// the shapes tied for fewest parameters per term (one singular-value pass each); above it, the
// squarest of them (the exact search would cost several full SVDs per layer).
inline constexpr int64_t kTieSearchMaxElements = int64_t{1} << 20;

struct Options {
  int64_t rank = 0;  // Kronecker terms per layer, >= 1; clamped per layer to min(k1*n1, k2*n2)
  // Forced A-factor shape k1 x n1, used where k1 | K and n1 | N (and not trivial); elsewhere the
  // default shape (fewest parameters per term).
  std::optional<std::pair<int64_t, int64_t>> forced_shape;
  // --shape auto: search every divisor pair (kron::SearchShape) under the parameter budget the
  // balanced shape uses at `rank`; the winner's rank follows from that budget.
  bool auto_shape = false;
  bool record_candidates = false;          // put every searched shape into the report (auto only)
  int64_t min_params = kDefaultMinParams;  // layers with fewer weight elements are left alone
  std::vector<std::string> include;  // POSIX extended regexes searched in node and weight names
  std::vector<std::string> exclude;
  // When false, layers whose factorized form is not smaller are compressed anyway (tests use it to
  // compress at full rank).
  bool skip_unprofitable = true;
};

// Checks option values (rank >= 1, min_params >= 0, shape >= 1, regexes compile).
Status ValidateOptions(const Options& options);

struct LayerResult {
  match::LayerCandidate layer;
  std::optional<kron::KronFactors> factors;  // set when compressed; approximates W (alpha excluded)
};

struct Result {
  onnx::ModelProto model;  // the rewritten model (a copy; the input is not modified)
  report::Report report;   // input/output paths and dry_run are left for the caller
  std::vector<LayerResult> layers;
};

// Compresses `model` per `options`. The output has passed the ONNX checker and strict shape
// inference. Errors: invalid options, an input model the checker rejects, a weight that cannot be
// decoded, LAPACK failure.
StatusOr<Result> CompressModel(const onnx::ModelProto& model, const Options& options);

// Full check of a model: onnx::checker plus shape inference with type checks and errors on.
// `what` names the model in the message ("input model 'a.onnx'").
Status CheckModel(const onnx::ModelProto& model, const std::string& what);

// Path-based twin: load `input`, compress, write `output` atomically (nothing is written when
// dry_run is set or on any error). The report carries the paths as given.
StatusOr<report::Report> CompressFile(const std::string& input, const std::string& output,
                                      const Options& options, bool dry_run);

}  // namespace kfc::pipeline
