// rewrite and check: the graph edit (rewrite::ApplyKronRewrites) and the full ONNX check of the
// result, with the model's counts taken before the edit and after it.
#include "kfc/io/model_io.h"
#include "kfc/pipeline/phases.h"
#include "kfc/tensor/tensor.h"

namespace kfc::pipeline {
namespace {

ModelTotals CountInitializers(const onnx::GraphProto& g) {
  ModelTotals t;
  for (const auto& init : g.initializer()) {
    auto n = tensor::NumElements(init.dims(), init.name());
    if (n.ok()) t.params += static_cast<double>(*n);
    t.bytes += static_cast<double>(tensor::StoredDataBytes(init));
  }
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
  KFC_RETURN_IF_ERROR(rewrite::ApplyKronRewrites(model, rewrites));
  KFC_RETURN_IF_ERROR(CheckModel(*model, "output model"));
  out.after = CountInitializers(model->graph());
  KFC_ASSIGN_OR_RETURN(const int64_t file_bytes_after, io::InlineSize(model));
  out.file_bytes_after = static_cast<double>(file_bytes_after);
  return out;
}

}  // namespace kfc::pipeline
