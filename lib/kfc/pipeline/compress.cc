#include "kfc/pipeline/compress.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>

#include "kfc/core/logging.h"
#include "kfc/io/model_io.h"
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

// The tensor holding the layer's weight data: an initializer or a Constant node's `value`.
const onnx::TensorProto* WeightSource(const onnx::GraphProto& g, const match::LayerCandidate& c) {
  if (c.constant_node >= 0 && c.constant_node < g.node_size()) {
    for (const auto& a : g.node(c.constant_node).attribute()) {
      if (a.name() == "value" && a.has_t()) return &a.t();
    }
    return nullptr;
  }
  return FindInitializer(g, c.weight_tensor_name);
}

// W as the K x N row-major matrix of y = x W; Gemm with transB=1 stores it as [N, K].
StatusOr<std::vector<float>> WeightMatrix(const onnx::TensorProto& t,
                                          const match::LayerCandidate& c) {
  KFC_ASSIGN_OR_RETURN(std::vector<float> stored, tensor::DecodeToFloat(t));
  if (!c.trans_b) return stored;
  return tensor::Transpose(stored, c.n, c.k);
}

// Errors go into the report at 10 significant digits: the last digits of a double vary with the
// BLAS kernel the CPU selects, and reports should be stable across machines.
double RoundSignificant(double v) {
  if (v == 0.0 || !std::isfinite(v)) return v;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9e", v);
  return std::strtod(buf, nullptr);
}

struct ShapeChoice {
  kron::KronShape shape;
  int64_t rank = 0;
  int64_t compared = 1;
  std::optional<kron::ShapeSearchResult> search;  // --shape auto
};

