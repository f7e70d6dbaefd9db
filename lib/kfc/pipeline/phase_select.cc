// select: which Gemm/MatMul layers go on, from the graph alone (eligibility, --include/--exclude,
// --min-params) and whether their weight can be read.
#include "kfc/pipeline/phases.h"

namespace kfc::pipeline {

StatusOr<std::vector<LayerState>> SelectLayers(const std::vector<match::LayerCandidate>& candidates,
                                               const Options& o, const NameFilter& filter,
                                               const Weights& weights) {
  std::vector<LayerState> states(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    const match::LayerCandidate& c = candidates[i];
    LayerState& s = states[i];
    s.c = &c;
    const double kn = static_cast<double>(c.k) * static_cast<double>(c.n);
    if (!c.eligible()) {
      s.Skip(c.skip_reason, c.skip_detail);
      continue;
    }
    if (const std::string why = filter.Reject(c.node_name, c.weight_name); !why.empty()) {
      s.Skip(why, why == "excluded" ? "name matches an --exclude pattern"
                                    : "name matches no --include pattern");
      continue;
    }
    if (kn < static_cast<double>(o.min_params)) {
      s.Skip("below_min_params",
             std::to_string(c.k * c.n) + " < " + std::to_string(o.min_params) + " parameters");
      continue;
    }
    if (WeightSource(weights.model, c) == nullptr) {
      return Internal("weight '" + c.weight_name + "' disappeared");
    }
    if (!weights.Readable(c)) {
      s.Skip("external_data",
             "weight data is stored in an external file and the caller gave no reader for it");
      continue;
    }
    s.considered = true;
  }
  return states;
}

}  // namespace kfc::pipeline
