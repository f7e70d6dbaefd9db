// Checks at the pipeline's boundaries: option values, and a model against the ONNX checker and
// strict shape inference.
#include <exception>
#include <string>

#include "kfc/io/model_io.h"
#include "kfc/pipeline/compress.h"
#include "kfc/pipeline/layer_state.h"
#include "kfc/pipeline/name_filter.h"
#include "onnx/checker.h"
#include "onnx/shape_inference/implementation.h"

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

}  // namespace kfc::pipeline
