// SPDX-License-Identifier: Apache-2.0
// Read-only scan of a model: one LayerCandidate per Gemm/MatMul node, in every graph (subgraphs
// included), either eligible for compression or carrying the skip reason. Never edits the model.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "kfc/graph/scope.h"
#include "onnx/onnx_pb.h"

namespace kfc::match {

// The lowest opset at which the emitted ops (Reshape with a shape input, numpy-style MatMul, Add
// and Mul with multidirectional broadcasting) exist in the form the rewriter uses.
inline constexpr int64_t kMinOpset = 7;

// Where a layer's weight data lives, resolved once by FindLayers so that no later stage searches
// for it again: an initializer (its index in the graph `depth` steps into the layer's scope) or
// the `value` tensor of a Constant node (its index in the layer's own graph, depth ==
// scope.size()); `external` when that tensor's data is in an external file.
struct WeightRef {
  enum class Kind { kNone, kInitializer, kConstantNode };
  Kind kind = Kind::kNone;  // kNone: no constant weight was found (the layer is skipped)
  size_t depth = 0;
  int index = -1;
  bool external = false;
};

struct LayerCandidate {
  std::string graph_path = "main";  // "main", or "main/<node>/<attribute>" for subgraphs
  graph::Scope scope;               // steps from the main graph to the node's graph (empty: main)
  int node_index = -1;              // position in its graph's node list
  std::string node_name;
  std::string op_type;      // "Gemm" or "MatMul"
  std::string input_name;   // the activation X (Gemm A, MatMul's non-constant input)
  std::string weight_name;  // the constant input (Gemm B, MatMul's constant input)
  std::string output_name;
  // Gemm attributes and bias (bias_name empty when absent). trans_a: X is stored [K, M].
  // trans_b: the weight is stored [N, K] (Gemm transB=1, or the W of a weight-first MatMul).
  bool trans_a = false;
  bool trans_b = false;
  // MatMul(W, X) with W constant [M, K] and X [..., K, C]: Y[..., M, C] = W X. The layer's K x N
  // matrix is then W^T (N = M), acting on X's second-to-last axis; trans_b is set as well.
  // input_cols is C when static, -1 when not.
  bool weight_first = false;
  int64_t input_cols = -1;
  float alpha = 1.0f;
  float beta = 1.0f;
  std::string bias_name;
  // W as the K x N matrix of y = x W (primer convention); 0 when unknown.
  int64_t k = 0;
  int64_t n = 0;
  int32_t dtype = 0;  // weight element type as the layer consumes it; 0 when unknown
  // Where the weight's data lives: an initializer named weight_tensor_name, or the `value` tensor
  // of the Constant node at index constant_node, reached through `chain`: Identity/Cast node
  // indices from the consumer towards the source. Chain and Constant nodes are in the node's own
  // graph; the initializer is in the graph `source_depth` steps into `scope` (0: the main graph;
  // scope.size(): the node's graph), since a subgraph sees the initializers of enclosing graphs.
  // Every value on that path has this layer as its only use, so the whole path can go once the
  // layer is rewritten.
  std::string weight_tensor_name;
  int constant_node = -1;
  std::vector<int> chain;
  size_t source_depth = 0;
  int32_t stored_dtype = 0;  // element type of the source tensor (before any Cast)
  WeightRef weight;          // the same source, as a reference into the model
  // The source's value name (initializer name or the Constant's output) and how many Gemm/MatMul
  // weight paths (in any graph) end at it: > 1 means the layers share one weight.
  std::string source_value;
  int sharing_layers = 1;
  int64_t input_rank = 0;  // rank of X; 0 when unknown
  // X's and Y's types as shape inference (with data propagation) found them on the input model;
  // no tensor_type when unknown. The output check compares the emitted nodes against them.
  onnx::TypeProto input_type;
  onnx::TypeProto output_type;
  std::string skip_reason;  // snake_case; empty when eligible
  std::string skip_detail;  // one sentence for people

  bool eligible() const { return skip_reason.empty(); }
};

// Whether the layer reads its features along the activation's second-to-last axis, so that each
// column of X [.., K, C] is one sample: Gemm with transA=1 (A is [K, M]) and MatMul(W, X).
inline bool ColumnSamples(const LayerCandidate& c) { return c.trans_a || c.weight_first; }

// The default ("" or "ai.onnx") domain's opset version; 0 when not imported.
int64_t DefaultOpset(const onnx::ModelProto& model);

// Scans every Gemm and MatMul in the model, in graph order (main graph first, then subgraphs in
// the order their nodes appear, each graph's layers before those of its subgraphs). Runs ONNX
// shape inference with data propagation on a copy to learn activation ranks (InferTypes).
std::vector<LayerCandidate> FindLayers(const onnx::ModelProto& model);

// A Gemm or MatMul of the standard domain: the nodes FindLayers examines.
bool IsLayerOp(const onnx::NodeProto& node);

// Every value's type that shape inference finds on a light copy of `model`: with data propagation,
// through check::KnownSchemas (so nodes newer than the ONNX library are left unknown, not inferred
// by an older schema), and with the rank of Reshape outputs whose target is computed (ONNX 1.12
// infers none for Reshape(x, Concat(Slice(Shape(x)), [-1]))). Graph inputs, value_info and outputs
// of every graph; an inference error leaves what was found before it.
using TypeMap = std::unordered_map<std::string, onnx::TypeProto>;
TypeMap InferTypes(const onnx::ModelProto& model);

// The tensor `ref` points to for a layer in `scope` (WeightRef); nullptr when it does not fit the
// model (a candidate from another model, or kNone).
const onnx::TensorProto* WeightTensor(const onnx::ModelProto& model, const graph::Scope& scope,
                                      const WeightRef& ref);

}  // namespace kfc::match
