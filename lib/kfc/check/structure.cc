// SPDX-License-Identifier: Apache-2.0
#include "kfc/check/structure.h"

#include <string>
#include <unordered_set>
#include <vector>

namespace kfc::check {
namespace {

// The names defined in one graph, with a link to the enclosing graph's (as they stood at the node
// holding this graph).
struct Scope {
  std::unordered_set<std::string> names;
  const Scope* outer = nullptr;
  bool Has(const std::string& n) const {
    return names.count(n) > 0 || (outer != nullptr && outer->Has(n));
  }
};

std::string NodeLabel(const onnx::NodeProto& node, int index) {
  return (node.name().empty() ? "#" + std::to_string(index) : "'" + node.name() + "'") + " (" +
         (node.domain().empty() ? "" : node.domain() + ".") + node.op_type() + ")";
}

Status CheckGraph(const onnx::GraphProto& g, const std::string& path, const Scope* outer,
                  const std::string& what) {
  Scope scope;
  scope.outer = outer;
  auto fail = [&](const std::string& cause) {
    return FailedPrecondition(what + " fails the structure check: graph '" + path + "': " + cause);
  };
  auto define = [&](const std::string& name, const std::string& by) -> Status {
    if (name.empty()) return Status::Ok();
    if (!scope.names.insert(name).second) {
      return fail("'" + name + "' is defined twice (again by " + by + ")");
    }
    return Status::Ok();
  };
  for (const auto& vi : g.input()) KFC_RETURN_IF_ERROR(define(vi.name(), "a graph input"));
  // An initializer may also be listed as an input (IR 3 requires it): one definition.
  for (const auto& t : g.initializer()) scope.names.insert(t.name());
  for (const auto& sp : g.sparse_initializer()) scope.names.insert(sp.values().name());
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& node = g.node(i);
    if (node.op_type().empty()) return fail("node " + NodeLabel(node, i) + " has no op_type");
    for (const auto& in : node.input()) {
      if (!in.empty() && !scope.Has(in)) {
        return fail("node " + NodeLabel(node, i) + " reads '" + in +
                    "', which is not defined before it");
      }
    }
    const std::string label = node.name().empty() ? "#" + std::to_string(i) : node.name();
    for (const auto& attr : node.attribute()) {
      if (attr.has_g()) {
        KFC_RETURN_IF_ERROR(
            CheckGraph(attr.g(), path + "/" + label + "/" + attr.name(), &scope, what));
      }
      for (int j = 0; j < attr.graphs_size(); ++j) {
        KFC_RETURN_IF_ERROR(CheckGraph(
            attr.graphs(j), path + "/" + label + "/" + attr.name() + "[" + std::to_string(j) + "]",
            &scope, what));
      }
    }
    for (const auto& out : node.output()) {
      KFC_RETURN_IF_ERROR(define(out, "node " + NodeLabel(node, i)));
    }
  }
  for (const auto& out : g.output()) {
    if (!scope.Has(out.name())) {
      return fail("graph output '" + out.name() + "' is not defined");
    }
  }
  return Status::Ok();
}

}  // namespace

Status CheckStructure(const onnx::ModelProto& model, const std::string& what) {
  return CheckGraph(model.graph(), "main", nullptr, what);
}

int64_t CountNodes(const onnx::GraphProto& g) {
  int64_t n = g.node_size();
  for (const auto& node : g.node()) {
    for (const auto& attr : node.attribute()) {
      if (attr.has_g()) n += CountNodes(attr.g());
      for (const auto& sub : attr.graphs()) n += CountNodes(sub);
    }
  }
  return n;
}

}  // namespace kfc::check
