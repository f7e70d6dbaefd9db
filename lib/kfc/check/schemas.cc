// SPDX-License-Identifier: Apache-2.0
#include "kfc/check/schemas.h"

#include <map>

namespace kfc::check {
namespace {

std::string Normalized(const std::string& domain) { return domain == "ai.onnx" ? "" : domain; }

// Ops of the default domain that ONNX 1.12 knows and that changed their inputs, attributes or
// semantics at an opset after 17 (the ONNX changelog, opsets 18-22): the version of that change.
// Later versions that only added element types (Cast, Reshape, Shape, Transpose, Squeeze, ... at 19
// and 21, bfloat16 for many ops at 22) are not listed: the library's schema still describes them.
// Ops new after 17 (Gelu, GroupNormalization, AffineGrid, ...) have no library schema at all.
const std::map<std::string, int>& ChangedAfterLibrary() {
  static const std::map<std::string, int> changed = {
      // Opset 18: axes as an input of the Reduce ops and Pad; Split's num_outputs; Resize's
      // antialias, axes and keep_aspect_ratio_policy; Scatter reductions max/min; LpPool
      // ceil_mode; Optional ops on plain tensors.
      {"ReduceL1", 18},
      {"ReduceL2", 18},
      {"ReduceLogSum", 18},
      {"ReduceLogSumExp", 18},
      {"ReduceMax", 18},
      {"ReduceMean", 18},
      {"ReduceMin", 18},
      {"ReduceProd", 18},
      {"ReduceSumSquare", 18},
      {"Split", 18},
      {"Pad", 18},
      {"Resize", 18},
      {"ScatterElements", 18},
      {"ScatterND", 18},
      {"LpPool", 18},
      {"OptionalHasElement", 18},
      {"OptionalGetElement", 18},
      // Opset 19: AveragePool dilations; (De)QuantizeLinear float8 and saturate.
      {"AveragePool", 19},
      {"DequantizeLinear", 19},
      {"QuantizeLinear", 19},
      // Opset 20: DFT's dft_length and axis as inputs; GridSample's modes renamed.
      {"DFT", 20},
      {"GridSample", 20},
  };
  return changed;
}

}  // namespace

int LibraryOpset(const std::string& domain) {
  const auto& map = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  auto it = map.find(Normalized(domain));
  return it == map.end() ? 0 : it->second.second;
}

SchemaVerdict LookUp(const std::string& op, const std::string& domain, int version) {
  SchemaVerdict v;
  const std::string d = Normalized(domain);
  const int library = LibraryOpset(d);
  const std::string label = d.empty() ? op : d + "." + op;
  if (library == 0) {
    v.reason = "custom_domain";
    v.detail = "the ONNX library has no schemas for domain '" + d + "'";
    return v;
  }
  if (version <= library) {
    v.schema = onnx::OpSchemaRegistry::Schema(op, version, d);
    if (v.schema == nullptr) {
      v.reason = "unknown_op";
      v.detail = label + " does not exist at opset " + std::to_string(version);
    }
    return v;
  }
  const std::string newer = "the model imports opset " + std::to_string(version) +
                            ", the ONNX library knows up to " + std::to_string(library);
  if (!d.empty()) {
    v.reason = "op_newer_than_library";
    v.detail = label + ": " + newer + " (no history of this domain's later versions)";
    return v;
  }
  const onnx::OpSchema* last = onnx::OpSchemaRegistry::Schema(op, library, d);
  if (last == nullptr) {
    v.reason = "op_newer_than_library";
    v.detail = op + " has no schema in the ONNX library; " + newer;
    return v;
  }
  auto changed = ChangedAfterLibrary().find(op);
  if (changed != ChangedAfterLibrary().end() && changed->second <= version) {
    v.reason = "op_newer_than_library";
    v.detail = op + "-" + std::to_string(changed->second) + " changed its signature; " + newer;
    return v;
  }
  v.schema = last;
  return v;
}

const onnx::OpSchema* KnownSchemas::GetSchema(const std::string& key, const int maxInclusiveVersion,
                                              const std::string& domain) const {
  return LookUp(key, domain, maxInclusiveVersion).schema;
}

const KnownSchemas* KnownSchemas::Instance() {
  static const KnownSchemas instance;
  return &instance;
}

void LoadSchemas() { (void)onnx::OpSchemaRegistry::Schema("MatMul", 1, ""); }

std::unordered_map<std::string, int> OpsetImports(const onnx::ModelProto& model) {
  std::unordered_map<std::string, int> out;
  for (const auto& op : model.opset_import()) {
    out[Normalized(op.domain())] = static_cast<int>(op.version());
  }
  return out;
}

}  // namespace kfc::check