// --shape auto: the budget is what the balanced shape (fewest parameters per term, squarest)
// uses at the requested rank, so auto never makes a layer bigger than balanced would.
StatusOr<ShapeChoice> SearchAuto(const Options& o, const match::LayerCandidate& c,
                                 const std::vector<float>& w) {
  KFC_ASSIGN_OR_RETURN(const kron::KronShape balanced, kron::DefaultShape(c.k, c.n));
  kron::SearchBudget budget;
  budget.max_params = std::min(o.rank, balanced.MaxRank()) * balanced.ParamsPerTerm();
  KFC_ASSIGN_OR_RETURN(kron::ShapeSearchResult search,
                       kron::SearchShape(w.data(), c.k, c.n, budget));
  if (!search.found) {
    return InvalidArgument("no shape fits a budget of " + std::to_string(budget.max_params) +
                           " parameters");
  }
  int64_t compared = 0;
  for (const auto& cand : search.candidates) compared += cand.rank > 0;
  ShapeChoice choice{search.shape, search.rank, compared, std::nullopt};
  choice.search = std::move(search);
  return choice;
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

// The forced shape where it divides the layer (and is not trivial); else the shape with the fewest
// parameters per term, ties broken by the least error at `rank` for layers up to
// kTieSearchMaxElements, by squareness above.
StatusOr<ShapeChoice> ChooseShape(const Options& o, const match::LayerCandidate& c,
                                  const std::vector<float>& w) {
  if (o.auto_shape) return SearchAuto(o, c, w);
  if (o.forced_shape) {
    const auto [k1, n1] = *o.forced_shape;
    const bool divides = c.k % k1 == 0 && c.n % n1 == 0;
    const bool trivial = (k1 == 1 && n1 == 1) || (k1 == c.k && n1 == c.n);
    if (divides && !trivial) {
      const kron::KronShape shape{k1, n1, c.k / k1, c.n / n1};
      return ShapeChoice{shape, std::min(o.rank, shape.MaxRank()), 1, std::nullopt};
    }
    Logger().warn("layer '{}': --shape {}x{} {} {}x{}; using the default shape", c.node_name, k1,
                  n1, divides ? "is trivial for" : "does not divide", c.k, c.n);
  }
  const std::vector<kron::KronShape> tied = kron::TiedDefaultShapes(c.k, c.n);
  if (tied.empty()) return InvalidArgument("no non-trivial Kronecker shape divides the weight");
  // Tied shapes share MaxRank(), so the rank does not depend on which one wins.
  const int64_t rank = std::min(o.rank, tied.front().MaxRank());
  if (tied.size() == 1 || c.k * c.n > kTieSearchMaxElements) {
    return ShapeChoice{tied.front(), rank, 1, std::nullopt};
  }
  ShapeChoice best{tied.front(), rank, static_cast<int64_t>(tied.size()), std::nullopt};
  double best_error = 2.0;
  for (const auto& shape : tied) {
    double norm = 0.0;
    KFC_ASSIGN_OR_RETURN(std::vector<double> s,
                         kron::SingularValues(w.data(), c.k, c.n, shape, &norm));
    const double error = kron::SpectrumError(s, rank, norm);
    Logger().trace("layer '{}': shape {}x{} (x) {}x{} error {:.6f} at rank {}", c.node_name,
                   shape.k1, shape.n1, shape.k2, shape.n2, error, o.rank);
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

}  // namespace

Status ValidateOptions(const Options& o) {
  if (o.rank < 1) return InvalidArgument("rank must be at least 1, got " + std::to_string(o.rank));
  if (o.min_params < 0) return InvalidArgument("min-params must be >= 0");
  if (o.forced_shape && (o.forced_shape->first < 1 || o.forced_shape->second < 1)) {
    return InvalidArgument("shape dims must be at least 1");
  }
  return NameFilter::Create(o.include, o.exclude).status();
}

Status CheckModel(const onnx::ModelProto& model, const std::string& what) {
  // ONNX 1.12's checker refuses IR versions above its own (8). IR 9 and 10 only add element types
  // (float8, int4) and function overloads; a model that uses the new types still fails below on
  // its unknown types, so checking the rest as IR 8 loses nothing.
  onnx::ModelProto clamped;
  const onnx::ModelProto* checked = &model;
  if (model.ir_version() > onnx::IR_VERSION && model.ir_version() <= kMaxIrVersion) {
    clamped = model;
    clamped.set_ir_version(onnx::IR_VERSION);
    checked = &clamped;
  }
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

StatusOr<Result> CompressModel(const onnx::ModelProto& model, const Options& options) {
  KFC_RETURN_IF_ERROR(ValidateOptions(options));
  KFC_ASSIGN_OR_RETURN(const NameFilter filter,
                       NameFilter::Create(options.include, options.exclude));
  auto& log = Logger();
  Result result;
  report::Report& rep = result.report;
  rep.set_report_schema_version(report::kSchemaVersion);
  rep.set_tool_version(KFC_VERSION);
  rep.set_rank_requested(static_cast<double>(options.rank));
  rep.set_shape_policy(options.auto_shape     ? "auto"
                       : options.forced_shape ? std::to_string(options.forced_shape->first) + "x" +
                                                    std::to_string(options.forced_shape->second)
                                              : "balanced");
  rep.set_min_params(static_cast<double>(options.min_params));
  rep.set_opset(static_cast<int32_t>(match::DefaultOpset(model)));

  auto start = Clock::now();
  std::vector<match::LayerCandidate> candidates = match::FindLayers(model);
  log.info("matched {} Gemm/MatMul layers in {:.3f} s", candidates.size(), SecondsSince(start));

  start = Clock::now();
  std::vector<rewrite::KronRewrite> rewrites;
  std::map<std::string, kron::KronFactors> factor_cache;  // by weight, orientation, shape, rank
  std::map<std::string, std::string> emitted;             // identical stacked factors -> layer
  report::Totals* totals = rep.mutable_totals();
  for (const auto& c : candidates) {
    report::LayerReport* lr = rep.add_layers();
    lr->set_node_name(report::ToValidUtf8(c.node_name));
    lr->set_op_type(c.op_type);
    lr->set_weight_name(report::ToValidUtf8(c.weight_name));
    lr->set_graph(report::ToValidUtf8(c.graph_path));
    lr->set_k(static_cast<double>(c.k));
    lr->set_n(static_cast<double>(c.n));
    lr->set_dtype(c.dtype ? tensor::DTypeName(c.dtype) : "");
    lr->set_rank_requested(static_cast<double>(options.rank));
    lr->set_lowrank_rank(-1);
    lr->set_lowrank_relative_error(-1);
    const double kn = static_cast<double>(c.k) * static_cast<double>(c.n);
    const double elem_bytes = static_cast<double>(tensor::DTypeSize(c.dtype));
    lr->set_params_before(kn);
    lr->set_params_after(kn);
    lr->set_macs_before(kn);
    lr->set_macs_after(kn);
    lr->set_weight_bytes_before(kn * elem_bytes);
    lr->set_weight_bytes_after(kn * elem_bytes);
    result.layers.push_back({c, std::nullopt});

    if (!c.eligible()) {
      Skip(lr, c.skip_reason, c.skip_detail);
    } else if (const std::string why = filter.Reject(c.node_name, c.weight_name); !why.empty()) {
      Skip(lr, why,
           why == "excluded" ? "name matches an --exclude pattern"
                             : "name matches no --include pattern");
    } else if (kn < static_cast<double>(options.min_params)) {
      Skip(lr, "below_min_params",
           std::to_string(c.k * c.n) + " < " + std::to_string(options.min_params) + " parameters");
    } else {
      const onnx::TensorProto* init = WeightSource(model.graph(), c);
      if (init == nullptr) return Internal("weight '" + c.weight_name + "' disappeared");
      KFC_ASSIGN_OR_RETURN(std::vector<float> w, WeightMatrix(*init, c));
      const StatusOr<double> finite = kron::CheckedFrobeniusNorm(w.data(), c.k, c.n);
      auto choice = finite.ok() ? ChooseShape(options, c, w) : StatusOr<ShapeChoice>(ShapeChoice{});
      if (!finite.ok()) {
        Skip(lr, "non_finite_weight", finite.status().message());
      } else if (!choice.ok() && choice.status().code() == StatusCode::kInvalidArgument) {
        Skip(lr, "no_factor_shape", choice.status().message());
      } else if (!choice.ok()) {
        return choice.status().WithContext("layer '" + c.node_name + "'");
      } else {
        const kron::KronShape shape = choice->shape;
        lr->set_shapes_compared(static_cast<double>(choice->compared));
        if (choice->search) RecordSearch(*choice->search, c, options.record_candidates, lr);
        const int64_t rank = choice->rank;
        const double params_after = static_cast<double>(rank * shape.ParamsPerTerm());
        lr->set_k1(static_cast<double>(shape.k1));
        lr->set_n1(static_cast<double>(shape.n1));
        lr->set_k2(static_cast<double>(shape.k2));
        lr->set_n2(static_cast<double>(shape.n2));
        lr->set_rank(static_cast<double>(rank));
        // Under --shape auto the budget, not a clamp, sets the rank.
        lr->set_rank_clamped(!options.auto_shape && rank < options.rank);
        if (options.skip_unprofitable && params_after >= kn) {
          Skip(lr, "unprofitable",
               "rank " + std::to_string(rank) + " of " + std::to_string(shape.k1) + "x" +
                   std::to_string(shape.n1) + " (x) " + std::to_string(shape.k2) + "x" +
                   std::to_string(shape.n2) + " needs " +
                   std::to_string(static_cast<int64_t>(params_after)) + " parameters, dense has " +
                   std::to_string(c.k * c.n));
        } else {
          // A weight shared by several layers is factorized once; layers whose stacked factors
          // come out identical (same orientation, shape, rank, alpha and order) share the
          // initializers too (the rewriter dedupes by content), and count no new parameters.
          const std::string factor_key = c.source_value + "|" + (c.trans_b ? "t" : "n") + "|" +
                                         std::to_string(shape.k1) + "x" + std::to_string(shape.n1) +
                                         "|" + std::to_string(rank);
          auto cached = factor_cache.find(factor_key);
          if (cached == factor_cache.end()) {
            KFC_ASSIGN_OR_RETURN(kron::KronFactors fresh,
                                 kron::Factorize(w.data(), c.k, c.n, shape, rank));
            cached = factor_cache.emplace(factor_key, std::move(fresh)).first;
          }
          kron::KronFactors f = cached->second;
          const auto order = kron::CheaperOrder(shape, rank);
          const float alpha = c.op_type == "Gemm" ? c.alpha : 1.0f;
          const std::string emitted_key = factor_key + "|" + std::to_string(alpha) + "|" +
                                          (order == kron::ContractionOrder::kBFirst ? "b" : "a");
          auto [first, inserted] = emitted.emplace(emitted_key, c.node_name);
          lr->set_compressed(true);
          lr->set_params_after(params_after);
          if (!inserted) {
            lr->set_shares_factors_with(report::ToValidUtf8(first->second));
            lr->set_params_after(0);
          }
          lr->set_macs_after(static_cast<double>(kron::Macs(shape, rank, order)));
          lr->set_contraction_order(order == kron::ContractionOrder::kBFirst ? "b_first"
                                                                             : "a_first");
          lr->set_relative_error(RoundSignificant(f.relative_error));
          lr->set_weight_bytes_after(lr->params_after() * elem_bytes);
          log.debug("layer '{}': {}x{} -> {}x{} (x) {}x{} rank {}, relative error {:.6f}",
                    c.node_name, c.k, c.n, shape.k1, shape.n1, shape.k2, shape.n2, rank,
                    f.relative_error);
          result.layers.back().factors = f;
          rewrites.push_back({c, std::move(f), order});
        }
      }
    }
    if (!lr->compressed()) {
      log.debug("layer '{}' skipped: {} ({})", c.node_name, lr->skip_reason(), lr->skip_detail());
      lr->set_params_after(lr->params_before());
    }
    if (c.k > 0 && c.n > 0) {
      totals->set_layer_params_before(totals->layer_params_before() + lr->params_before());
      totals->set_layer_params_after(totals->layer_params_after() + lr->params_after());
      totals->set_layer_macs_before(totals->layer_macs_before() + lr->macs_before());
      totals->set_layer_macs_after(totals->layer_macs_after() + lr->macs_after());
    }
  }
  log.info("factorized {} of {} layers in {:.3f} s", rewrites.size(), candidates.size(),
           SecondsSince(start));

  start = Clock::now();
  result.model = model;
  KFC_RETURN_IF_ERROR(rewrite::ApplyKronRewrites(&result.model, rewrites));
  KFC_RETURN_IF_ERROR(CheckModel(result.model, "output model"));
  log.info("rewrote and checked the graph in {:.3f} s", SecondsSince(start));

  const ModelTotals before = CountInitializers(model.graph());
  const ModelTotals after = CountInitializers(result.model.graph());
  totals->set_layers_found(static_cast<double>(candidates.size()));
  totals->set_layers_compressed(static_cast<double>(rewrites.size()));
  totals->set_layers_skipped(static_cast<double>(candidates.size() - rewrites.size()));
  totals->set_model_params_before(before.params);
  totals->set_model_params_after(after.params);
  totals->set_weight_bytes_before(before.bytes);
  totals->set_weight_bytes_after(after.bytes);
  totals->set_file_bytes_before(static_cast<double>(model.ByteSizeLong()));
  totals->set_file_bytes_after(static_cast<double>(result.model.ByteSizeLong()));
  totals->set_param_ratio(before.params > 0 ? after.params / before.params : 1.0);
  totals->set_file_ratio(totals->file_bytes_before() > 0
                             ? totals->file_bytes_after() / totals->file_bytes_before()
                             : 1.0);
  return result;
}

StatusOr<report::Report> CompressFile(const std::string& input, const std::string& output,
                                      const Options& options, bool dry_run) {
  KFC_RETURN_IF_ERROR(ValidateOptions(options));
  if (!dry_run) KFC_RETURN_IF_ERROR(io::CheckOutputPath(input, output));
  auto start = Clock::now();
  KFC_ASSIGN_OR_RETURN(onnx::ModelProto model, io::LoadModel(input));
  KFC_RETURN_IF_ERROR(CheckModel(model, "input model '" + input + "'"));
  Logger().info("loaded '{}' in {:.3f} s", input, SecondsSince(start));

  KFC_ASSIGN_OR_RETURN(Result result, CompressModel(model, options));
  result.report.set_input(report::ToValidUtf8(input));
  result.report.set_dry_run(dry_run);
  if (dry_run) return std::move(result.report);

  start = Clock::now();
  result.report.set_output(report::ToValidUtf8(output));
  KFC_ASSIGN_OR_RETURN(std::string bytes, io::SerializeModel(result.model));
  KFC_RETURN_IF_ERROR(io::WriteFileAtomic(output, bytes));
  Logger().info("wrote '{}' ({} bytes) in {:.3f} s", output, bytes.size(), SecondsSince(start));
  return std::move(result.report);
}

}  // namespace kfc::pipeline
