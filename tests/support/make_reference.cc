// SPDX-License-Identifier: Apache-2.0
// Test support for the ONNX Runtime cross-checks (tests/ort):
//   kfc_make_reference INPUT.onnx --rank R --compressed OUT_C.onnx --dense OUT_D.onnx
//   kfc_make_reference INPUT.onnx (--ratio F | --max-error E) [--shape P] --compressed .. --dense
//   ..
//   --external-data: write both outputs with external data (OUT.data next to each).
//   --node-cost MACS: as kfc-compress's option (default 0: MACs alone; kfc-compress's is 8192);
//   non-zero, the guards apply as in kfc-compress: unprofitable and slower layers stay dense.
//   --min-params N: leave layers with fewer weight elements alone, as kfc-compress does (default 0:
//   every layer, so full rank can be tested on small ones).
//   --calibration DIR: calibrated factors; the dense model then also adds each layer's bias
//   correction with an Add right after the layer.
// Compresses every eligible layer at rank R (clamped per layer; unprofitable and small layers are
// compressed too, so full rank can be tested), or as the budget mode decides, and writes OUT_C,
// plus OUT_D: the original model with each compressed weight replaced by its dense reconstruction
// sum_t A_t (x) B_t, stored in the original layout (transposed back for Gemm transB=1 and MatMul(W,
// X)). ONNX Runtime then judges whether the emitted subgraph computes x W_hat. Prints
// {"layers_compressed": n} on stdout.
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "kfc/graph/scope.h"
#include "kfc/io/model_io.h"
#include "kfc/kron/factorize.h"
#include "kfc/pipeline/compress.h"
#include "kfc/tensor/tensor.h"

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "kfc_make_reference: error: %s\n", message.c_str());
  return 1;
}

kfc::Status Write(onnx::ModelProto model, const std::string& path, bool external_data) {
  kfc::io::SaveOptions save;
  save.external_data = external_data;
  return kfc::io::SaveModel(&model, path, save).status();
}

}  // namespace

