#include "kfc/pipeline/calibration.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "kfc/core/names.h"
#include "kfc/io/model_io.h"
#include "kfc/io/npy.h"
#include "onnx/shape_inference/implementation.h"

namespace kfc::pipeline {
namespace {

constexpr int kSidecarSchemaVersion = 1;

// The type of value `name` after shape inference (graph inputs, value_info, outputs).
std::optional<onnx::TypeProto> TypeOf(const onnx::GraphProto& g, const std::string& name) {
  for (const auto* list : {&g.input(), &g.value_info(), &g.output()}) {
    for (const auto& vi : *list) {
      if (vi.name() == name && vi.has_type()) return vi.type();
    }
  }
  return std::nullopt;
}

// Every name used in `g` and its subgraphs, so that new names collide with none.
void ReserveNames(const onnx::GraphProto& g, NameGenerator* names) {
  for (const auto& n : g.node()) {
    names->Reserve(n.name());
    for (const auto& o : n.output()) names->Reserve(o);
    for (const auto& i : n.input()) names->Reserve(i);
    for (const auto& a : n.attribute()) {
      if (a.has_g()) ReserveNames(a.g(), names);
      for (const auto& sub : a.graphs()) ReserveNames(sub, names);
    }
  }
  for (const auto& v : g.input()) names->Reserve(v.name());
  for (const auto& v : g.output()) names->Reserve(v.name());
  for (const auto& t : g.initializer()) names->Reserve(t.name());
}

// Whether `name` is a value of `g` itself (an input or a node output), not of an enclosing graph.
bool MadeIn(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& v : g.input()) {
    if (v.name() == name) return true;
  }
  for (const auto& n : g.node()) {
    for (const auto& o : n.output()) {
      if (o == name) return true;
    }
  }
  return false;
}

// A value of `type`'s element type and `rank` dims of unknown size (the checker wants a shape).
onnx::ValueInfoProto OfRank(const std::string& name, const onnx::TypeProto& type, int rank) {
  onnx::ValueInfoProto v;
  v.set_name(name);
  auto* t = v.mutable_type()->mutable_tensor_type();
  t->set_elem_type(type.tensor_type().elem_type());
  for (int i = 0; i < rank; ++i) t->mutable_shape()->add_dim();
  return v;
}

// Makes `value` of the subgraph at `step` (below `outer`) a new output `exposed` of the node
// holding it: an extra body output (Identity), which for Loop and Scan is a scan output (stacked
// over iterations) and for If needs the same output in the other branch, where it is an empty
// tensor (no rows) of the same rank with K on its feature axis. `rank` is the value's rank.
void ExposeFromSubgraph(const match::ScopeStep& step, const std::string& value,
                        const std::string& exposed, const onnx::TypeProto& type, int rank,
                        bool columns, int64_t k, NameGenerator* names, onnx::GraphProto* outer) {
  onnx::NodeProto* parent = outer->mutable_node(step.node);
  onnx::AttributeProto* attr = parent->mutable_attribute(step.attribute);
  onnx::GraphProto* body = step.graph < 0 ? attr->mutable_g() : attr->mutable_graphs(step.graph);
  const std::string inner = names->Unique(exposed + "_body");
  auto* id = body->add_node();
  id->set_op_type("Identity");
  id->set_name(names->Unique(inner + "/identity"));
  id->add_input(value);
  id->add_output(inner);
  *body->add_output() = OfRank(inner, type, rank);
  if (parent->op_type() == "If") {
    std::vector<int64_t> dims(static_cast<size_t>(rank), 0);
    dims[static_cast<size_t>(rank - (columns ? 2 : 1))] = k;
    for (auto& other : *parent->mutable_attribute()) {
      if (!other.has_g() || other.name() == attr->name()) continue;
      const std::string empty = names->Unique(exposed + "_empty");
      auto* c = other.mutable_g()->add_node();
      c->set_op_type("Constant");
      c->set_name(names->Unique(empty + "/constant"));
      c->add_output(empty);
      auto* a = c->add_attribute();
      a->set_name("value");
      a->set_type(onnx::AttributeProto::TENSOR);
      a->mutable_t()->set_data_type(type.tensor_type().elem_type());
      for (int64_t d : dims) a->mutable_t()->add_dims(d);
      a->mutable_t()->set_raw_data("");
      *other.mutable_g()->add_output() = OfRank(empty, type, rank);
    }
  } else if (parent->op_type() == "Scan") {
    // Explicit per-output axes and directions get a default entry for the new output.
    for (auto& a : *parent->mutable_attribute()) {
      if (a.name() == "scan_output_axes" || a.name() == "scan_output_directions") a.add_ints(0);
    }
  }
  parent->add_output(exposed);
}

// The graph `depth` steps into `scope` of a mutable model (0: the main graph).
onnx::GraphProto* MutableGraphAt(onnx::ModelProto* model,
                                 const std::vector<match::ScopeStep>& scope, size_t depth) {
  onnx::GraphProto* g = model->mutable_graph();
  for (size_t d = 0; d < depth; ++d) {
    onnx::AttributeProto* attr =
        g->mutable_node(scope[d].node)->mutable_attribute(scope[d].attribute);
    g = scope[d].graph < 0 ? attr->mutable_g() : attr->mutable_graphs(scope[d].graph);
  }
  return g;
}

// How many steps into the layer's scope its input is made (0: the main graph): the innermost
// graph on the way that has it as an input or a node output.
size_t DepthMade(const onnx::ModelProto& model, const match::LayerCandidate& c) {
  for (size_t d = c.scope.size(); d >= 1; --d) {
    const onnx::GraphProto* g = match::GraphAt(model, c.scope, d);
    if (g != nullptr && MadeIn(*g, c.input_name)) return d;
  }
  return 0;
}

}  // namespace

