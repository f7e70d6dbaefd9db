// SPDX-License-Identifier: Apache-2.0
#include "kfc/check/validate.h"

#include <algorithm>
#include <exception>
#include <map>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "kfc/check/schemas.h"
#include "kfc/check/structure.h"
#include "kfc/io/external_data.h"
#include "onnx/checker.h"
#include "onnx/shape_inference/implementation.h"

namespace kfc::check {
namespace {

std::string OpLabel(const onnx::NodeProto& node) {
  const std::string& d = node.domain();
  return d.empty() || d == "ai.onnx" ? node.op_type() : d + "." + node.op_type();
}

std::string NodeLabel(const onnx::NodeProto& node, const std::string& path, int index) {
  if (!node.name().empty()) return node.name();
  return path + "#" + std::to_string(index);
}

void Record(report::Checks* checks, const std::string& kind, const std::string& check,
            int64_t nodes, const std::string& detail) {
  if (checks == nullptr) return;
  report::Check* c = checks->add_ran();
  c->set_model(kind);
  c->set_check(check);
  c->set_nodes(static_cast<double>(nodes));
  c->set_detail(detail);
}

// Calls fn(node, graph path, index) for every node, subgraphs after the node holding them.
template <typename Fn>
void ForEachNode(const onnx::GraphProto& g, const std::string& path, const Fn& fn) {
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& node = g.node(i);
    fn(node, path, i);
    const std::string label = node.name().empty() ? "#" + std::to_string(i) : node.name();
    for (const auto& attr : node.attribute()) {
      if (attr.has_g()) ForEachNode(attr.g(), path + "/" + label + "/" + attr.name(), fn);
      for (int j = 0; j < attr.graphs_size(); ++j) {
        ForEachNode(attr.graphs(j),
                    path + "/" + label + "/" + attr.name() + "[" + std::to_string(j) + "]", fn);
      }
    }
  }
}

int VersionOf(const std::unordered_map<std::string, int>& imports, const std::string& domain) {
  auto it = imports.find(domain == "ai.onnx" ? "" : domain);
  return it == imports.end() ? 0 : it->second;
}

// Whether every node's schema is known at the model's opset, or its absence is the library's age
// or a custom domain (false when some standard node has no schema for another reason, such as a
// missing opset import: the ONNX checker then says what is wrong).
struct Coverage {
  bool all_known = true;
  bool only_library_gaps = true;
};

Coverage Survey(const onnx::ModelProto& model,
                const std::unordered_map<std::string, int>& imports) {
  Coverage c;
  ForEachNode(model.graph(), "main", [&](const onnx::NodeProto& node, const std::string&, int) {
    const SchemaVerdict v =
        LookUp(node.op_type(), node.domain(), VersionOf(imports, node.domain()));
    if (v.schema != nullptr) return;
    c.all_known = false;
    if (v.reason == "unknown_op") c.only_library_gaps = false;
  });
  return c;
}

// Whether the model imports a domain at an opset past the library's.
bool NewerThanLibrary(const std::unordered_map<std::string, int>& imports) {
  for (const auto& [domain, version] : imports) {
    const int library = LibraryOpset(domain);
    if (library > 0 && version > library) return true;
  }
  return false;
}

Status WholeModel(const onnx::ModelProto& light, const std::string& what, const std::string& kind,
                  int64_t nodes, report::Checks* checks) {
  try {
    onnx::checker::check_model(light);
  } catch (const std::exception& e) {
    return FailedPrecondition(what + " fails the ONNX checker: " + std::string(e.what()));
  }
  try {
    onnx::ModelProto copy = light;
    onnx::ShapeInferenceOptions strict(/*check_type_val=*/true, /*strict_mode_val=*/1,
                                       /*data_prop_val=*/false);
    onnx::shape_inference::InferShapes(copy, onnx::OpSchemaRegistry::Instance(), strict);
  } catch (const std::exception& e) {
    return FailedPrecondition(what + " fails ONNX shape inference: " + std::string(e.what()));
  }
  Record(checks, kind, "onnx_checker", nodes, "whole model");
  Record(checks, kind, "shape_inference", nodes, "whole model, strict");
  return Status::Ok();
}

// The unchecked nodes, grouped by op, reason and detail.
using Unchecked =
    std::map<std::tuple<std::string, std::string, std::string>, std::vector<std::string>>;

// The checker's node checks where the library's schema applies; the rest goes to `unchecked`.
StatusOr<int64_t> NodeByNode(const onnx::ModelProto& light,
                             const std::unordered_map<std::string, int>& imports,
                             const std::string& what, Unchecked* unchecked) {
  onnx::checker::CheckerContext ctx;
  ctx.set_ir_version(static_cast<int>(std::min<int64_t>(light.ir_version(), onnx::IR_VERSION)));
  std::unordered_map<std::string, int> opsets = imports;
  if (opsets.count("")) opsets["ai.onnx"] = opsets[""];
  ctx.set_opset_imports(opsets);
  ctx.set_schema_registry(KnownSchemas::Instance());
  const onnx::checker::LexicalScopeContext no_scope;
  int64_t checked = 0;
  Status status = Status::Ok();
  ForEachNode(
      light.graph(), "main", [&](const onnx::NodeProto& node, const std::string& path, int index) {
        if (!status.ok()) return;
        const int version = VersionOf(imports, node.domain());
        const SchemaVerdict v = LookUp(node.op_type(), node.domain(), version);
        const std::string label = NodeLabel(node, path, index);
        if (v.schema == nullptr) {
          (*unchecked)[{OpLabel(node), v.reason, v.detail}].push_back(label);
          return;
        }
        try {
          for (const auto& attr : node.attribute()) {
            // Subgraphs are walked node by node here; the checker would check them whole.
            if (attr.has_g() || attr.graphs_size() > 0) continue;
            onnx::checker::check_attribute(attr, ctx, no_scope);
          }
          if (v.schema->Deprecated()) {
            throw onnx::checker::ValidationError(
                "op " + node.op_type() + " is deprecated at opset " + std::to_string(version));
          }
          v.schema->Verify(node);
          ++checked;
        } catch (const std::exception& e) {
          if (version > LibraryOpset(node.domain())) {
            // The library's last schema predates the model's: what it rejects may be newer.
            (*unchecked)[{OpLabel(node), "op_newer_than_library",
                          "the ONNX library's " + node.op_type() + "-" +
                              std::to_string(v.schema->SinceVersion()) + " schema rejects it (" +
                              e.what() + "); the model imports opset " + std::to_string(version)}]
                .push_back(label);
            return;
          }
          status = FailedPrecondition(what + " fails the ONNX checker: node '" + label + "' (" +
                                      OpLabel(node) + "): " + e.what());
        }
      });
  KFC_RETURN_IF_ERROR(status);
  onnx::checker::CheckerContext tensors_ctx = ctx;
  try {
    std::function<void(const onnx::GraphProto&)> tensors = [&](const onnx::GraphProto& g) {
      for (const auto& t : g.initializer()) onnx::checker::check_tensor(t, tensors_ctx);
      for (const auto& node : g.node()) {
        for (const auto& attr : node.attribute()) {
          if (attr.has_g()) tensors(attr.g());
          for (const auto& sub : attr.graphs()) tensors(sub);
        }
      }
    };
    tensors(light.graph());
  } catch (const std::exception& e) {
    return FailedPrecondition(what + " fails the ONNX checker: " + std::string(e.what()));
  }
  return checked;
}

// Types of every value shape inference (through KnownSchemas) finds, initializers included.
void CollectTypes(const onnx::GraphProto& g,
                  std::unordered_map<std::string, onnx::TypeProto>* types,
                  std::unordered_map<std::string, const onnx::TensorProto*>* inits,
                  std::unordered_map<std::string, const onnx::NodeProto*>* nodes) {
  for (const auto& t : g.initializer()) (*inits)[t.name()] = &t;
  auto add = [&](const onnx::ValueInfoProto& vi) {
    if (vi.type().has_tensor_type()) (*types)[vi.name()] = vi.type();
  };
  for (const auto& vi : g.input()) add(vi);
  for (const auto& vi : g.value_info()) add(vi);
  for (const auto& vi : g.output()) add(vi);
  for (const auto& node : g.node()) {
    if (!node.name().empty()) (*nodes)[node.name()] = &node;
    for (const auto& attr : node.attribute()) {
      if (attr.has_g()) CollectTypes(attr.g(), types, inits, nodes);
      for (const auto& sub : attr.graphs()) CollectTypes(sub, types, inits, nodes);
    }
  }
}

onnx::TypeProto ElemOnly(int32_t dtype) {
  onnx::TypeProto t;
  t.mutable_tensor_type()->set_elem_type(dtype);
  return t;
}

// The nodes emitted for each layer as a model of their own, through the checker and strict shape
// inference with data propagation; the graph output carries the replaced node's output type, so a
// dtype or shape the emitted nodes get wrong fails here.
Status EmittedNodes(const onnx::ModelProto& inferred, const std::vector<rewrite::EmittedLayer>& all,
                    const std::unordered_map<std::string, int>& imports, const std::string& what,
                    int64_t* count) {
  std::unordered_map<std::string, onnx::TypeProto> types;
  std::unordered_map<std::string, const onnx::TensorProto*> inits;
  std::unordered_map<std::string, const onnx::NodeProto*> nodes;
  CollectTypes(inferred.graph(), &types, &inits, &nodes);
  const int opset = std::min(VersionOf(imports, ""), LibraryOpset(""));
  for (const rewrite::EmittedLayer& e : all) {
    const match::LayerCandidate& layer = e.layer;
    const std::string name = layer.node_name.empty() ? layer.output_name : layer.node_name;
    onnx::ModelProto mini;
    mini.set_ir_version(onnx::IR_VERSION);
    auto* op = mini.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    onnx::GraphProto* g = mini.mutable_graph();
    g->set_name("emitted for " + name);
    std::unordered_set<std::string> defined, declared;
    for (const std::string& n : e.nodes) {
      auto it = nodes.find(n);
      if (it == nodes.end()) {
        return Internal(what + ": emitted node '" + n + "' of layer '" + name + "' is missing");
      }
      const onnx::NodeProto& node = *it->second;
      for (const auto& in : node.input()) {
        if (in.empty() || defined.count(in) || !declared.insert(in).second) continue;
        if (auto t = inits.find(in); t != inits.end()) {
          *g->add_initializer() = *t->second;
          continue;
        }
        auto* vi = g->add_input();
        vi->set_name(in);
        if (in == layer.input_name && layer.input_type.has_tensor_type()) {
          *vi->mutable_type() = layer.input_type;
        } else if (auto t = types.find(in); t != types.end()) {
          *vi->mutable_type() = t->second;
        } else {
          *vi->mutable_type() = ElemOnly(layer.dtype);
        }
      }
      *g->add_node() = node;
      for (const auto& out : node.output()) defined.insert(out);
      ++*count;
    }
    auto* out = g->add_output();
    out->set_name(layer.output_name);
    *out->mutable_type() =
        layer.output_type.has_tensor_type() ? layer.output_type : ElemOnly(layer.dtype);
    try {
      // As a subgraph: an input of unknown rank has no `shape`, which a main graph must have.
      onnx::checker::CheckerContext ctx;
      ctx.set_ir_version(onnx::IR_VERSION);
      ctx.set_opset_imports({{"", opset}});
      ctx.set_is_main_graph(false);
      onnx::checker::LexicalScopeContext scope;
      onnx::checker::check_graph(mini.graph(), ctx, scope);
      onnx::ShapeInferenceOptions strict(/*check_type_val=*/true, /*strict_mode_val=*/1,
                                         /*data_prop_val=*/true);
      onnx::shape_inference::InferShapes(mini, onnx::OpSchemaRegistry::Instance(), strict);
    } catch (const std::exception& ex) {
      return FailedPrecondition(what + ": the nodes emitted for layer '" + name +
                                "' fail the ONNX checker or strict shape inference: " + ex.what());
    }
  }
  return Status::Ok();
}

}  // namespace

