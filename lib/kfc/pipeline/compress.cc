#include "kfc/pipeline/compress.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <type_traits>

#include "kfc/core/logging.h"
#include "kfc/core/parallel.h"
#include "kfc/io/model_io.h"
#include "kfc/kron/blas_threads.h"
#include "kfc/kron/weighted.h"
#include "kfc/pipeline/allocate.h"
#include "kfc/pipeline/calibration.h"
#include "kfc/pipeline/name_filter.h"
#include "kfc/report/render.h"
#include "kfc/rewrite/kron_layer.h"
#include "kfc/tensor/tensor.h"
#include "onnx/checker.h"
#include "onnx/shape_inference/implementation.h"

namespace kfc::pipeline {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

const onnx::TensorProto* FindInitializer(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& t : g.initializer()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

// The tensor holding the layer's weight data: an initializer (of the layer's graph or an
// enclosing one) or a Constant node's `value`. nullptr when the candidate does not fit the model.
const onnx::TensorProto* WeightSource(const onnx::ModelProto& model,
                                      const match::LayerCandidate& c) {
  if (c.constant_node >= 0) {
    const onnx::GraphProto* g = match::GraphAt(model, c.scope, c.scope.size());
    if (g == nullptr || c.constant_node >= g->node_size()) return nullptr;
    for (const auto& a : g->node(c.constant_node).attribute()) {
      if (a.name() == "value" && a.has_t()) return &a.t();
    }
    return nullptr;
  }
  const onnx::GraphProto* g = match::GraphAt(model, c.scope, c.source_depth);
  return g != nullptr ? FindInitializer(*g, c.weight_tensor_name) : nullptr;
}

// Where the pipeline reads layers' weights: the model, and for tensors PrepareExternalData left in
// their files, `reader` (one weight at a time, so memory holds only the weights being worked on).
struct Weights {
  const onnx::ModelProto& model;
  io::ExternalDataReader* reader = nullptr;

  // False for a weight stored externally with no reader to read it (a library caller's model
  // with external tensors it did not resolve).
  bool Readable(const match::LayerCandidate& c) const {
    const onnx::TensorProto* t = WeightSource(model, c);
    return t != nullptr && (reader != nullptr || !tensor::HasExternalData(*t));
  }

  // W as the K x N row-major matrix of y = x W; Gemm with transB=1 stores it as [N, K]. As float32,
  // or as float64 for float64 layers (their factorization reads W unrounded).
  template <typename T = float>
  StatusOr<std::vector<T>> Matrix(const match::LayerCandidate& c) const {
    const onnx::TensorProto* t = WeightSource(model, c);
    if (t == nullptr) return Internal("weight '" + c.weight_name + "' disappeared");
    onnx::TensorProto read;  // an external tensor as if stored inline
    if (tensor::HasExternalData(*t)) {
      if (reader == nullptr) {
        return FailedPrecondition("weight '" + c.weight_name + "' is external");
      }
      read.set_name(t->name());
      read.set_data_type(t->data_type());
      *read.mutable_dims() = t->dims();
      KFC_ASSIGN_OR_RETURN(*read.mutable_raw_data(),
                           reader->Read(*t, "weight '" + c.weight_name + "'"));
      t = &read;
    }
    std::vector<T> stored;
    if constexpr (std::is_same_v<T, double>) {
      KFC_ASSIGN_OR_RETURN(stored, tensor::DecodeToDouble(*t));
    } else {
      KFC_ASSIGN_OR_RETURN(stored, tensor::DecodeToFloat(*t));
    }
    if (!c.trans_b) return stored;
    return tensor::Transpose(stored, c.n, c.k);
  }
};

// Runs fn(i) for i in [0, n) on o.threads threads with one BLAS thread each (core/parallel.h): the
// results do not depend on the number of threads.
Status RunParallel(const Options& o, size_t n, const std::function<Status(size_t)>& fn) {
  kron::ScopedBlasThreads blas(1);
  return ParallelFor(static_cast<int64_t>(n), ResolveThreads(o.threads),
                     [&](int64_t i) { return fn(static_cast<size_t>(i)); });
}

// Errors go into the report at 10 significant digits: the last digits of a double vary with the
// BLAS kernel the CPU selects, and reports should be stable across machines.
double RoundSignificant(double v) {
  if (v == 0.0 || !std::isfinite(v)) return v;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9e", v);
  return std::strtod(buf, nullptr);
}

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

struct ModelTotals {
  double params = 0, bytes = 0;
};

ModelTotals CountInitializers(const onnx::GraphProto& g) {
  ModelTotals t;
  for (const auto& init : g.initializer()) {
    auto n = tensor::NumElements(init.dims(), init.name());
    if (n.ok()) t.params += static_cast<double>(*n);
    t.bytes += static_cast<double>(tensor::StoredDataBytes(init));
  }
  return t;
}

void Skip(report::LayerReport* lr, const std::string& reason, const std::string& detail) {
  lr->set_compressed(false);
  lr->set_skip_reason(reason);
  lr->set_skip_detail(report::ToValidUtf8(detail));
}

std::string ShapeText(const kron::KronShape& s) {
  return std::to_string(s.k1) + "x" + std::to_string(s.n1) + " (x) " + std::to_string(s.k2) + "x" +
         std::to_string(s.n2);
}

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

enum class Budget { kRank, kMaxError, kRatio, kSkip };

// What one layer is asked for, by the plan or the command line.
struct Directive {
  Budget budget = Budget::kSkip;
  int64_t rank = 0;
  double max_error = -1.0;
  ShapePolicy shape;
  int plan_entry = -1;
  std::string decided_by;  // "rank", "max_error", "ratio" or "plan"
};

Directive Resolve(const Options& o, const match::LayerCandidate& c) {
  Directive d;
  const PlanEntry* entry = nullptr;
  if (o.plan) {
    d.plan_entry = o.plan->MatchLayer(c);
    if (d.plan_entry >= 0) entry = &o.plan->entries()[static_cast<size_t>(d.plan_entry)];
  }
  if (entry != nullptr && entry->SetsBudget()) {
    d.decided_by = "plan";
    d.budget = entry->skip ? Budget::kSkip : entry->rank > 0 ? Budget::kRank : Budget::kMaxError;
    d.rank = entry->rank;
    d.max_error = entry->max_error;
  } else if (o.rank > 0) {
    d.decided_by = "rank";
    d.budget = Budget::kRank;
    d.rank = o.rank;
  } else if (o.max_error >= 0) {
    d.decided_by = "max_error";
    d.budget = Budget::kMaxError;
    d.max_error = o.max_error;
  } else if (o.ratio > 0) {
    d.decided_by = "ratio";
    d.budget = Budget::kRatio;
  } else {
    d.decided_by = "plan";  // a plan with no mode: layers it does not name stay dense
  }
  ShapePolicy fallback;
  if (d.budget != Budget::kRank) fallback.kind = ShapePolicy::Kind::kAuto;
  d.shape = entry != nullptr && entry->shape ? *entry->shape : o.shape.value_or(fallback);
  return d;
}

// The shapes a (non-auto) policy allows for the layer: balanced gives the shapes tied for fewest
// parameters per term (only the squarest above kTieSearchMaxElements), a fixed shape that does
// not divide the layer falls back to balanced (*fell_back set). Empty when no non-trivial shape
// exists.
std::vector<kron::KronShape> PolicyShapesQuiet(const ShapePolicy& p, const match::LayerCandidate& c,
                                               bool* fell_back) {
  *fell_back = false;
  const std::vector<kron::KronShape> all = kron::EnumerateShapes(c.k, c.n);
  auto allowed = [&](const kron::KronShape& s) {
    return std::find(all.begin(), all.end(), s) != all.end();
  };
  switch (p.kind) {
    case ShapePolicy::Kind::kAuto:
      return all;
    case ShapePolicy::Kind::kLowRank: {
      const kron::KronShape s = kron::LowRankShape(c.k, c.n);
      if (allowed(s)) return {s};
      return {};
    }
    case ShapePolicy::Kind::kFixed: {
      if (c.k % p.k1 == 0 && c.n % p.n1 == 0) {
        const kron::KronShape s{p.k1, p.n1, c.k / p.k1, c.n / p.n1};
        if (allowed(s)) return {s};
      }
      *fell_back = true;
      break;
    }
    case ShapePolicy::Kind::kBalanced:
      break;
  }
  std::vector<kron::KronShape> tied = kron::TiedDefaultShapes(c.k, c.n);
  if (tied.size() > 1 && c.k * c.n > kTieSearchMaxElements) tied.resize(1);
  return tied;
}

// PolicyShapesQuiet, with a warning when a fixed shape falls back to balanced.
std::vector<kron::KronShape> PolicyShapes(const ShapePolicy& p, const match::LayerCandidate& c) {
  bool fell_back = false;
  std::vector<kron::KronShape> shapes = PolicyShapesQuiet(p, c, &fell_back);
  if (fell_back) {
    Logger().warn(
        "layer '{}': --shape {} {} {}x{}; using the balanced shape", c.node_name, p.Name(),
        c.k % p.k1 == 0 && c.n % p.n1 == 0 ? "is trivial for" : "does not divide", c.k, c.n);
  }
  return shapes;
}

// How one layer will be compressed, or why not.
struct Decision {
  bool compress = false;
  kron::KronShape shape;
  int64_t rank = 0;
  int64_t compared = 1;
  std::optional<kron::ShapeSearchResult> search;  // --shape auto under -r or --max-error
  std::string skip_reason, skip_detail;
};

Decision SkipDecision(const std::string& reason, const std::string& detail) {
  Decision d;
  d.skip_reason = reason;
  d.skip_detail = detail;
  return d;
}

Decision FromSearch(kron::ShapeSearchResult search) {
  Decision d;
  d.compress = true;
  d.shape = search.shape;
  d.rank = search.rank;
  d.compared = 0;
  for (const auto& cand : search.candidates) d.compared += cand.rank > 0;
  d.search = std::move(search);
  return d;
}

const char kNoShape[] = "no non-trivial Kronecker shape divides the weight";

// The spectrum that rates `shape`: of W's rearrangement, or with calibration statistics of the
// whitened weight's (kron::Whiten), whose tail energy is the data-weighted error (exact for the
// low-rank shapes, through the Kronecker-factored covariance for the others).
StatusOr<std::vector<double>> Spectrum(const match::LayerCandidate& c, const std::vector<float>& w,
                                       const kron::InputStats* stats, const kron::KronShape& shape,
                                       double* norm) {
  if (stats == nullptr) return kron::SingularValues(w.data(), c.k, c.n, shape, norm);
  KFC_ASSIGN_OR_RETURN(kron::Whitened white, kron::Whiten(w.data(), c.k, c.n, shape, *stats));
  double whitened_norm = 0.0;
  KFC_ASSIGN_OR_RETURN(std::vector<double> s,
                       kron::SingularValues(white.w.data(), c.k, c.n, shape, &whitened_norm));
  // Scaled so that sqrt(tail energy) / norm bounds the data-weighted error from above: exact for
  // the low-rank shapes, through beta for the Kronecker-factored metric of the others.
  for (double& v : s) v *= std::sqrt(white.beta);
  *norm = std::sqrt(white.energy);
  return s;
}

// -r --shape auto with calibration: every shape at the largest rank the budget allows, rated by its
// whitened spectrum (SearchShape's pruning works on one matrix; each shape whitens differently).
StatusOr<Decision> DecideAutoRankCalibrated(int64_t max_params, const match::LayerCandidate& c,
                                            const std::vector<float>& w,
                                            const kron::InputStats& stats) {
  Decision best;
  double best_error = 2.0;
  best.compared = 0;
  for (const auto& shape : kron::EnumerateShapes(c.k, c.n)) {
    const int64_t rank = std::min(max_params / shape.ParamsPerTerm(), shape.MaxRank());
    if (rank < 1) continue;
    ++best.compared;
    double norm = 0.0;
    KFC_ASSIGN_OR_RETURN(std::vector<double> s, Spectrum(c, w, &stats, shape, &norm));
    const double error = kron::SpectrumError(s, rank, norm);
    if (error < best_error * (1.0 - 1e-9) - 1e-15) {
      best_error = error;
      best.compress = true;
      best.shape = shape;
      best.rank = rank;
    }
  }
  if (!best.compress) {
    return SkipDecision("no_factor_shape",
                        "no shape fits a budget of " + std::to_string(max_params) + " parameters");
  }
  return best;
}

// -r with --shape auto: the budget is what the balanced shape (fewest parameters per term,
// squarest) uses at the requested rank, so auto never makes a layer bigger than balanced would.
StatusOr<Decision> DecideAutoRank(int64_t rank, const match::LayerCandidate& c,
                                  const std::vector<float>& w, const kron::InputStats* stats) {
  auto balanced = kron::DefaultShape(c.k, c.n);
  if (!balanced.ok()) return SkipDecision("no_factor_shape", kNoShape);
  kron::SearchBudget budget;
  budget.max_params = std::min(rank, balanced->MaxRank()) * balanced->ParamsPerTerm();
  if (stats != nullptr) return DecideAutoRankCalibrated(budget.max_params, c, w, *stats);
  KFC_ASSIGN_OR_RETURN(kron::ShapeSearchResult search,
                       kron::SearchShape(w.data(), c.k, c.n, budget));
  if (!search.found) {
    return SkipDecision("no_factor_shape", "no shape fits a budget of " +
                                               std::to_string(budget.max_params) + " parameters");
  }
  return FromSearch(std::move(search));
}

// -r: the policy's shape at min(rank, MaxRank); among tied balanced shapes the least error.
StatusOr<Decision> DecideRank(const Directive& dir, const match::LayerCandidate& c,
                              const std::vector<float>& w, const kron::InputStats* stats) {
  if (dir.shape.kind == ShapePolicy::Kind::kAuto) return DecideAutoRank(dir.rank, c, w, stats);
  const std::vector<kron::KronShape> shapes = PolicyShapes(dir.shape, c);
  if (shapes.empty()) return SkipDecision("no_factor_shape", kNoShape);
  Decision best;
  best.compress = true;
  best.shape = shapes.front();
  // Tied shapes share MaxRank(), so the rank does not depend on which one wins.
  best.rank = std::min(dir.rank, shapes.front().MaxRank());
  best.compared = static_cast<int64_t>(shapes.size());
  if (shapes.size() == 1) return best;
  double best_error = 2.0;
  for (const auto& shape : shapes) {
    double norm = 0.0;
    KFC_ASSIGN_OR_RETURN(std::vector<double> s, Spectrum(c, w, stats, shape, &norm));
    const double error = kron::SpectrumError(s, best.rank, norm);
    Logger().trace("layer '{}': shape {} error {:.6f} at rank {}", c.node_name, ShapeText(shape),
                   error, best.rank);
    // Shapes whose errors agree to rounding (e.g. K x 1 (x) 1 x N and 1 x N (x) K x 1, whose
    // rearrangements are transposes) must not be told apart by BLAS threading noise: only a
    // clearly smaller error displaces the earlier (squarer) shape.
    if (error < best_error * (1.0 - 1e-9) - 1e-15) {
      best_error = error;
      best.shape = shape;
    }
  }
  return best;
}

// The largest rank of `shape` that stores fewer parameters than the dense K x N weight.
int64_t MaxProfitableRank(const kron::KronShape& shape, int64_t dense) {
  return std::min(shape.MaxRank(), (dense - 1) / shape.ParamsPerTerm());
}

// --max-error: the fewest parameters whose exact error meets the target, over the policy's shapes
// (kron::SearchShape for auto) and every profitable rank.
StatusOr<Decision> DecideMaxError(const Directive& dir, const match::LayerCandidate& c,
                                  const std::vector<float>& w, const kron::InputStats* stats) {
  const int64_t dense = c.k * c.n;
  const std::string unmet = "no shape reaches relative error <= " + Num(dir.max_error) +
                            " with fewer than " + std::to_string(dense) + " parameters";
  if (dir.shape.kind == ShapePolicy::Kind::kAuto && stats == nullptr) {
    kron::SearchBudget budget;
    budget.max_error = dir.max_error;
    KFC_ASSIGN_OR_RETURN(kron::ShapeSearchResult search,
                         kron::SearchShape(w.data(), c.k, c.n, budget));
    if (!search.found) return SkipDecision("error_target_unmet", unmet);
    return FromSearch(std::move(search));
  }
  const std::vector<kron::KronShape> shapes = PolicyShapes(dir.shape, c);
  if (shapes.empty()) return SkipDecision("no_factor_shape", kNoShape);
  Decision best;
  best.compared = static_cast<int64_t>(shapes.size());
  double best_error = 2.0, closest = 2.0;
  for (const auto& shape : shapes) {
    double norm = 0.0;
    KFC_ASSIGN_OR_RETURN(std::vector<double> s, Spectrum(c, w, stats, shape, &norm));
    for (int64_t r = 1; r <= MaxProfitableRank(shape, dense); ++r) {
      const double error = kron::SpectrumError(s, r, norm);
      closest = std::min(closest, error);
      if (error > dir.max_error) continue;
      const int64_t params = r * shape.ParamsPerTerm();
      const int64_t best_params = best.rank * best.shape.ParamsPerTerm();
      if (!best.compress || params < best_params ||
          (params == best_params && error < best_error * (1.0 - 1e-9) - 1e-15)) {
        best.compress = true;
        best.shape = shape;
        best.rank = r;
        best_error = error;
      }
      break;
    }
  }
  if (!best.compress) {
    return SkipDecision(
        "error_target_unmet",
        unmet + (closest <= 1.0 ? " (least error with a saving: " + Num(closest) + ")" : ""));
  }
  return best;
}

// One --ratio allocation unit: the layers sharing one weight in one orientation, decided
// together; each option is a (shape, rank) or, last, the dense weight.
struct RatioUnit {
  std::vector<size_t> layers;  // indices into the pipeline's layer list
  int64_t dense = 0;           // K * N
  std::vector<std::pair<kron::KronShape, int64_t>> choices;  // parallel to group.options[:-1]
  AllocGroup group;
};

// Options of a unit from the exact spectra of the policy's shapes: every profitable rank.
Status BuildRatioOptions(const ShapePolicy& policy, const match::LayerCandidate& c,
                         const std::vector<float>& w, const kron::InputStats* stats,
                         RatioUnit* unit) {
  unit->dense = c.k * c.n;
  const double weight = static_cast<double>(unit->dense);
  for (const auto& shape : PolicyShapes(policy, c)) {
    double norm = 0.0;
    KFC_ASSIGN_OR_RETURN(std::vector<double> s, Spectrum(c, w, stats, shape, &norm));
    const int64_t r_max = MaxProfitableRank(shape, unit->dense);
    // Squared error for every rank at once: the energy left after the first r values.
    double kept = 0.0, total = 0.0;
    for (double v : s) total += v * v;
    const double denominator = norm * norm;
    for (int64_t r = 1; r <= r_max; ++r) {
      const double sv = r - 1 < static_cast<int64_t>(s.size()) ? s[static_cast<size_t>(r - 1)] : 0;
      kept += sv * sv;
      const double e2 = denominator > 0 ? std::max(0.0, total - kept) / denominator : 0.0;
      unit->choices.push_back({shape, r});
      unit->group.options.push_back({r * shape.ParamsPerTerm(), weight * RoundSignificant(e2)});
    }
  }
  unit->group.options.push_back({unit->dense, 0.0});
  return Status::Ok();
}

// Reports a phase's progress through Options::progress (a no-op when that is empty). Done may be
// called from worker threads; the callback runs under a lock, and only Finish reports the phase
// complete.
class ProgressMeter {
 public:
  ProgressMeter(const Options& o, std::string phase,
                const std::vector<const match::LayerCandidate*>& layers)
      : callback_(o.progress), start_(Clock::now()) {
    p_.phase = std::move(phase);
    p_.layers_total = static_cast<int64_t>(layers.size());
    for (const auto* c : layers) {
      bytes_.push_back(static_cast<double>(c->k) * static_cast<double>(c->n) *
                       static_cast<double>(tensor::DTypeSize(c->dtype)));
      p_.bytes_total += bytes_.back();
    }
    Report();
  }
  // Layer i is done.
  void Done(size_t i) {
    if (!callback_) return;
    std::lock_guard<std::mutex> lock(mu_);
    ++p_.layers_done;
    p_.bytes_done += bytes_[i];
    if (p_.layers_done < p_.layers_total) Report();
  }
  void Finish() {
    if (!callback_) return;
    p_.layers_done = p_.layers_total;
    p_.bytes_done = p_.bytes_total;
    Report();
  }

 private:
  void Report() {
    if (!callback_) return;
    p_.elapsed_s = SecondsSince(start_);
    callback_(p_);
  }

  const std::function<void(const Progress&)>& callback_;
  Clock::time_point start_;
  std::mutex mu_;
  Progress p_;
  std::vector<double> bytes_;
};

// Everything the pipeline knows about one Gemm/MatMul while it works.
struct LayerState {
  const match::LayerCandidate* c = nullptr;
  report::LayerReport* lr = nullptr;
  bool considered = false;  // passed eligibility, filters, min-params and the finite check
  Directive dir;
  Decision dec;
  std::optional<kron::InputStats> stats;  // --calibration data for this layer's input
};

// The statistics that rate shapes and ranks: none for Kronecker-factored ones, which hold for one
// split of K only (those layers are decided as without calibration, then factorized with them
// when the decided shape has that split).
const kron::InputStats* StatsOf(const LayerState& s) {
  return s.stats && !s.stats->factored() ? &*s.stats : nullptr;
}

// Layer s's calibration statistics (Calibration::Stats, Kronecker-factored by k1 when K is too
// large), recorded in its report: calibrated, or the note saying why not.
Status LoadStats(Calibration* calibration, int64_t k1, LayerState* s) {
  const match::LayerCandidate& c = *s->c;
  std::string note;
  auto stats = calibration->Stats(c, k1, &note);
  if (!stats.ok()) return stats.status().WithContext("layer '" + c.node_name + "'");
  s->stats = std::move(*stats);
  s->lr->set_calibrated(s->stats.has_value());
  if (!s->stats) {
    s->lr->set_calibration_note("weight-only: " + note);
    Logger().warn("layer '{}': calibration falls back to weight-only: {}", c.node_name, note);
  } else if (!note.empty()) {
    s->lr->set_calibration_note(note);
  }
  return Status::Ok();
}

// Whether layer s is factorized with its calibration statistics at `shape`.
bool Calibrated(const LayerState& s, const kron::KronShape& shape) {
  return s.stats && (!s.stats->factored() || s.stats->kf_k1 == shape.k1);
}

// Whether deciding layer s reads its weight: comparing shapes or ranks does; -r at a policy that
// allows one shape does not (the factorization reads it later).
bool NeedsWeight(const LayerState& s) {
  bool fell_back = false;
  switch (s.dir.budget) {
    case Budget::kRank:
      return s.dir.shape.kind == ShapePolicy::Kind::kAuto ||
             PolicyShapesQuiet(s.dir.shape, *s.c, &fell_back).size() > 1;
    case Budget::kMaxError:
      return true;
    default:
      return false;
  }
}

// Indices of the layers still considered, in layer order.
std::vector<size_t> ConsideredLayers(const std::vector<LayerState>& states) {
  std::vector<size_t> out;
  for (size_t i = 0; i < states.size(); ++i) {
    if (states[i].considered) out.push_back(i);
  }
  return out;
}

// The candidates of states[i] for each i of `indices` (what a ProgressMeter counts).
std::vector<const match::LayerCandidate*> CandidatesAt(const std::vector<LayerState>& states,
                                                       const std::vector<size_t>& indices) {
  std::vector<const match::LayerCandidate*> out;
  for (size_t i : indices) out.push_back(states[i].c);
  return out;
}

// The weight as a layer factorizes it: source, orientation and, when calibrated, the input data
// (its value and whether columns are the samples). Layers with equal keys factorize the same.
std::string WeightKey(const LayerState& s) {
  const match::LayerCandidate& c = *s.c;
  return c.source_value + "|" + (c.trans_b ? "t" : "n") +
         (s.stats ? "|calibrated:" + c.input_name + (ColumnSamples(c) ? "|columns" : "") : "");
}

// The key under which identical factors are shared: same weight key, shape and rank (and
// precision: float64 layers are factorized in double).
std::string FactorKey(const LayerState& s, const kron::KronShape& shape, int64_t rank) {
  return WeightKey(s) + "|" + std::to_string(shape.k1) + "x" + std::to_string(shape.n1) + "|" +
         std::to_string(rank) + (s.c->dtype == onnx::TensorProto::DOUBLE ? "|float64" : "");
}

bool Profitable(const Options& o, const match::LayerCandidate& c, const Decision& d) {
  return !o.skip_unprofitable || d.rank * d.shape.ParamsPerTerm() < c.k * c.n;
}

// Parameters of the compressible weights after compression, each distinct weight counted once:
// its dense copy if a considered layer leaves it dense, plus each distinct set of factors.
struct CompressibleCount {
  std::map<std::string, int64_t> dense;  // source value -> K*N
  std::set<std::string> dense_kept;
  std::map<std::string, int64_t> factors;  // factor key -> parameters

  void Add(const Options& o, const LayerState& s) {
    const match::LayerCandidate& c = *s.c;
    dense[c.source_value] = c.k * c.n;
    if (s.dec.compress && Profitable(o, c, s.dec)) {
      factors[FactorKey(s, s.dec.shape, s.dec.rank)] = s.dec.rank * s.dec.shape.ParamsPerTerm();
    } else {
      dense_kept.insert(c.source_value);
    }
  }
  double Before() const {
    double sum = 0;
    for (const auto& [name, n] : dense) sum += static_cast<double>(n);
    return sum;
  }
  double After() const {
    double sum = 0;
    for (const auto& name : dense_kept) sum += static_cast<double>(dense.at(name));
    for (const auto& [key, p] : factors) sum += static_cast<double>(p);
    return sum;
  }
};

// --ratio: the layers the ratio decides are grouped by weight, each group's options come from its
// spectra, and Allocate spreads what the budget leaves after the other (pinned) layers.
Status AllocateRatio(const Options& o, const Weights& weights, std::vector<LayerState>* states,
                     report::Report* rep) {
  std::vector<RatioUnit> units;
  std::map<std::string, size_t> unit_of;
  CompressibleCount all, pinned;
  for (size_t i = 0; i < states->size(); ++i) {
    const LayerState& s = (*states)[i];
    if (!s.considered) continue;
    all.dense[s.c->source_value] = s.c->k * s.c->n;
    if (s.dir.budget != Budget::kRatio) {
      pinned.Add(o, s);
      continue;
    }
    auto [it, fresh] = unit_of.emplace(WeightKey(s), units.size());
    if (fresh) units.emplace_back();
    units[it->second].layers.push_back(i);
  }
  if (units.empty()) return Status::Ok();
  KFC_RETURN_IF_ERROR(RunParallel(o, units.size(), [&](size_t u) -> Status {
    const LayerState& s = (*states)[units[u].layers.front()];
    auto w = weights.Matrix(*s.c);
    Status built =
        w.ok() ? BuildRatioOptions(s.dir.shape, *s.c, *w, StatsOf(s), &units[u]) : w.status();
    return built.WithContext("layer '" + s.c->node_name + "'");
  }));
  const double before = all.Before();
  const int64_t target = static_cast<int64_t>(std::floor(o.ratio * before + 1e-9));
  const int64_t pinned_after = static_cast<int64_t>(pinned.After());
  std::vector<AllocGroup> groups;
  for (const auto& u : units) groups.push_back(u.group);
  const Allocation alloc = Allocate(groups, target - pinned_after);
  Logger().info("--ratio {}: {} of {} compressible parameters allocated to {} weights ({})",
                o.ratio, alloc.params + pinned_after, target, units.size(),
                alloc.met ? "target met" : "target missed");
  for (size_t u = 0; u < units.size(); ++u) {
    const RatioUnit& unit = units[u];
    const size_t pick = alloc.choice[u];
    for (size_t i : unit.layers) {
      Decision& d = (*states)[i].dec;
      if (pick + 1 == unit.group.options.size()) {
        d = SkipDecision("kept_dense", unit.choices.empty()
                                           ? "no Kronecker shape saves parameters"
                                           : "the --ratio allocation keeps this weight dense");
        continue;
      }
      d.compress = true;
      d.shape = unit.choices[pick].first;
      d.rank = unit.choices[pick].second;
      d.compared =
          static_cast<int64_t>(PolicyShapes((*states)[i].dir.shape, *(*states)[i].c).size());
    }
  }
  rep->set_ratio_detail(alloc.met
                            ? ""
                            : "even the cheapest option of every layer needs " +
                                  std::to_string(alloc.params + pinned_after) + " parameters");
  return Status::Ok();
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
  if (o.fail_if_ratio_above >= 0) {
    add("fail_if_ratio_above", o.fail_if_ratio_above, rep->totals().param_ratio(),
        "model param_ratio");
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

std::string ModeName(const Options& o) {
  return o.rank > 0 ? "rank" : o.max_error >= 0 ? "max_error" : o.ratio > 0 ? "ratio" : "plan";
}

}  // namespace

Status ValidateOptions(const Options& o) {
  const int modes = (o.rank != 0) + (o.max_error != -1.0) + (o.ratio != -1.0);
  if (modes > 1) return InvalidArgument("give only one of --rank, --max-error and --ratio");
  if (modes == 0 && !o.plan) return InvalidArgument("give one of --rank, --max-error or --ratio");
  if (o.rank != 0 && o.rank < 1) {
    return InvalidArgument("rank must be at least 1, got " + std::to_string(o.rank));
  }
  if (o.max_error != -1.0 && !(o.max_error >= 0.0 && o.max_error <= 1.0)) {
    return InvalidArgument("max-error must be in [0, 1], got " + Num(o.max_error));
  }
  if (o.ratio != -1.0 && !(o.ratio > 0.0 && o.ratio <= 1.0)) {
    return InvalidArgument("ratio must be in (0, 1], got " + Num(o.ratio));
  }
  if (o.fail_if_error_above != -1.0 &&
      !(o.fail_if_error_above >= 0.0 && o.fail_if_error_above <= 1.0)) {
    return InvalidArgument("fail-if-error-above must be in [0, 1], got " +
                           Num(o.fail_if_error_above));
  }
  if (o.fail_if_ratio_above != -1.0 && !(o.fail_if_ratio_above > 0.0)) {
    return InvalidArgument("fail-if-ratio-above must be above 0, got " +
                           Num(o.fail_if_ratio_above));
  }
  if (o.min_params < 0) return InvalidArgument("min-params must be >= 0");
  if (o.shape && o.shape->kind == ShapePolicy::Kind::kFixed &&
      (o.shape->k1 < 1 || o.shape->n1 < 1)) {
    return InvalidArgument("shape dims must be at least 1");
  }
  if (o.plan && modes == 0) {
    for (size_t i = 0; i < o.plan->entries().size(); ++i) {
      if (!o.plan->entries()[i].SetsBudget()) {
        return InvalidArgument(o.plan->source() + ": entry " + std::to_string(i + 1) +
                               " sets only a shape; give -r, --max-error or --ratio too");
      }
    }
  }
  return NameFilter::Create(o.include, o.exclude).status();
}

Status CheckModel(const onnx::ModelProto& model, const std::string& what) {
  // ONNX 1.12's checker refuses IR versions above its own (8). IR 9 and 10 only add element types
  // (float8, int4) and function overloads; a model that uses the new types still fails below on
  // its unknown types, so checking the rest as IR 8 loses nothing.
  // Large weights are checked through their dims only: the copy holds one element of each, so
  // checking neither doubles memory nor trips over protobuf's 2 GiB limit.
  onnx::ModelProto light = io::CopyForChecking(model);
  if (light.ir_version() > onnx::IR_VERSION && light.ir_version() <= kMaxIrVersion) {
    light.set_ir_version(onnx::IR_VERSION);
  }
  const onnx::ModelProto* checked = &light;
  try {
    onnx::checker::check_model(*checked);
  } catch (const std::exception& e) {
    return FailedPrecondition(what + " fails the ONNX checker: " + std::string(e.what()));
  }
  try {
    onnx::ModelProto copy = *checked;
    onnx::ShapeInferenceOptions strict(/*check_type_val=*/true, /*strict_mode_val=*/1,
                                       /*data_prop_val=*/false);
    onnx::shape_inference::InferShapes(copy, onnx::OpSchemaRegistry::Instance(), strict);
  } catch (const std::exception& e) {
    return FailedPrecondition(what + " fails ONNX shape inference: " + std::string(e.what()));
  }
  return Status::Ok();
}

namespace {

void SetShape(const LayerState& s, report::LayerReport* lr) {
  const Decision& d = s.dec;
  lr->set_k1(static_cast<double>(d.shape.k1));
  lr->set_n1(static_cast<double>(d.shape.n1));
  lr->set_k2(static_cast<double>(d.shape.k2));
  lr->set_n2(static_cast<double>(d.shape.n2));
  lr->set_rank(static_cast<double>(d.rank));
  // Only -r at a fixed policy clamps; elsewhere the budget sets the rank.
  lr->set_rank_clamped(s.dir.budget == Budget::kRank &&
                       s.dir.shape.kind != ShapePolicy::Kind::kAuto && d.rank < s.dir.rank);
}

// One factorization to compute: a weight (in one orientation, with its calibration data) at a
// decided shape and rank, under one budget; every layer that asks for the same shares it.
struct FactorJob {
  size_t layer = 0;  // the first layer asking for it
  Decision dec;      // the decision; under --max-error, with the terms added to meet the target
  kron::WeightedFactors wf;
  std::vector<size_t> layers;  // every layer asking for it
  // With a spill: the encoded constants for each way its layers store them (EncodingKey).
  std::map<std::string, rewrite::StackedInitializers> encoded;
};

// What the encoded constants depend on besides the factors and the order (rewrite::EncodeFactors).
// The alpha goes in by its bits: any two different floats give different constants.
std::string EncodingKey(const match::LayerCandidate& c) {
  uint32_t alpha_bits = 0;
  const float alpha = rewrite::FoldedAlpha(c);
  std::memcpy(&alpha_bits, &alpha, sizeof alpha_bits);
  return std::to_string(alpha_bits) + "|" + std::to_string(c.dtype) + (c.weight_first ? "|wx" : "");
}

// The error the targets and gates see: data-weighted when calibrated.
double Judged(const LayerState& s, const kron::KronShape& shape, const kron::WeightedFactors& wf) {
  return Calibrated(s, shape) ? wf.data_error : wf.factors.relative_error;
}

// Computes job->wf for layer s. Under --max-error, a randomized factorization whose error lands
// above the target gets one more term (while that still saves parameters).
Status RunFactorJob(const Options& o, const Weights& weights, const LayerState& s, FactorJob* job) {
  const match::LayerCandidate& c = *s.c;
  // float64 layers are factorized from W in double (calibration works in float32).
  const bool in_double = c.dtype == onnx::TensorProto::DOUBLE && !s.stats;
  std::vector<float> w;
  std::vector<double> w64;
  if (in_double) {
    KFC_ASSIGN_OR_RETURN(w64, weights.Matrix<double>(c));
  } else {
    KFC_ASSIGN_OR_RETURN(w, weights.Matrix(c));
  }
  Decision& d = job->dec;
  for (;;) {
    kron::WeightedFactors& wf = job->wf;
    if (in_double) {
      wf = kron::WeightedFactors{};
      KFC_ASSIGN_OR_RETURN(wf.factors, kron::Factorize(w64.data(), c.k, c.n, d.shape, d.rank));
    } else if (Calibrated(s, d.shape)) {
      KFC_ASSIGN_OR_RETURN(wf,
                           kron::FactorizeWeighted(w.data(), c.k, c.n, d.shape, d.rank, *s.stats));
    } else {
      wf = kron::WeightedFactors{};
      KFC_ASSIGN_OR_RETURN(wf.factors, kron::Factorize(w.data(), c.k, c.n, d.shape, d.rank));
    }
    if (c.dtype == onnx::TensorProto::FLOAT16 || c.dtype == onnx::TensorProto::BFLOAT16) {
      // The factors are stored in the layer's dtype: report (and budget) the error they have
      // after rounding, not the float32 factorization's.
      wf.factors.a = tensor::RoundToDType(c.dtype, std::move(wf.factors.a));
      wf.factors.b = tensor::RoundToDType(c.dtype, std::move(wf.factors.b));
      wf.factors.relative_error = kron::FactorsError(wf.factors, w.data());
    }
    if (s.dir.budget != Budget::kMaxError || Judged(s, d.shape, wf) <= s.dir.max_error) break;
    Decision next = d;
    ++next.rank;
    if (next.rank > d.shape.MaxRank() || !Profitable(o, c, next)) break;
    Logger().debug("layer '{}': error {:.6f} above the target {} at rank {}; one more term",
                   c.node_name, Judged(s, d.shape, wf), s.dir.max_error, d.rank);
    d = next;
  }
  return Status::Ok();
}

// Whether layer s is left dense because its factors miss its --max-error target.
bool MissesTarget(const LayerState& s, const Decision& d, const kron::WeightedFactors& wf) {
  return s.dir.budget == Budget::kMaxError && Judged(s, d.shape, wf) > s.dir.max_error;
}

// Factor constants from this size on go to the spill: a page. Smaller ones (a few per layer at low
// ranks) stay in memory, where they cost less than a write and a read back. At -r 8 on the 2.5 GB
// scale benchmark model every factor is 64 KiB, so a threshold of 64 KiB would spill none.
constexpr int64_t kSpillMinBytes = 4096;

// Encodes the finished job's factors for each of its layers that will use them, moves the
// constants of at least kSpillMinBytes to the spill, and frees the factors.
Status SpillJob(io::SpillFile* spill, const std::vector<LayerState>& states, FactorJob* job) {
  for (size_t i : job->layers) {
    const LayerState& s = states[i];
    const std::string key = EncodingKey(*s.c);
    if (MissesTarget(s, job->dec, job->wf) || job->encoded.count(key)) continue;
    KFC_ASSIGN_OR_RETURN(rewrite::StackedInitializers enc,
                         rewrite::EncodeFactors(*s.c, job->wf.factors,
                                                kron::CheaperOrder(job->dec.shape, job->dec.rank)));
    for (onnx::TensorProto* t : {&enc.first, &enc.second}) {
      if (static_cast<int64_t>(t->raw_data().size()) >= kSpillMinBytes) {
        KFC_RETURN_IF_ERROR(spill->Spill(t));
      }
    }
    job->encoded.emplace(key, std::move(enc));
  }
  // Swapped with empty vectors: assigning {} would keep the capacity.
  std::vector<double>().swap(job->wf.factors.a);
  std::vector<double>().swap(job->wf.factors.b);
  return Status::Ok();
}

// Factorizes the decided layers (each distinct factorization once, in parallel) and fills their
// reports in layer order; returns the rewrites.
StatusOr<std::vector<rewrite::KronRewrite>> Factorize(const Options& o, const Weights& weights,
                                                      std::vector<LayerState>* states,
                                                      std::vector<LayerResult>* results) {
  // Which layers need which factorization. A weight shared by several layers is factorized once.
  std::vector<FactorJob> jobs;
  std::map<std::string, size_t> job_of;  // by FactorKey and budget
  std::vector<size_t> layer_job(states->size(), SIZE_MAX);
  for (size_t i = 0; i < states->size(); ++i) {
    LayerState& s = (*states)[i];
    if (!s.considered) continue;
    const Decision& d = s.dec;
    if (!d.compress) {
      Skip(s.lr, d.skip_reason, d.skip_detail);
      continue;
    }
    s.lr->set_shapes_compared(static_cast<double>(d.compared));
    if (d.search) RecordSearch(*d.search, *s.c, o.record_candidates, s.lr);
    SetShape(s, s.lr);
    if (!Profitable(o, *s.c, d)) {
      Skip(s.lr, "unprofitable",
           "rank " + std::to_string(d.rank) + " of " + ShapeText(d.shape) + " needs " +
               std::to_string(d.rank * d.shape.ParamsPerTerm()) + " parameters, dense has " +
               std::to_string(s.c->k * s.c->n));
      continue;
    }
    const std::string key =
        FactorKey(s, d.shape, d.rank) +
        (s.dir.budget == Budget::kMaxError ? "|max_error:" + Num(s.dir.max_error) : "");
    auto [it, fresh] = job_of.emplace(key, jobs.size());
    if (fresh) jobs.push_back({i, d, {}, {}, {}});
    jobs[it->second].layers.push_back(i);
    layer_job[i] = it->second;
  }
  std::vector<size_t> job_first;  // each job's first layer
  for (const FactorJob& job : jobs) job_first.push_back(job.layer);
  ProgressMeter meter(o, "factorizing", CandidatesAt(*states, job_first));
  KFC_RETURN_IF_ERROR(RunParallel(o, jobs.size(), [&](size_t j) -> Status {
    const LayerState& s = (*states)[jobs[j].layer];
    Status done = RunFactorJob(o, weights, s, &jobs[j]);
    if (!done.ok()) return done.WithContext("layer '" + s.c->node_name + "'");
    // Spill errors name the output already.
    if (o.spill != nullptr) done = SpillJob(o.spill, *states, &jobs[j]);
    if (!done.ok()) return done;
    meter.Done(j);
    return Status::Ok();
  }));
  meter.Finish();

  std::vector<rewrite::KronRewrite> rewrites;
  std::map<std::string, std::string> emitted;  // identical stacked factors -> layer
  for (size_t i = 0; i < states->size(); ++i) {
    if (layer_job[i] == SIZE_MAX) continue;
    LayerState& s = (*states)[i];
    const match::LayerCandidate& c = *s.c;
    report::LayerReport* lr = s.lr;
    const FactorJob& job = jobs[layer_job[i]];
    Decision& d = s.dec;
    d = job.dec;
    kron::WeightedFactors wf = job.wf;
    if (MissesTarget(s, d, wf)) {
      d = SkipDecision("error_target_unmet",
                       "the factorization's relative error " + Num(Judged(s, d.shape, wf)) +
                           " stays above " + Num(s.dir.max_error) + " at every profitable rank");
      Skip(lr, d.skip_reason, d.skip_detail);
      continue;
    }
    kron::KronFactors& f = wf.factors;
    const kron::KronShape shape = d.shape;
    const int64_t rank = d.rank;
    const double params_after = static_cast<double>(rank * shape.ParamsPerTerm());
    SetShape(s, lr);
    // Layers whose stacked factors come out identical (same orientation, shape, rank, alpha and
    // order) share the initializers too (the rewriter dedupes by content), and count no new
    // parameters.
    const auto order = kron::CheaperOrder(shape, rank);
    const std::string emitted_key = FactorKey(s, shape, rank) + "|" +
                                    (order == kron::ContractionOrder::kBFirst ? "b" : "a") + "|" +
                                    EncodingKey(c);
    auto [first, inserted] = emitted.emplace(emitted_key, c.node_name);
    lr->set_compressed(true);
    lr->set_params_after(params_after);
    if (!inserted) {
      lr->set_shares_factors_with(report::ToValidUtf8(first->second));
      lr->set_params_after(0);
    }
    lr->set_macs_after(static_cast<double>(kron::Macs(shape, rank, order)));
    lr->set_contraction_order(order == kron::ContractionOrder::kBFirst ? "b_first" : "a_first");
    lr->set_relative_error(RoundSignificant(f.relative_error));
    if (s.stats && !Calibrated(s, shape)) {
      lr->set_calibrated(false);
      lr->set_calibration_note("weight-only: Kronecker-factored statistics are kept for k1 = " +
                               std::to_string(s.stats->kf_k1) +
                               ", the chosen shape has k1 = " + std::to_string(shape.k1));
    } else if (s.stats) {
      lr->set_data_relative_error(RoundSignificant(wf.data_error));
      lr->set_weight_only_data_relative_error(RoundSignificant(wf.weight_only_data_error));
      if (wf.used_weight_only) {
        lr->set_calibration_note("the weight-only factors had the smaller data error; kept");
      }
    }
    lr->set_weight_bytes_after(lr->params_after() *
                               static_cast<double>(tensor::DTypeSize(c.dtype)));
    Logger().debug("layer '{}': {}x{} -> {} rank {}, relative error {:.6f}", c.node_name, c.k, c.n,
                   ShapeText(shape), rank, f.relative_error);
    (*results)[i].factors = f;
    (*results)[i].bias_correction = wf.bias_correction;
    rewrites.push_back({c, std::move(f), order, std::nullopt, std::move(wf.bias_correction)});
    if (o.spill != nullptr) rewrites.back().encoded = job.encoded.at(EncodingKey(c));
  }
  return rewrites;
}

}  // namespace

StatusOr<Result> CompressModel(const onnx::ModelProto& model, const Options& options) {
  return CompressModel(onnx::ModelProto(model), options);
}

StatusOr<Result> CompressModel(onnx::ModelProto&& model, const Options& options) {
  KFC_RETURN_IF_ERROR(ValidateOptions(options));
  KFC_ASSIGN_OR_RETURN(const NameFilter filter,
                       NameFilter::Create(options.include, options.exclude));
  auto& log = Logger();
  const Weights weights{model, options.external_reader};
  Result result;
  report::Report& rep = result.report;
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
  rep.set_opset(static_cast<int32_t>(match::DefaultOpset(model)));

  std::shared_ptr<Calibration> calibration;
  if (!options.calibration_dir.empty()) {
    KFC_ASSIGN_OR_RETURN(calibration, Calibration::Load(options.calibration_dir, model));
    rep.set_calibration(report::ToValidUtf8(options.calibration_dir));
  }

  auto start = Clock::now();
  const std::vector<match::LayerCandidate> candidates = match::FindLayers(model);
  log.info("matched {} Gemm/MatMul layers in {:.3f} s", candidates.size(), SecondsSince(start));
  if (options.plan) {
    for (const auto& w : options.plan->Bind(candidates)) log.warn("{}", w);
  }

  // Selection: eligibility, filters and size, from the graph alone.
  start = Clock::now();
  std::vector<LayerState> states(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    const match::LayerCandidate& c = candidates[i];
    LayerState& s = states[i];
    s.c = &c;
    s.lr = rep.add_layers();
    InitLayerReport(c, s.lr);
    result.layers.push_back({c, std::nullopt, {}});
    const double kn = static_cast<double>(c.k) * static_cast<double>(c.n);
    if (!c.eligible()) {
      Skip(s.lr, c.skip_reason, c.skip_detail);
      continue;
    }
    if (const std::string why = filter.Reject(c.node_name, c.weight_name); !why.empty()) {
      Skip(s.lr, why,
           why == "excluded" ? "name matches an --exclude pattern"
                             : "name matches no --include pattern");
      continue;
    }
    if (kn < static_cast<double>(options.min_params)) {
      Skip(s.lr, "below_min_params",
           std::to_string(c.k * c.n) + " < " + std::to_string(options.min_params) + " parameters");
      continue;
    }
    if (WeightSource(model, c) == nullptr) {
      return Internal("weight '" + c.weight_name + "' disappeared");
    }
    if (!weights.Readable(c)) {
      Skip(s.lr, "external_data",
           "weight data is stored in an external file and the caller gave no reader for it");
      continue;
    }
    s.considered = true;
  }
  for (const auto& p : filter.Unmatched()) log.warn("{} matches no eligible layer", p);

  // Each selected weight read once and checked to be finite, in parallel.
  std::vector<std::string> not_finite(states.size());
  {
    const std::vector<size_t> order = ConsideredLayers(states);
    ProgressMeter reading(options, "reading", CandidatesAt(states, order));
    KFC_RETURN_IF_ERROR(RunParallel(options, order.size(), [&](size_t j) -> Status {
      const match::LayerCandidate& c = candidates[order[j]];
      auto w = weights.Matrix(c);
      if (!w.ok()) return w.status().WithContext("layer '" + c.node_name + "'");
      const StatusOr<double> finite = kron::CheckedFrobeniusNorm(w->data(), c.k, c.n);
      if (!finite.ok()) not_finite[order[j]] = finite.status().message();
      reading.Done(j);
      return Status::Ok();
    }));
    reading.Finish();
    log.info("read and checked {} weights in {:.3f} s", order.size(), SecondsSince(start));
  }

  start = Clock::now();
  // Calibration data and the directive of each layer (the plan or the mode).
  for (size_t i = 0; i < states.size(); ++i) {
    LayerState& s = states[i];
    if (!s.considered) continue;
    const match::LayerCandidate& c = *s.c;
    if (!not_finite[i].empty()) {
      s.considered = false;
      Skip(s.lr, "non_finite_weight", not_finite[i]);
      continue;
    }
    s.dir = Resolve(options, c);
    // Layers too wide for K x K statistics are decided without them, then get
    // Kronecker-factored statistics for the decided shape (below).
    if (calibration && c.k <= kMaxCalibratedK) {
      KFC_RETURN_IF_ERROR(LoadStats(calibration.get(), 0, &s));
    }
    s.lr->set_decided_by(s.dir.decided_by);
    s.lr->set_plan_entry(s.dir.plan_entry);
    s.lr->set_rank_requested(static_cast<double>(s.dir.rank));
    s.lr->set_max_error_target(s.dir.max_error);
  }

  // Each layer's decision, in parallel (--ratio decides its layers together afterwards).
  const std::vector<size_t> deciding_order = ConsideredLayers(states);
  ProgressMeter deciding(options, "deciding", CandidatesAt(states, deciding_order));
  {
    const std::vector<size_t>& order = deciding_order;
    KFC_RETURN_IF_ERROR(RunParallel(options, order.size(), [&](size_t j) -> Status {
      LayerState& s = states[order[j]];
      const match::LayerCandidate& c = *s.c;
      StatusOr<Decision> d = Decision{};
      std::vector<float> w;
      if (NeedsWeight(s)) {
        auto read = weights.Matrix(c);
        if (!read.ok()) return read.status().WithContext("layer '" + c.node_name + "'");
        w = std::move(*read);
      }
      switch (s.dir.budget) {
        case Budget::kSkip:
          d = s.dir.plan_entry >= 0
                  ? SkipDecision("plan_skip",
                                 "plan entry " + std::to_string(s.dir.plan_entry + 1) + " skips it")
                  : SkipDecision("not_in_plan", "no plan entry matches and no mode was given");
          break;
        case Budget::kRank:
          d = DecideRank(s.dir, c, w, StatsOf(s));
          break;
        case Budget::kMaxError:
          d = DecideMaxError(s.dir, c, w, StatsOf(s));
          break;
        case Budget::kRatio:
          break;  // below, for all such layers at once
      }
      if (!d.ok()) return d.status().WithContext("layer '" + c.node_name + "'");
      s.dec = std::move(*d);
      deciding.Done(j);
      return Status::Ok();
    }));
  }
  if (options.ratio > 0) KFC_RETURN_IF_ERROR(AllocateRatio(options, weights, &states, &rep));
  for (LayerState& s : states) {
    if (!calibration || !s.considered || s.c->k <= kMaxCalibratedK || !s.dec.compress) continue;
    const kron::KronShape& shape = s.dec.shape;
    KFC_RETURN_IF_ERROR(
        LoadStats(calibration.get(), shape.k1 > 1 && shape.k2 > 1 ? shape.k1 : 0, &s));
  }
  deciding.Finish();
  log.info("decided {} layers in {:.3f} s", deciding_order.size(), SecondsSince(start));
  start = Clock::now();

  KFC_ASSIGN_OR_RETURN(std::vector<rewrite::KronRewrite> rewrites,
                       Factorize(options, weights, &states, &result.layers));
  report::Totals* totals = rep.mutable_totals();
  CompressibleCount compressible;
  for (const LayerState& s : states) {
    report::LayerReport* lr = s.lr;
    if (!lr->compressed()) {
      log.debug("layer '{}' skipped: {} ({})", s.c->node_name, lr->skip_reason(),
                lr->skip_detail());
      lr->set_params_after(lr->params_before());
    }
    if (s.considered) compressible.Add(options, s);
    if (s.c->k > 0 && s.c->n > 0) {
      totals->set_layer_params_before(totals->layer_params_before() + lr->params_before());
      totals->set_layer_params_after(totals->layer_params_after() + lr->params_after());
      totals->set_layer_macs_before(totals->layer_macs_before() + lr->macs_before());
      totals->set_layer_macs_after(totals->layer_macs_after() + lr->macs_after());
    }
  }
  if (options.spill != nullptr) {
    const int64_t tensors = options.spill->tensors_spilled();
    log.info("factorized {} of {} layers in {:.3f} s; {} bytes of factors spilled ({} tensor{})",
             rewrites.size(), candidates.size(), SecondsSince(start),
             options.spill->bytes_spilled(), tensors, tensors == 1 ? "" : "s");
  } else {
    log.info("factorized {} of {} layers in {:.3f} s", rewrites.size(), candidates.size(),
             SecondsSince(start));
  }

  // The counts of the input, taken before the rewrite edits it in place.
  const ModelTotals before = CountInitializers(model.graph());
  const double file_bytes_before =
      static_cast<double>(model.ByteSizeLong() + io::ExternalDataBytes(model));
  start = Clock::now();
  result.model = std::move(model);
  KFC_RETURN_IF_ERROR(rewrite::ApplyKronRewrites(&result.model, rewrites));
  KFC_RETURN_IF_ERROR(CheckModel(result.model, "output model"));
  log.info("rewrote and checked the graph in {:.3f} s", SecondsSince(start));

  const ModelTotals after = CountInitializers(result.model.graph());
  totals->set_layers_found(static_cast<double>(candidates.size()));
  totals->set_layers_compressed(static_cast<double>(rewrites.size()));
  totals->set_layers_skipped(static_cast<double>(candidates.size() - rewrites.size()));
  totals->set_model_params_before(before.params);
  totals->set_model_params_after(after.params);
  totals->set_weight_bytes_before(before.bytes);
  totals->set_weight_bytes_after(after.bytes);
  // As if stored inline: tensors still in the input's external files count with their bytes.
  totals->set_file_bytes_before(file_bytes_before);
  KFC_ASSIGN_OR_RETURN(const int64_t file_bytes_after, io::InlineSize(&result.model));
  totals->set_file_bytes_after(static_cast<double>(file_bytes_after));
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
    rep.set_ratio_detail(met ? achieved + " meets the target " + Num(options.ratio)
                             : achieved + " misses the target " + Num(options.ratio) + " by " +
                                   Num(totals->compressible_ratio() - options.ratio) +
                                   (rep.ratio_detail().empty() ? "" : ": " + rep.ratio_detail()));
    if (!met) log.warn("--ratio {}: {}", options.ratio, rep.ratio_detail());
  }
  EvaluateGates(options, &rep);
  return result;
}

StatusOr<std::string> WriteCalibrationProbe(const std::string& input, const std::string& probe,
                                            io::CommitGroup* group, io::RunFiles* files) {
  KFC_RETURN_IF_ERROR(io::CheckOutputPath(input, probe));
  const std::string sidecar = SidecarPathFor(probe);
  KFC_RETURN_IF_ERROR(io::CheckOutputPath(input, sidecar));
  KFC_ASSIGN_OR_RETURN(onnx::ModelProto model, io::LoadModel(input));
  // Prepared as CompressFile prepares it, so that the sidecar's fingerprint matches there.
  io::ExternalDataReader reader(input);
  KFC_ASSIGN_OR_RETURN(const io::ExternalDataStats external,
                       io::PrepareExternalData(&model, &reader, io::kKeptExternalMinBytes));
  if (files) KFC_RETURN_IF_ERROR(files->AddInputDataAndCheck(external.files));
  KFC_RETURN_IF_ERROR(CheckModel(model, "input model '" + input + "'"));
  KFC_ASSIGN_OR_RETURN(Probe p, BuildProbe(model, input));
  KFC_RETURN_IF_ERROR(CheckModel(p.model, "probe model"));
  KFC_ASSIGN_OR_RETURN(std::string bytes, io::SerializeModel(p.model));
  google::protobuf::util::JsonPrintOptions json_options;
  json_options.add_whitespace = true;
  json_options.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(p.sidecar, &json, json_options).ok()) {
    return Internal("calibration sidecar: JSON rendering failed");
  }
  io::CommitGroup both;  // the probe and its sidecar appear together, or neither
  KFC_RETURN_IF_ERROR(io::WriteFileAtomic(sidecar, json, group ? group : &both));
  KFC_RETURN_IF_ERROR(io::WriteFileAtomic(probe, bytes, group ? group : &both));
  KFC_RETURN_IF_ERROR(both.Commit());
  int layers = 0;
  for (const auto& t : p.sidecar.tensors()) layers += t.layers_size();
  return "probe '" + probe + "': " + std::to_string(p.sidecar.tensors_size()) +
         " exposed activations for " + std::to_string(layers) + " layers; sidecar '" + sidecar +
         "'\n";
}

StatusOr<report::Report> CompressFile(const std::string& input, const std::string& output,
                                      const Options& options, bool dry_run) {
  KFC_RETURN_IF_ERROR(ValidateOptions(options));
  if (!dry_run) KFC_RETURN_IF_ERROR(io::CheckOutputPath(input, output));
  auto start = Clock::now();
  KFC_ASSIGN_OR_RETURN(onnx::ModelProto model, io::LoadModel(input));
  // Large external tensors stay in their files: each weight is read when a layer needs it, and
  // the ones kept dense are copied from file to file when the output is written.
  io::ExternalDataReader reader(input);
  KFC_ASSIGN_OR_RETURN(const io::ExternalDataStats external,
                       io::PrepareExternalData(&model, &reader, io::kKeptExternalMinBytes));
  if (options.save.files) {
    KFC_RETURN_IF_ERROR(options.save.files->AddInputDataAndCheck(external.files));
  }
  if (!dry_run) {
    KFC_RETURN_IF_ERROR(io::CheckNotInputData(output, external.files, "output"));
    KFC_RETURN_IF_ERROR(io::CheckNotInputData(io::DataFilePath(output, options.save),
                                              external.files, "external data file"));
  }
  KFC_RETURN_IF_ERROR(CheckModel(model, "input model '" + input + "'"));
  if (external.tensors > 0) {
    Logger().info(
        "loaded '{}' and checked {} external tensors ({} bytes in {} files; {} left there, read "
        "layer by layer) in {:.3f} s",
        input, external.tensors, external.bytes, external.files.size(), external.kept,
        SecondsSince(start));
  } else {
    Logger().info("loaded '{}' in {:.3f} s", input, SecondsSince(start));
  }

  Options with_reader = options;
  with_reader.external_reader = &reader;
  // Factors go to a nameless file next to the output as they are produced (none for a dry run).
  io::SpillFile spill;
  if (!dry_run) {
    KFC_RETURN_IF_ERROR(spill.Open(output));
    reader.set_spill(&spill);
    with_reader.spill = &spill;
  }
  KFC_ASSIGN_OR_RETURN(Result result, CompressModel(std::move(model), with_reader));
  result.report.set_input(report::ToValidUtf8(input));
  result.report.set_dry_run(dry_run);
  if (dry_run) return std::move(result.report);
  if (!result.report.gates_passed() && !options.write_on_gate_failure) {
    Logger().warn("a quality gate failed: '{}' not written (--write-on-gate-failure writes it)",
                  output);
    return std::move(result.report);
  }

  start = Clock::now();
  result.report.set_output(report::ToValidUtf8(output));
  KFC_ASSIGN_OR_RETURN(const io::SaveResult saved,
                       io::SaveModel(&result.model, output, options.save, &reader));
  result.report.set_output_written(true);
  result.report.set_external_data_file(report::ToValidUtf8(saved.data_path));
  result.report.set_external_data_automatic(saved.automatic);
  if (saved.automatic) {
    Logger().warn("'{}' would exceed protobuf's 2 GiB limit inline: weights written to '{}'",
                  output, saved.data_path);
  }
  const std::string from_spill =
      reader.spill_bytes_read() > 0
          ? "; " + std::to_string(reader.spill_bytes_read()) + " bytes of factors from the spill"
          : "";
  if (saved.data_path.empty()) {
    Logger().info("wrote '{}' ({} bytes{}) in {:.3f} s", output, saved.model_bytes, from_spill,
                  SecondsSince(start));
  } else {
    Logger().info("wrote '{}' ({} bytes) and '{}' ({} bytes, {} tensors{}) in {:.3f} s", output,
                  saved.model_bytes, saved.data_path, saved.data_bytes, saved.data_tensors,
                  from_spill, SecondsSince(start));
  }
  if (reader.bytes_read() > 0) {
    Logger().info("external data: {} bytes read in {:.3f} s (summed over threads)",
                  reader.bytes_read(), reader.read_seconds());
  }
  return std::move(result.report);
}

}  // namespace kfc::pipeline
