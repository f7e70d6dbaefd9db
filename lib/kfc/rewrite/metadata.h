// The model-level metadata_props of a rewritten model: the input's entries are kept, and the
// entries under one key prefix (kfc-compress's own, "kfc_compress.") are replaced as a whole.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "onnx/onnx_pb.h"

namespace kfc::rewrite {

// Removes every metadata_props entry whose key starts with `prefix`, then appends `entries` in
// their order (each key should start with `prefix`). Other entries keep their order and values.
void ReplaceMetadata(onnx::ModelProto* model, const std::string& prefix,
                     const std::vector<std::pair<std::string, std::string>>& entries);

}  // namespace kfc::rewrite