Status CheckModel(const onnx::ModelProto& model, const std::string& what, const std::string& kind,
                  const std::vector<rewrite::EmittedLayer>& emitted, report::Checks* checks) {
  // Large weights are checked through their dims only: the copy holds one element of each, so
  // checking neither doubles memory nor trips over protobuf's 2 GiB limit.
  onnx::ModelProto light = io::CopyForChecking(model);
  // ONNX 1.12's checker refuses IR versions above its own (8). IR 9 and 10 only add element types
  // (float8, int4) and function overloads; a model that uses the new types still fails on its
  // unknown types, so checking the rest as IR 8 loses nothing. Above 10, the checker's refusal
  // stands.
  const bool known_ir = light.ir_version() <= kMaxIrVersion;
  if (light.ir_version() > onnx::IR_VERSION && known_ir) light.set_ir_version(onnx::IR_VERSION);
  const std::unordered_map<std::string, int> imports = OpsetImports(model);
  const int64_t nodes = CountNodes(model.graph());
  const Coverage coverage = Survey(model, imports);
  if (!coverage.only_library_gaps || !known_ir) return WholeModel(light, what, kind, nodes, checks);
  if (coverage.all_known) {
    Status whole = WholeModel(light, what, kind, nodes, checks);
    if (whole.ok() || !NewerThanLibrary(imports)) return whole;
    // The library's last schemas predate the model's opset: what they reject (an attribute such
    // as Cast-19's saturate) may be newer than them. Node by node, that becomes "not checked".
  }

  KFC_RETURN_IF_ERROR(CheckStructure(light, what));
  Record(checks, kind, "structure", nodes, "every graph: SSA, defined before use, scopes");
  Unchecked unchecked;
  KFC_ASSIGN_OR_RETURN(const int64_t checked, NodeByNode(light, imports, what, &unchecked));
  Record(checks, kind, "onnx_checker", checked,
         "node by node, where the ONNX library knows the schema at the model's opset");
  onnx::ModelProto inferred = light;
  std::string inference = "through the schemas the ONNX library knows, not strict";
  try {
    onnx::shape_inference::InferShapes(inferred, KnownSchemas::Instance());
  } catch (const std::exception& e) {
    inference += "; stopped: " + std::string(e.what());
  }
  Record(checks, kind, "shape_inference", checked, inference);
  if (!emitted.empty()) {
    int64_t count = 0;
    KFC_RETURN_IF_ERROR(EmittedNodes(inferred, emitted, imports, what, &count));
    Record(checks, kind, "emitted_nodes", count,
           "per layer: checker and strict shape inference with data propagation, against the "
           "replaced node's input and output types");
  }
  if (checks != nullptr) {
    for (const auto& [key, names] : unchecked) {
      report::UncheckedOp* u = checks->add_unchecked();
      u->set_model(kind);
      u->set_op_type(std::get<0>(key));
      u->set_reason(std::get<1>(key));
      u->set_detail(std::get<2>(key));
      for (const auto& n : names) u->add_nodes(n);
    }
  }
  return Status::Ok();
}

}  // namespace kfc::check