bool ColumnSamples(const match::LayerCandidate& c) { return c.trans_a || c.weight_first; }

StatusOr<std::string> ModelFingerprint(const onnx::ModelProto& model) {
  KFC_ASSIGN_OR_RETURN(const std::string bytes, io::SerializeModel(model));
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : bytes) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf);
}

std::string SidecarPathFor(const std::string& probe_path) {
  const std::string ext = ".onnx";
  if (probe_path.size() > ext.size() &&
      probe_path.compare(probe_path.size() - ext.size(), ext.size(), ext) == 0) {
    return probe_path.substr(0, probe_path.size() - ext.size()) + ".calib.json";
  }
  return probe_path + ".calib.json";
}

StatusOr<Probe> BuildProbe(const onnx::ModelProto& model, const std::string& model_path) {
  Probe probe;
  probe.model = model;
  KFC_ASSIGN_OR_RETURN(const std::string fingerprint, ModelFingerprint(model));
  probe.sidecar.set_calibration_schema_version(kSidecarSchemaVersion);
  probe.sidecar.set_model_fingerprint(fingerprint);
  probe.sidecar.set_model(model_path);

  onnx::ModelProto inferred = model;
  try {
    onnx::ShapeInferenceOptions options(false, 0, false);
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::exception& e) {
    return FailedPrecondition(std::string("probe: shape inference failed: ") + e.what());
  }
  NameGenerator names;
  ReserveNames(model.graph(), &names);
  std::map<std::string, int> by_source;  // by graph path and value
  onnx::GraphProto* graph = probe.model.mutable_graph();
  for (const auto& c : match::FindLayers(model)) {
    if (!c.eligible() || c.k < 1) continue;
    // The input is exposed from the graph that makes it: through each enclosing If, Loop or Scan
    // node in turn, up to the main graph.
    const size_t depth = DepthMade(inferred, c);
    std::string key = "|" + c.input_name;
    for (size_t d = 0; d < depth; ++d) {
      key = std::to_string(c.scope[d].node) + "/" + std::to_string(c.scope[d].attribute) + "/" +
            std::to_string(c.scope[d].graph) + ":" + key;
    }
    auto it = by_source.find(key);
    if (it == by_source.end()) {
      const onnx::GraphProto* made_in = match::GraphAt(inferred, c.scope, depth);
      std::optional<onnx::TypeProto> type =
          made_in != nullptr ? TypeOf(*made_in, c.input_name) : std::nullopt;
      if (!type || !type->has_tensor_type()) continue;
      const std::string name = names.Unique("kfc_calib_" + std::to_string(by_source.size()));
      std::string exposed = c.input_name;
      int rank = std::max(type->tensor_type().shape().dim_size(), ColumnSamples(c) ? 2 : 1);
      for (size_t d = depth; d >= 1; --d) {
        onnx::GraphProto* outer = MutableGraphAt(&probe.model, c.scope, d - 1);
        const std::string next = names.Unique(name + "/level" + std::to_string(d));
        ExposeFromSubgraph(c.scope[d - 1], exposed, next, *type, rank, ColumnSamples(c), c.k,
                           &names, outer);
        // If merges its branches' shapes; Loop and Scan stack iterations on a new first axis.
        if (outer->node(c.scope[d - 1].node).op_type() != "If") ++rank;
        exposed = next;
      }
      if (depth > 0) *type = OfRank("", *type, rank).type();
      auto* node = graph->add_node();
      node->set_op_type("Identity");
      node->set_name(names.Unique(name + "/identity"));
      node->add_input(exposed);
      node->add_output(name);
      auto* out = graph->add_output();
      out->set_name(name);
      *out->mutable_type() = *type;
      it = by_source.emplace(key, probe.sidecar.tensors_size()).first;
      auto* t = probe.sidecar.add_tensors();
      t->set_name(name);
      t->set_source(c.input_name);
      t->set_k(static_cast<double>(c.k));
      t->set_columns(ColumnSamples(c));
    }
    probe.sidecar.mutable_tensors(it->second)->add_layers(c.node_name);
  }
  return probe;
}

