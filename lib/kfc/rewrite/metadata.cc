#include "kfc/rewrite/metadata.h"

namespace kfc::rewrite {

void ReplaceMetadata(onnx::ModelProto* model, const std::string& prefix,
                     const std::vector<std::pair<std::string, std::string>>& entries) {
  google::protobuf::RepeatedPtrField<onnx::StringStringEntryProto> kept;
  for (auto& e : *model->mutable_metadata_props()) {
    if (e.key().compare(0, prefix.size(), prefix) != 0) kept.Add()->Swap(&e);
  }
  for (const auto& [key, value] : entries) {
    auto* e = kept.Add();
    e->set_key(key);
    e->set_value(value);
  }
  model->mutable_metadata_props()->Swap(&kept);
}

}  // namespace kfc::rewrite
