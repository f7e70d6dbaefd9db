// SPDX-License-Identifier: Apache-2.0
// rewrite and check: the graph edit (rewrite::ApplyKronRewrites) and the check of the result
// (check::CheckModel, the emitted nodes strictly), with the model's counts taken before the edit
// and after it.
#include <functional>

#include "kfc/check/validate.h"
#include "kfc/io/model_io.h"
#include "kfc/pipeline/phases.h"
#include "kfc/tensor/tensor.h"

namespace kfc::pipeline {
namespace {

// The main graph's initializers, and the `value` tensors of Constant nodes in every graph
// (exporters such as paddle2onnx store weights there).
ModelTotals CountInitializers(const onnx::GraphProto& g) {
  ModelTotals t;
  auto add = [&](const onnx::TensorProto& init) {
    auto n = tensor::NumElements(init.dims(), init.name());
    if (n.ok()) t.params += static_cast<double>(*n);
    t.bytes += static_cast<double>(tensor::StoredDataBytes(init));
  };
  for (const auto& init : g.initializer()) add(init);
  std::function<void(const onnx::GraphProto&)> constants = [&](const onnx::GraphProto& graph) {
    for (const auto& node : graph.node()) {
      const bool constant =
          node.op_type() == "Constant" && (node.domain().empty() || node.domain() == "ai.onnx");
      for (const auto& attr : node.attribute()) {
        if (constant && attr.name() == "value" && attr.has_t()) add(attr.t());
        if (attr.has_g()) constants(attr.g());
        for (const auto& sub : attr.graphs()) constants(sub);
      }
    }
  };
  constants(g);
  return t;
}

}  // namespace

StatusOr<RewriteOutcome> RewriteAndCheck(const std::vector<rewrite::KronRewrite>& rewrites,
                                         onnx::ModelProto* model) {
  RewriteOutcome out;
  // The counts of the input, taken before the rewrite edits it in place.
  out.before = CountInitializers(model->graph());
  out.file_bytes_before =
      static_cast<double>(model->ByteSizeLong() + io::ExternalDataBytes(*model));
  std::vector<rewrite::EmittedLayer> emitted;
  KFC_RETURN_IF_ERROR(rewrite::ApplyKronRewrites(model, rewrites, &emitted));
  KFC_RETURN_IF_ERROR(check::CheckModel(*model, "output model", "output", emitted, &out.checks));
  out.after = CountInitializers(model->graph());
  KFC_ASSIGN_OR_RETURN(const int64_t file_bytes_after, io::InlineSize(model));
  out.file_bytes_after = static_cast<double>(file_bytes_after);
  return out;
}

}  // namespace kfc::pipeline