StatusOr<std::shared_ptr<Calibration>> Calibration::Load(const std::string& dir,
                                                         const onnx::ModelProto& model) {
  namespace fs = std::filesystem;
  const std::string what = "calibration '" + dir + "'";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return NotFound(what + ": not a folder");
  const std::string sidecar_path = (fs::path(dir) / kSidecarName).string();
  auto text = io::ReadFile(sidecar_path, what, int64_t{64} << 20, "the 64 MiB limit");
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound) {
      return NotFound(what + ": no " + kSidecarName +
                      " (copy the probe's PROBE.calib.json there; tests/ort/run_probe.js does)");
    }
    return text.status();
  }
  auto cal = std::make_shared<Calibration>();
  cal->dir_ = dir;
  google::protobuf::util::JsonParseOptions options;
  auto st = google::protobuf::util::JsonStringToMessage(*text, &cal->sidecar_, options);
  if (!st.ok()) {
    return InvalidArgument(what + ": " + kSidecarName +
                           " is not a valid sidecar: " + std::string(st.message()));
  }
  KFC_ASSIGN_OR_RETURN(const std::string fingerprint, ModelFingerprint(model));
  if (cal->sidecar_.model_fingerprint() != fingerprint) {
    return InvalidArgument(what + ": " + kSidecarName + " was made for a different model ('" +
                           cal->sidecar_.model() + "', fingerprint " +
                           cal->sidecar_.model_fingerprint() + "; this model's is " + fingerprint +
                           ")");
  }
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) {
      cal->files_.push_back(name);
    }
  }
  std::sort(cal->files_.begin(), cal->files_.end());
  return cal;
}

