// SPDX-License-Identifier: Apache-2.0
// One Gemm/MatMul as CompressModel's phases see it: the candidate, and the plain outcome of each
// phase (select, read-check-and-decide, factorize), from which pipeline/layer_report builds the
// report once, at the end. Internal to pipeline/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kfc/kron/factorize.h"
#include "kfc/kron/shape_search.h"
#include "kfc/kron/weighted.h"
#include "kfc/match/match.h"
#include "kfc/pipeline/calibration.h"
#include "kfc/pipeline/compress.h"
#include "kfc/rewrite/factor_encoding.h"

namespace kfc::pipeline {

enum class Budget { kRank, kMaxError, kRatio, kSkip };

// What one layer is asked for, by the plan or the command line.
struct Directive {
  Budget budget = Budget::kSkip;
  int64_t rank = 0;
  double max_error = -1.0;
  ShapePolicy shape;
  bool shape_given = false;  // `shape` is the user's (--shape, or the plan entry's), not a default
  int plan_entry = -1;
  std::string decided_by;  // "rank", "max_error", "ratio" or "plan"
};

// How one layer will be compressed, or why not.
struct Decision {
  bool compress = false;
  kron::KronShape shape;
  int64_t rank = 0;
  int64_t compared = 1;
  std::optional<kron::ShapeSearchResult> search;  // --shape auto under -r or --max-error
  std::string skip_reason, skip_detail;
  std::string note;  // why the shape is not the policy's (LayerReport.shape_note); "" when it is
};

Decision SkipDecision(const std::string& reason, const std::string& detail);

// A compressed layer's factorization, as emitted.
struct Factored {
  kron::KronShape shape;
  int64_t rank = 0;  // the decided rank, or more under --max-error (one more term per miss)
  kron::ContractionOrder order = kron::ContractionOrder::kBFirst;
  double relative_error = 0;
  // Calibrated layers (data_error >= 0): the data-weighted errors of the factors kept and of the
  // weight-only factors, and whether those were kept.
  double data_error = -1;
  double weight_only_data_error = -1;
  bool used_weight_only = false;
  // Whether an earlier layer emits identical constants (rewrite::FactorIdentity::Key), and its
  // node name (which may be empty).
  bool shares_factors = false;
  std::string shares_factors_with;
  // Options::record_charts: the singular values the factorization computed, over ||W||_F (at most
  // 512), and whether they are all of them (report::Spectrum).
  std::vector<double> spectrum;
  bool spectrum_complete = false;
};

// --compensate: a compressed layer's stage and, when refitted on its stage's inputs X~, its
// output errors there (kron/compensate.h).
struct Compensation {
  int stage = 0;  // 1 + the highest stage of the compressed layers upstream of its input
  bool refit = false;
  double error = -1;        // the factors written, on X~ against the original output
  double plain_error = -1;  // the plain calibrated factors, the same way
  bool used_plain = false;
  std::string note;  // why a layer was not refitted
};

struct LayerState {
  const match::LayerCandidate* c = nullptr;
  // Select, then read and check: still a candidate (eligible, through the filters and min-params,
  // its weight readable and finite).
  bool considered = false;
  // Why the layer stays dense (any phase); empty while it is not skipped.
  std::string skip_reason, skip_detail;
  // Decide (a layer whose weight is not finite leaves it undecided).
  bool directed = false;  // dir holds the layer's directive
  Directive dir;
  Decision dec;
  // --ratio: its policy offers no (shape, rank) besides the dense weight (pipeline/ratio.h), so
  // it stays out of the budget and of the compressible parameters, like a layer under min-params.
  bool dense_only = false;
  // Decided without its weight (-r with a single policy shape) and factorized: the weight is read
  // once, in factorize, and checked to be finite there (a NaN or Inf then skips it as here).
  bool check_in_factorize = false;
  std::optional<kron::InputStats> stats;  // --calibration data for this layer's input
  ParkedStats stats_parked;  // where its large arrays are, when parked (pipeline/calibration.h)
  bool calibrated = false;
  std::string calibration_note;
  // Factorize: the decision was taken up (shape, rank and search reported), and when compressed
  // its factorization.
  bool shaped = false;
  std::optional<Factored> factored;
  std::optional<kron::KronFactors> factors;  // as LayerResult::factors
  std::vector<float> bias_correction;
  std::optional<Compensation> compensation;

  void Skip(std::string reason, std::string detail) {
    skip_reason = std::move(reason);
    skip_detail = std::move(detail);
  }
  // A layer whose weight holds NaN or Inf (`why`: where) leaves the pipeline as if never decided.
  void SkipNonFinite(const std::string& why);
};

// The statistics that rate shapes and ranks: none for Kronecker-factored ones, which hold for one
// split of K only (those layers are decided as without calibration, then factorized with them
// when the decided shape has that split).
const kron::InputStats* StatsOf(const LayerState& s);

// Whether layer s is factorized with its calibration statistics at `shape`.
bool Calibrated(const LayerState& s, const kron::KronShape& shape);

bool Profitable(const Options& o, const match::LayerCandidate& c, const Decision& d);

// The weight as a layer factorizes it: source, orientation and, when calibrated, the input data
// (its value and whether columns are the samples). Layers with equal keys factorize the same.
std::string WeightKey(const LayerState& s);

// The identity of layer s's constants at `shape` and `rank` (rewrite/factor_encoding.h).
rewrite::FactorIdentity IdentityOf(const LayerState& s, const kron::KronShape& shape, int64_t rank);

// Errors go into the report at 10 significant digits: the last digits of a double vary with the
// BLAS kernel the CPU selects, and reports should be stable across machines.
double RoundSignificant(double v);
std::string ShapeText(const kron::KronShape& s);
std::string Num(double v);  // %.6g

}  // namespace kfc::pipeline
