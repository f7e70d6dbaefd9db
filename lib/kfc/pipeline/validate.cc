// SPDX-License-Identifier: Apache-2.0
// Checks at the pipeline's boundaries: option values, and a model (check::CheckModel).
#include "kfc/check/validate.h"

#include <string>

#include "kfc/io/model_io.h"
#include "kfc/pipeline/compress.h"
#include "kfc/pipeline/layer_state.h"
#include "kfc/pipeline/name_filter.h"

namespace kfc::pipeline {

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
  return check::CheckModel(model, what, "input", {}, nullptr);
}

}  // namespace kfc::pipeline