StatusOr<std::optional<kron::InputStats>> Calibration::Stats(const match::LayerCandidate& c,
                                                             int64_t k1, std::string* note) {
  const calibration::ProbeTensor* tensor = nullptr;
  for (const auto& t : sidecar_.tensors()) {
    if (t.source() != c.input_name) continue;
    for (const auto& layer : t.layers()) {
      if (layer == c.node_name) tensor = &t;
    }
  }
  if (tensor == nullptr) {
    *note = "no calibration tensor for this layer's input";
    return std::optional<kron::InputStats>();
  }
  // Above kMaxCalibratedK, Kronecker-factored statistics for the split K = k1 * k2 the layer's
  // shape policy uses.
  const bool factored = c.k > kMaxCalibratedK;
  if (factored) {
    const std::string big = "K = " + std::to_string(c.k) + " is above " +
                            std::to_string(kMaxCalibratedK) + " (K x K statistics would take " +
                            std::to_string(8 * c.k * c.k >> 20) + " MiB)";
    if (k1 < 2 || c.k % k1 != 0 || c.k / k1 < 2 || k1 > kMaxCalibratedK ||
        c.k / k1 > kMaxCalibratedK) {
      *note = big + " and the shape policy gives no Kronecker split of K to factor them by";
      return std::optional<kron::InputStats>();
    }
    *note = big + ": Kronecker-factored statistics (" + std::to_string(k1) + " x " +
            std::to_string(k1) + " and " + std::to_string(c.k / k1) + " x " +
            std::to_string(c.k / k1) + "); data errors are in that metric";
  }
  // Gemm transA=1 and MatMul(W, X) read features along X's second-to-last axis: each column of
  // the [.., K, C] activation is one sample.
  const bool columns = ColumnSamples(c);
  const std::string key =
      tensor->name() + (columns ? "|columns" : "") + (factored ? "|k1=" + std::to_string(k1) : "");
  auto cached = cache_.find(key);
  if (cached != cache_.end()) return std::optional<kron::InputStats>(cached->second);
  std::vector<std::string> files;
  for (const auto& f : files_) {
    if (f == tensor->name() + ".npy" || f.rfind(tensor->name() + ".", 0) == 0) files.push_back(f);
  }
  if (files.empty()) {
    *note = "no " + tensor->name() + "*.npy files in '" + dir_ + "'";
    return std::optional<kron::InputStats>();
  }
  const int64_t K = c.k;
  // One of the two accumulators, by whether K x K fits.
  std::optional<kron::StatsAccumulator> full;
  std::optional<kron::FactoredStatsAccumulator> kf;
  if (factored) {
    kf.emplace(k1, K / k1);
  } else {
    full.emplace(K);
  }
  std::vector<float> buf;
  for (const auto& f : files) {
    const std::string path = (std::filesystem::path(dir_) / f).string();
    KFC_ASSIGN_OR_RETURN(io::NpyReader reader, io::NpyReader::Open(path));
    const std::vector<int64_t>& shape = reader.shape();
    const size_t rank = shape.size();
    if (columns ? rank < 2 || shape[rank - 2] != K : rank < 1 || shape.back() != K) {
      std::string dims;
      for (int64_t d : shape) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
      return InvalidArgument("activation file '" + path + "': shape [" + dims + "] does not " +
                             (columns ? "have K = " + std::to_string(K) + " second to last"
                                      : "end in K = " + std::to_string(K)) +
                             " (layer '" + c.node_name + "')");
    }
    // Rows of K values: read as they are, or, for column samples, a [K, C] block at a time
    // transposed to C rows.
    const int64_t cols = columns ? shape.back() : 1;
    const int64_t block = K * cols;
    const int64_t chunk =
        block * std::max<int64_t>(1, (int64_t{8} << 20) / std::max<int64_t>(block, 1));
    std::vector<float> rows;
    for (;;) {
      KFC_RETURN_IF_ERROR(reader.Read(chunk, &buf));
      if (buf.empty()) break;
      const float* data = buf.data();
      if (columns) {
        rows.resize(buf.size());
        for (size_t b = 0; b + static_cast<size_t>(block) <= buf.size();
             b += static_cast<size_t>(block)) {
          for (int64_t i = 0; i < K; ++i) {
            for (int64_t j = 0; j < cols; ++j)
              rows[b + static_cast<size_t>(j * K + i)] = buf[b + static_cast<size_t>(i * cols + j)];
          }
        }
        data = rows.data();
      }
      const auto rows_read = static_cast<int64_t>(buf.size()) / K;
      Status s = factored ? kf->Add(data, rows_read) : full->Add(data, rows_read);
      if (!s.ok()) return InvalidArgument("activation file '" + path + "': " + s.message());
    }
  }
  if ((factored ? kf->count() : full->count()) == 0) {
    // Recorded but empty: a subgraph branch that never ran on the calibration inputs.
    *note =
        "the calibration files of '" + tensor->name() + "' hold no rows (a branch that never ran?)";
    return std::optional<kron::InputStats>();
  }
  auto st = factored ? kf->Finish() : full->Finish();
  if (!st.ok())
    return InvalidArgument("calibration tensor '" + tensor->name() + "': " + st.status().message());
  cache_.emplace(key, *st);
  return std::optional<kron::InputStats>(std::move(*st));
}

}  // namespace kfc::pipeline
