// SPDX-License-Identifier: Apache-2.0
// Which operator schemas the ONNX library linked in (1.12 on Debian 12: default domain up to opset
// 17) knows at a model's opset, and a schema registry that answers only with those.
//
// Why: OpSchemaRegistry::Schema(op, 18, "") returns the newest schema with since_version <= 18,
// which for ReduceMean is ReduceMean-13 (axes an attribute), not ReduceMean-18 (axes an input).
// Checking or inferring a newer model with it is wrong, not just incomplete. So for an opset past
// the library's, a node counts as known only when its op did not change its signature or semantics
// in the versions the library lacks (a table from the ONNX changelog, opsets 18-22); ops whose
// later versions only added element types (Reshape-19/21, Cast-19/21, ...) keep the library's last
// schema, which checks everything else about them.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "onnx/defs/schema.h"
#include "onnx/onnx_pb.h"

namespace kfc::check {

// Newest opset the library knows for `domain` ("" and "ai.onnx" are the default domain); 0 when
// the library registers no schemas for the domain (custom domains such as com.microsoft).
int LibraryOpset(const std::string& domain);

// Why a node's schema cannot be used at `version` of its domain, as a snake_case reason with a
// sentence; reason empty when the library's schema applies.
struct SchemaVerdict {
  const onnx::OpSchema* schema = nullptr;
  std::string reason;  // "custom_domain", "op_newer_than_library", "unknown_op"
  std::string detail;
};
SchemaVerdict LookUp(const std::string& op, const std::string& domain, int version);

// A registry that returns the library's schema only where LookUp finds it applies, nullptr
// elsewhere: shape inference then leaves those nodes' outputs unknown instead of guessing.
class KnownSchemas final : public onnx::ISchemaRegistry {
 public:
  const onnx::OpSchema* GetSchema(const std::string& key, const int maxInclusiveVersion,
                                  const std::string& domain) const override;
  static const KnownSchemas* Instance();
};

// Builds the library's schema registry, which its first use does anyway (ONNX registers every
// opset's schemas at once: about 8 ms of CPU). Safe to call from any thread, at any time; a second
// thread that needs the registry meanwhile waits for it.
void LoadSchemas();

// The model's opset per domain ("" for the default domain, "ai.onnx" folded into it).
std::unordered_map<std::string, int> OpsetImports(const onnx::ModelProto& model);

}  // namespace kfc::check