int main(int argc, char** argv) {
  std::string input, compressed, dense;
  long long rank = 0;
  bool external_data = false;
  long long min_params = 0;
  kfc::pipeline::Options options;
  options.node_cost_macs = 0;  // the default of --node-cost here (the library's is 8192)
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--rank" && has_value) {
      rank = std::atoll(argv[++i]);
    } else if (arg == "--ratio" && has_value) {
      options.ratio = std::atof(argv[++i]);
    } else if (arg == "--max-error" && has_value) {
      options.max_error = std::atof(argv[++i]);
    } else if (arg == "--calibration" && has_value) {
      options.calibration_dir = argv[++i];
    } else if (arg == "--shape" && has_value) {
      auto shape = kfc::pipeline::ShapePolicy::Parse(argv[++i]);
      if (!shape.ok()) return Fail(shape.status().message());
      options.shape = *shape;
    } else if (arg == "--node-cost" && has_value) {
      options.node_cost_macs = std::atoll(argv[++i]);
    } else if (arg == "--min-params" && has_value) {
      min_params = std::atoll(argv[++i]);
    } else if (arg == "--external-data") {
      external_data = true;
    } else if (arg == "--compressed" && has_value) {
      compressed = argv[++i];
    } else if (arg == "--dense" && has_value) {
      dense = argv[++i];
    } else if (input.empty() && arg.rfind("--", 0) != 0) {
      input = arg;
    } else {
      return Fail("unexpected argument '" + arg + "'");
    }
  }
  if (input.empty() || compressed.empty() || dense.empty()) {
    return Fail(
        "usage: kfc_make_reference INPUT.onnx (--rank R | --ratio F | --max-error E) "
        "[--shape POLICY] [--min-params N] [--node-cost MACS] [--external-data] --compressed OUT "
        "--dense OUT");
  }
  auto model = kfc::io::LoadModel(input);
  if (!model.ok()) return Fail(model.status().message());
  if (auto s = kfc::io::LoadExternalData(&*model, input); !s.ok()) {
    return Fail(s.status().message());
  }
  options.rank = rank;
  options.min_params = min_params;
  // Full rank (which never saves parameters) is only asked for with -r; with a node cost the
  // guards apply as in kfc-compress (unprofitable and slower-than-dense layers stay dense).
  options.skip_unprofitable = rank == 0 || options.node_cost_macs > 0;
  auto result = kfc::pipeline::CompressModel(*model, options);
  if (!result.ok()) return Fail(result.status().message());

  onnx::ModelProto reference = *model;
  int compressed_layers = 0;
  // Per (sub)graph: node index -> the correction Add placed after it.
  std::map<onnx::GraphProto*, std::map<int, onnx::NodeProto>> corrections;
  for (const auto& layer : result->layers) {
    if (!layer.factors) continue;
    ++compressed_layers;
    const auto& c = layer.layer;
    // K x N, in double so float64 layers keep their precision (one rounding for the others).
    std::vector<double> w = kfc::kron::Reconstruct<double>(*layer.factors);
    // Stored in the initializer's own layout: [N, K] for Gemm transB=1.
    const std::vector<double> stored = c.trans_b ? kfc::tensor::Transpose(w, c.k, c.n) : w;
    // The consumer reads a new initializer of the layer's dtype, whatever the weight's source
    // (initializer, Constant node, Identity/Cast chain); the old source stays, unused.
    const std::string name = "kfc_reference/" + c.weight_name;
    const std::vector<int64_t> dims =
        c.trans_b ? std::vector<int64_t>{c.n, c.k} : std::vector<int64_t>{c.k, c.n};
    // In the main graph, which every subgraph sees; at IR 3 an initializer is a graph input too.
    bool present = false;  // layers sharing a weight share its reconstruction
    for (const auto& t : reference.graph().initializer()) present |= t.name() == name;
    if (!present) {
      *reference.mutable_graph()->add_initializer() =
          kfc::tensor::EncodeFromDouble(name, c.dtype, dims, stored);
      if (reference.ir_version() < 4) {
        auto* graph_input = reference.mutable_graph()->add_input();
        graph_input->set_name(name);
        auto* type = graph_input->mutable_type()->mutable_tensor_type();
        type->set_elem_type(c.dtype);
        for (int64_t d : dims) type->mutable_shape()->add_dim()->set_dim_value(d);
      }
    }
    onnx::GraphProto* graph =  // the layer's (sub)graph
        kfc::graph::MutableGraphAt(&reference, c.scope, c.scope.size());
    graph->mutable_node(c.node_index)->set_input(c.weight_first ? 0 : 1, name);
    if (!layer.bias_correction.empty()) {  // calibration: y + alpha * mu^T (W - W_hat)
      std::vector<float> corr = layer.bias_correction;
      for (float& v : corr) v *= c.op_type == "Gemm" ? c.alpha : 1.0f;
      const std::string corr_name = "kfc_reference/" + c.node_name + ".bias_correction";
      const std::vector<int64_t> corr_dims =
          c.weight_first ? std::vector<int64_t>{c.n, 1} : std::vector<int64_t>{c.n};
      *graph->add_initializer() = kfc::tensor::EncodeFromFloat(corr_name, c.dtype, corr_dims, corr);
      auto* node = graph->mutable_node(c.node_index);
      const std::string out = node->output(0);
      node->set_output(0, out + "/kfc_reference_uncorrected");
      onnx::NodeProto add;
      add.set_op_type("Add");
      add.set_name(c.node_name + "/kfc_reference_correction");
      add.add_input(out + "/kfc_reference_uncorrected");
      add.add_input(corr_name);
      add.add_output(out);
      corrections[graph][c.node_index] = add;
    }
  }
  for (auto& [graph, adds] : corrections) {  // keep the nodes topologically sorted
    google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
    nodes.Swap(graph->mutable_node());
    for (int i = 0; i < nodes.size(); ++i) {
      *graph->add_node() = nodes.Get(i);
      auto it = adds.find(i);
      if (it != adds.end()) *graph->add_node() = it->second;
    }
  }

  if (auto s = Write(std::move(result->model), compressed, external_data); !s.ok()) {
    return Fail(s.message());
  }
  if (auto s = Write(std::move(reference), dense, external_data); !s.ok()) {
    return Fail(s.message());
  }
  std::printf("{\"layers_compressed\": %d}\n", compressed_layers);
  return 0;
}
