// read and check: each selected weight read once, in parallel, and checked to be finite; layers
// with NaN or Inf weights stay dense (`non_finite_weight`).
#include "kfc/kron/factorize.h"
#include "kfc/pipeline/phases.h"

namespace kfc::pipeline {

Status ReadAndCheck(const Options& o, const Weights& weights, std::vector<LayerState>* states) {
  const std::vector<size_t> order = ConsideredLayers(*states);
  std::vector<std::string> not_finite(states->size());
  ProgressMeter reading(o, "reading", CandidatesAt(*states, order));
  KFC_RETURN_IF_ERROR(RunParallel(o, order.size(), [&](size_t j) -> Status {
    const match::LayerCandidate& c = *(*states)[order[j]].c;
    auto w = weights.Matrix(c);
    if (!w.ok()) return w.status().WithContext("layer '" + c.node_name + "'");
    const StatusOr<double> finite = kron::CheckedFrobeniusNorm(w->data(), c.k, c.n);
    if (!finite.ok()) not_finite[order[j]] = finite.status().message();
    reading.Done(j);
    return Status::Ok();
  }));
  reading.Finish();
  for (size_t i : order) {
    if (not_finite[i].empty()) continue;
    (*states)[i].considered = false;
    (*states)[i].Skip("non_finite_weight", not_finite[i]);
  }
  return Status::Ok();
}

}  // namespace kfc::pipeline
