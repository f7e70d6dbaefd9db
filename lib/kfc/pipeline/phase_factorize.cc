// SPDX-License-Identifier: Apache-2.0
// factorize: each distinct factorization (rewrite::FactorIdentity::FactorsKey, and the budget)
// computed once, in parallel, and spilled as soon as it is done; then each factorized layer's
// outcome, in layer order, and its rewrite.
#include <map>
#include <memory>
#include <new>

#include "kfc/core/logging.h"
#include "kfc/io/spill.h"
#include "kfc/kron/rearrange.h"
#include "kfc/kron/scratch.h"
#include "kfc/kron/weighted.h"
#include "kfc/pipeline/decide_layer.h"
#include "kfc/pipeline/layer_report.h"
#include "kfc/pipeline/phases.h"
#include "kfc/pipeline/provenance.h"
#include "kfc/tensor/tensor.h"

namespace kfc::pipeline {
namespace {

// One factorization to compute: a weight (in one orientation, with its calibration data) at a
// decided shape and rank, under one budget; every layer that asks for the same shares it.
struct FactorJob {
  size_t layer = 0;  // the first layer asking for it
  Decision dec;      // the decision; under --max-error, with the terms added to meet the target
  kron::WeightedFactors wf;
  std::vector<size_t> layers;  // every layer asking for it
  // With a spill: the encoded constants for each way its layers store them
  // (rewrite::FactorIdentity::EncodingKey).
  std::map<std::string, rewrite::StackedInitializers> encoded;
  // Where the weight holds NaN or Inf, when this read was its check
  // (LayerState::check_in_factorize): its layers then stay dense, `non_finite_weight`.
  std::string not_finite;
};

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
  // The calibration statistics' arrays, parked since the decision, in memory for this job only.
  std::optional<kron::InputStats> stats = s.stats;
  StatsInUse stats_in_use(s.stats_parked, stats ? &*stats : nullptr);
  KFC_RETURN_IF_ERROR(stats_in_use.Load());
  std::vector<float> w;
  std::vector<double> w64;
  // The finite check's norm, reused by every weight-only factorization of this W below.
  kron::FactorizeOptions checked;
  Decision& d = job->dec;
  // A float32 weight-only layer on the randomized path is factorized from R made in W's own memory
  // (same bits): no second K x N buffer per thread (docs/performance.md, peak RSS).
  const bool in_place = !in_double && c.dtype == onnx::TensorProto::FLOAT &&
                        !Calibrated(s, d.shape) &&
                        kron::ChooseSvdMethod(d.shape.k1 * d.shape.n1, d.shape.k2 * d.shape.n2,
                                              d.rank, checked.svd) == kron::SvdMethod::kRandomized;
  std::unique_ptr<float[]> r;  // in place: R, made from W's blocks as they are read
  // A NaN or infinity found by this read, its check (LayerState::check_in_factorize); an error
  // where the weight was checked before.
  auto not_finite = [&](const Status& found) {
    if (!s.check_in_factorize) return found;
    job->not_finite = found.message();
    return Status::Ok();
  };
  if (in_double) {
    KFC_ASSIGN_OR_RETURN(w64, weights.Matrix64(c));
  } else if (in_place) {
    KFC_RETURN_IF_ERROR(kron::ValidateDims(c.k, c.n, d.shape));
    try {
      r.reset(new float[static_cast<size_t>(c.k * c.n)]);
    } catch (const std::bad_alloc&) {
      return Internal("cannot allocate the rearranged matrix of weight '" + c.weight_name + "'");
    }
    // The norm and the finite check ride on the rearrangement (same bits as CheckedFrobeniusNorm).
    kron::BlockRearranger rearranger(c.k, c.n, d.shape, r.get());
    Status found;
    const Status read =
        weights.MatrixBlocks(c, rearranger.block_rows(), [&](const float* block) -> Status {
          found = rearranger.Add(block);
          return found;
        });
    if (!found.ok()) return not_finite(found);
    KFC_RETURN_IF_ERROR(read);
    if (!rearranger.done()) {
      return Internal("weight '" + c.weight_name + "': not all of it was read");
    }
    checked.frobenius_norm = rearranger.norm();
  } else {
    KFC_ASSIGN_OR_RETURN(w, weights.Matrix(c));
    if (s.check_in_factorize) {
      const StatusOr<double> finite = kron::CheckedFrobeniusNorm(w.data(), c.k, c.n);
      if (!finite.ok()) return not_finite(finite.status());
      checked.frobenius_norm = *finite;
    }
  }
  for (;;) {
    kron::WeightedFactors& wf = job->wf;
    if (in_place) {
      wf = kron::WeightedFactors{};
      KFC_ASSIGN_OR_RETURN(wf.factors,
                           kron::FactorizeRearranged(r.get(), c.k, c.n, d.shape, d.rank, checked));
    } else if (in_double) {
      wf = kron::WeightedFactors{};
      KFC_ASSIGN_OR_RETURN(wf.factors, kron::Factorize(w64.data(), c.k, c.n, d.shape, d.rank));
    } else if (Calibrated(s, d.shape)) {
      KFC_ASSIGN_OR_RETURN(wf,
                           kron::FactorizeWeighted(w.data(), c.k, c.n, d.shape, d.rank, *stats));
    } else {
      wf = kron::WeightedFactors{};
      KFC_ASSIGN_OR_RETURN(wf.factors,
                           kron::Factorize(w.data(), c.k, c.n, d.shape, d.rank, checked));
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
    if (next.rank > d.shape.MaxRank() || !Profitable(o, c, next) ||
        TooSlow(o, c, next.shape, next.rank)) {
      break;
    }
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
    const std::string key = IdentityOf(s, job->dec.shape, job->dec.rank).EncodingKey();
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

}  // namespace

StatusOr<std::vector<rewrite::KronRewrite>> Factorize(const Options& o, const Weights& weights,
                                                      std::vector<LayerState>* states) {
  // Which layers need which factorization. A weight shared by several layers is factorized once.
  std::vector<FactorJob> jobs;
  std::map<std::string, size_t> job_of;  // by FactorsKey and budget
  std::vector<size_t> layer_job(states->size(), SIZE_MAX);
  for (size_t i = 0; i < states->size(); ++i) {
    LayerState& s = (*states)[i];
    if (!s.considered) continue;
    const Decision& d = s.dec;
    if (!d.compress) {
      s.Skip(d.skip_reason, d.skip_detail);
      continue;
    }
    s.shaped = true;
    if (!Profitable(o, *s.c, d)) {
      s.Skip("unprofitable", "rank " + std::to_string(d.rank) + " of " + ShapeText(d.shape) +
                                 " needs " + std::to_string(d.rank * d.shape.ParamsPerTerm()) +
                                 " parameters, dense has " + std::to_string(s.c->k * s.c->n));
      continue;
    }
    if (TooSlow(o, *s.c, d.shape, d.rank)) {
      s.Skip("slower_than_dense", SlowerDetail(o, *s.c, d.shape, d.rank));
      continue;
    }
    const std::string key =
        IdentityOf(s, d.shape, d.rank).FactorsKey() +
        (s.dir.budget == Budget::kMaxError ? "|max_error:" + Num(s.dir.max_error) : "");
    auto [it, fresh] = job_of.emplace(key, jobs.size());
    if (fresh) jobs.push_back({i, d, {}, {}, {}, {}});
    jobs[it->second].layers.push_back(i);
    layer_job[i] = it->second;
  }
  std::vector<size_t> job_first;  // each job's first layer
  for (const FactorJob& job : jobs) job_first.push_back(job.layer);
  ProgressMeter meter(o, "factorizing", CandidatesAt(*states, job_first));
  KFC_RETURN_IF_ERROR(RunParallel(o, jobs.size(), [&](size_t j) -> Status {
    const LayerState& s = (*states)[jobs[j].layer];
    Status done = RunFactorJob(o, weights, s, &jobs[j]);
    kron::ReleaseWhiteningCache();  // at most one layer's whitening per thread
    if (!done.ok()) return done.WithContext("layer '" + s.c->node_name + "'");
    // Spill errors name the output already.
    if (o.spill != nullptr && jobs[j].not_finite.empty()) {
      done = SpillJob(o.spill, *states, &jobs[j]);
    }
    if (!done.ok()) return done;
    meter.Done(j);
    return Status::Ok();
  }));
  kron::ReleaseScratch();  // this thread's; the other workers' went with them
  meter.Finish();

  std::vector<rewrite::KronRewrite> rewrites;
  std::map<std::string, std::string> emitted;  // FactorIdentity::Key -> first layer emitting it
  for (size_t i = 0; i < states->size(); ++i) {
    if (layer_job[i] == SIZE_MAX) continue;
    LayerState& s = (*states)[i];
    const match::LayerCandidate& c = *s.c;
    const FactorJob& job = jobs[layer_job[i]];
    if (!job.not_finite.empty()) {
      s.SkipNonFinite(job.not_finite);
      continue;
    }
    const Decision& d = job.dec;
    kron::WeightedFactors wf = job.wf;
    if (MissesTarget(s, d, wf)) {
      s.Skip("error_target_unmet", "the factorization's relative error " +
                                       Num(Judged(s, d.shape, wf)) + " stays above " +
                                       Num(s.dir.max_error) + " at every profitable rank");
      continue;
    }
    kron::KronFactors& f = wf.factors;
    // Layers whose stacked factors come out identical (same identity: weight, shape, rank, order,
    // alpha, dtype, form) share the initializers too (the rewriter dedupes by content), and count
    // no new parameters.
    const rewrite::FactorIdentity id = IdentityOf(s, d.shape, d.rank);
    Factored out;
    out.shape = d.shape;
    out.rank = d.rank;
    out.order = id.order;
    out.relative_error = f.relative_error;
    if (auto [first, inserted] = emitted.emplace(id.Key(), c.node_name); !inserted) {
      out.shares_factors = true;
      out.shares_factors_with = first->second;
    }
    if (s.stats && !Calibrated(s, d.shape)) {
      s.calibrated = false;
      s.calibration_note = "weight-only: Kronecker-factored statistics are kept for k1 = " +
                           std::to_string(s.stats->kf_k1) +
                           ", the chosen shape has k1 = " + std::to_string(d.shape.k1);
    } else if (s.stats) {
      out.data_error = wf.data_error;
      out.weight_only_data_error = wf.weight_only_data_error;
      out.used_weight_only = wf.used_weight_only;
      if (wf.used_weight_only) {
        s.calibration_note = "the weight-only factors had the smaller data error; kept";
      }
    }
    if (o.record_charts && !out.shares_factors && !s.stats && f.frobenius_norm > 0) {
      constexpr size_t kMaxSpectrum = 512;
      for (size_t t = 0; t < f.singular_values.size() && t < kMaxSpectrum; ++t) {
        out.spectrum.push_back(RoundSignificant(f.singular_values[t] / f.frobenius_norm));
      }
      out.spectrum_complete = f.method == kron::SvdMethod::kExact;
    }
    s.factored = out;
    Logger().debug("layer '{}': {}x{} -> {} rank {}, relative error {:.10f}, {} power iterations",
                   c.node_name, c.k, c.n, ShapeText(d.shape), d.rank, f.relative_error,
                   f.power_iterations);
    s.factors = f;
    s.bias_correction = wf.bias_correction;
    rewrites.push_back({c, std::move(f), id.order, std::nullopt, std::move(wf.bias_correction),
                        LayerDocString(LayerReportOf(o, s))});
    if (o.spill != nullptr) rewrites.back().encoded = job.encoded.at(id.EncodingKey());
  }
  return rewrites;
}

}  // namespace kfc::pipeline
