// SPDX-License-Identifier: Apache-2.0
// compensate (--compensate; docs/compensation.md, kron/compensate.h for the math):
//  1. stages: a compressed layer's stage is 1 + the highest stage of the compressed layers
//     upstream of its input in the main graph (layers reading one activation share a stage); a
//     node holding subgraphs is taken to depend on everything before it, and its compressed
//     layers get the stage after that;
//  2. stage 1 keeps its plain calibrated factors (its inputs are the original ones);
//  3. for each later stage with layers to refit: the model with the stages before it rewritten,
//     plus one Identity output per distinct input of the stage's layers, runs through
//     Options::record_activations on the calibration inputs; each input's recorded rows and the
//     original recorded rows (the calibration folder, same rows in the same order) are streamed
//     together into the compensation statistics, and each layer reading it is refitted.
// Refitted: main-graph layers with full (not Kronecker-factored) calibration statistics at their
// shape, rows along the last axis, K <= kMaxCompensatedK. The others keep their factors, with a
// note.
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "kfc/core/logging.h"
#include "kfc/graph/names.h"
#include "kfc/io/file.h"
#include "kfc/io/npy.h"
#include "kfc/kron/compensate.h"
#include "kfc/pipeline/layer_report.h"
#include "kfc/pipeline/phases.h"
#include "kfc/pipeline/provenance.h"
#include "kfc/tensor/tensor.h"

namespace kfc::pipeline {
namespace {

// The statistics take 3 K x K doubles (384 MiB at K = 4096) for the activation being refitted.
constexpr int64_t kMaxCompensatedK = 4096;
constexpr int64_t kRowsPerRead = 1024;

// Rows of K floats from .npy files read in order, across file boundaries, a chunk at a time.
class RowStream {
 public:
  RowStream(std::vector<std::string> files, int64_t k) : files_(std::move(files)), k_(k) {}

  // The next up to `rows` rows into *out (fewer only at the end; empty when done).
  Status Read(int64_t rows, std::vector<float>* out) {
    out->clear();
    while (static_cast<int64_t>(out->size()) < rows * k_) {
      if (!reader_) {
        if (next_ >= files_.size()) break;
        const std::string& path = files_[next_++];
        KFC_ASSIGN_OR_RETURN(io::NpyReader r, io::NpyReader::Open(path));
        if (r.shape().empty() || r.shape().back() != k_) {
          return InvalidArgument("activation file '" + path +
                                 "': rows are not of K = " + std::to_string(k_));
        }
        reader_.emplace(std::move(r));
      }
      KFC_RETURN_IF_ERROR(reader_->Read(rows * k_ - static_cast<int64_t>(out->size()), &buf_));
      if (buf_.empty()) {
        reader_.reset();
        continue;
      }
      out->insert(out->end(), buf_.begin(), buf_.end());
    }
    return Status::Ok();
  }

 private:
  std::vector<std::string> files_;
  int64_t k_;
  size_t next_ = 0;
  std::optional<io::NpyReader> reader_;
  std::vector<float> buf_;
};

// The original recordings: for each (source value, layer node name), the calibration folder's
// files of the tensor that exposes it (as Calibration::Stats finds them).
class OriginalFiles {
 public:
  static StatusOr<OriginalFiles> Load(const std::string& dir) {
    namespace fs = std::filesystem;
    OriginalFiles out;
    out.dir_ = dir;
    KFC_ASSIGN_OR_RETURN(const std::string text,
                         io::ReadFile((fs::path(dir) / kSidecarName).string(),
                                      "calibration '" + dir + "'", int64_t{64} << 20, "64 MiB"));
    if (!google::protobuf::util::JsonStringToMessage(text, &out.sidecar_).ok()) {
      return InvalidArgument("calibration '" + dir + "': " + kSidecarName + " is not valid");
    }
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) {
        out.files_.push_back(name);
      }
    }
    std::sort(out.files_.begin(), out.files_.end());
    return out;
  }

  std::vector<std::string> For(const match::LayerCandidate& c) const {
    std::vector<std::string> out;
    for (const auto& t : sidecar_.tensors()) {
      if (t.source() != c.input_name) continue;
      if (std::find(t.layers().begin(), t.layers().end(), c.node_name) == t.layers().end()) {
        continue;
      }
      for (const auto& f : files_) {
        if (f == t.name() + ".npy" || f.rfind(t.name() + ".", 0) == 0) {
          out.push_back((std::filesystem::path(dir_) / f).string());
        }
      }
      break;
    }
    return out;
  }

 private:
  std::string dir_;
  calibration::Sidecar sidecar_;
  std::vector<std::string> files_;
};

bool HasSubgraph(const onnx::NodeProto& node) {
  for (const auto& a : node.attribute()) {
    if (a.has_g() || a.graphs_size() > 0) return true;
  }
  return false;
}

// Each rewrite's stage (see the file comment), by index into `rewrites`.
std::vector<int> Stages(const onnx::ModelProto& model,
                        const std::vector<rewrite::KronRewrite>& rewrites) {
  std::map<int, size_t> main_layer;               // main-graph node index -> rewrite
  std::map<int, std::vector<size_t>> sub_layers;  // main-graph node holding it -> rewrites
  for (size_t j = 0; j < rewrites.size(); ++j) {
    const match::LayerCandidate& c = rewrites[j].layer;
    if (c.scope.empty()) {
      main_layer[c.node_index] = j;
    } else {
      sub_layers[c.scope.front().node].push_back(j);
    }
  }
  std::vector<int> stage(rewrites.size(), 1);
  std::map<std::string, int> depth;  // value -> highest stage of a compressed layer upstream
  int deepest = 0;
  const onnx::GraphProto& g = model.graph();
  for (int i = 0; i < g.node_size(); ++i) {
    const onnx::NodeProto& node = g.node(i);
    int d = 0;
    for (const auto& in : node.input()) {
      auto it = depth.find(in);
      if (it != depth.end()) d = std::max(d, it->second);
    }
    if (HasSubgraph(node)) d = deepest;  // it may read any earlier value
    int out = d;
    if (auto it = main_layer.find(i); it != main_layer.end()) {
      out = stage[it->second] = d + 1;
    } else if (auto sub = sub_layers.find(i); sub != sub_layers.end()) {
      out = d + 1;
      for (size_t j : sub->second) stage[j] = out;
    }
    for (const auto& o : node.output()) depth[o] = out;
    deepest = std::max(deepest, out);
  }
  return stage;
}

// Why layer s cannot be refitted on recorded inputs; "" when it can.
std::string NotRefittable(const LayerState& s, const kron::KronShape& shape, bool has_files) {
  const match::LayerCandidate& c = *s.c;
  if (!c.scope.empty()) return "in a subgraph: kept as calibrated";
  if (!s.stats) return "no calibration data: kept as factorized";
  if (s.stats->factored() || !Calibrated(s, shape)) {
    return "Kronecker-factored statistics: kept as calibrated";
  }
  if (ColumnSamples(c)) return "features along the second-to-last axis: kept as calibrated";
  if (c.k > kMaxCompensatedK) {
    return "K = " + std::to_string(c.k) + " is above " + std::to_string(kMaxCompensatedK) +
           ": kept as calibrated";
  }
  if (!has_files) return "no recorded original inputs: kept as calibrated";
  return "";
}

struct Refit {
  size_t rewrite = 0;
  size_t state = 0;
};

}  // namespace

StatusOr<report::Compensation> Compensate(const Options& o, const Weights& weights,
                                          const onnx::ModelProto& model,
                                          std::vector<LayerState>* states,
                                          std::vector<rewrite::KronRewrite>* rewrites) {
  if (!o.record_activations || o.calibration_dir.empty()) {
    return InvalidArgument(
        "--compensate needs --calibration-data: it runs the partly compressed model in the "
        "runner to record each stage's inputs");
  }
  auto& log = Logger();
  const auto start = Clock::now();
  KFC_ASSIGN_OR_RETURN(const OriginalFiles originals, OriginalFiles::Load(o.calibration_dir));
  // The state of each rewrite (same graph and node).
  std::vector<size_t> state_of(rewrites->size(), SIZE_MAX);
  for (size_t j = 0; j < rewrites->size(); ++j) {
    const match::LayerCandidate& c = (*rewrites)[j].layer;
    for (size_t i = 0; i < states->size(); ++i) {
      const match::LayerCandidate& sc = *(*states)[i].c;
      if (sc.graph_path == c.graph_path && sc.node_index == c.node_index) state_of[j] = i;
    }
    if (state_of[j] == SIZE_MAX) return Internal("compensation: a rewrite without its layer");
  }
  const std::vector<int> stage = Stages(model, *rewrites);
  const int stages = rewrites->empty() ? 0 : *std::max_element(stage.begin(), stage.end());
  report::Compensation summary;
  summary.set_stages(stages);
  for (size_t j = 0; j < rewrites->size(); ++j) {
    Compensation comp;
    comp.stage = stage[j];
    if (stage[j] == 1) comp.note = "stage 1: its inputs are the original ones";
    (*states)[state_of[j]].compensation = comp;
  }

  for (int s = 2; s <= stages; ++s) {
    const auto stage_start = Clock::now();
    report::CompensationStage* st = summary.add_stage();
    st->set_stage(s);
    std::vector<Refit> refits;
    for (size_t j = 0; j < rewrites->size(); ++j) {
      if (stage[j] != s) continue;
      st->set_layers(st->layers() + 1);
      LayerState& ls = (*states)[state_of[j]];
      const std::string why =
          NotRefittable(ls, (*rewrites)[j].factors.shape, !originals.For(*ls.c).empty());
      if (why.empty()) {
        refits.push_back({j, state_of[j]});
      } else {
        ls.compensation->note = why;
      }
    }
    if (refits.empty()) continue;

    // The model with the earlier stages compressed, exposing this stage's inputs.
    onnx::ModelProto partial = model;
    std::vector<rewrite::KronRewrite> earlier;
    for (size_t j = 0; j < rewrites->size(); ++j) {
      if (stage[j] < s) earlier.push_back((*rewrites)[j]);
    }
    KFC_RETURN_IF_ERROR(rewrite::ApplyKronRewrites(&partial, earlier));
    earlier.clear();
    NameGenerator names;
    graph::ReserveNames(partial.graph(), &names);
    std::vector<std::string> sources, exposed;  // distinct layer inputs, their outputs
    std::map<std::string, size_t> source_index;
    for (const Refit& r : refits) {
      const match::LayerCandidate& c = *(*states)[r.state].c;
      if (source_index.count(c.input_name)) continue;
      source_index[c.input_name] = sources.size();
      sources.push_back(c.input_name);
      exposed.push_back(names.Unique("kfc_compensate_" + std::to_string(sources.size() - 1)));
      onnx::NodeProto* id = partial.mutable_graph()->add_node();
      id->set_op_type("Identity");
      id->set_name(names.Unique(exposed.back() + "_identity"));
      id->add_input(c.input_name);
      id->add_output(exposed.back());
      onnx::ValueInfoProto* out = partial.mutable_graph()->add_output();
      out->set_name(exposed.back());
      if (c.input_type.has_tensor_type()) {
        out->mutable_type()->mutable_tensor_type()->set_elem_type(
            c.input_type.tensor_type().elem_type());
      } else {
        out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
      }
    }
    KFC_ASSIGN_OR_RETURN(const std::vector<std::vector<std::string>> recorded,
                         o.record_activations(&partial, o.external_reader, exposed));
    partial = onnx::ModelProto();
    summary.set_runner_passes(summary.runner_passes() + 1);
    if (recorded.size() != sources.size()) {
      return Internal("compensation: the runner recorded " + std::to_string(recorded.size()) +
                      " tensors, not " + std::to_string(sources.size()));
    }

    // One input's statistics at a time, then the layers reading it.
    double sum_plain = 0, sum_comp = 0;
    for (size_t t = 0; t < sources.size(); ++t) {
      std::vector<const Refit*> readers;
      for (const Refit& r : refits) {
        if ((*states)[r.state].c->input_name == sources[t]) readers.push_back(&r);
      }
      const match::LayerCandidate& first = *(*states)[readers.front()->state].c;
      const int64_t K = first.k;
      RowStream tilde(recorded[t], K), orig(originals.For(first), K);
      kron::CompensationAccumulator acc(K);
      std::vector<float> a, b;
      for (;;) {
        KFC_RETURN_IF_ERROR(tilde.Read(kRowsPerRead, &a));
        KFC_RETURN_IF_ERROR(orig.Read(kRowsPerRead, &b));
        if (a.size() != b.size()) {
          return InvalidArgument("compensation: layer '" + first.node_name +
                                 "': the runner "
                                 "recorded a different number of rows of '" +
                                 sources[t] +
                                 "' for the partly compressed model than for the original");
        }
        if (a.empty()) break;
        Status added = acc.Add(a.data(), b.data(), static_cast<int64_t>(a.size()) / K);
        if (!added.ok()) {
          return InvalidArgument("compensation: activation '" + sources[t] +
                                 "': " + added.message());
        }
      }
      auto finished = acc.Finish();
      if (!finished.ok()) {
        return InvalidArgument("compensation: activation '" + sources[t] +
                               "': " + finished.status().message());
      }
      const kron::CompensationStats cs = std::move(*finished);
      for (const Refit* r : readers) {
        rewrite::KronRewrite& rw = (*rewrites)[r->rewrite];
        LayerState& ls = (*states)[r->state];
        const match::LayerCandidate& c = *ls.c;
        KFC_ASSIGN_OR_RETURN(const std::vector<float> w, weights.Matrix(c));
        auto fitted =
            kron::FactorizeCompensated(w.data(), c.k, c.n, rw.factors.shape, rw.factors.rank, cs,
                                       rw.factors, rw.bias_correction);
        if (!fitted.ok()) return fitted.status().WithContext("layer '" + c.node_name + "'");
        kron::CompensatedFactors& cf = *fitted;
        if (c.dtype == onnx::TensorProto::FLOAT16 || c.dtype == onnx::TensorProto::BFLOAT16) {
          cf.factors.a = tensor::RoundToDType(c.dtype, std::move(cf.factors.a));
          cf.factors.b = tensor::RoundToDType(c.dtype, std::move(cf.factors.b));
          cf.factors.relative_error = kron::FactorsError(cf.factors, w.data());
          cf.error = kron::CompensationError(w.data(), kron::Reconstruct(cf.factors),
                                             cf.bias_correction, c.k, c.n, cs);
        }
        Compensation& comp = *ls.compensation;
        comp.refit = true;
        comp.error = cf.error;
        comp.plain_error = cf.plain_error;
        comp.used_plain = cf.used_plain;
        comp.note.clear();
        sum_plain += cf.plain_error * cf.plain_error;
        sum_comp += cf.error * cf.error;
        log.debug("layer '{}' (stage {}): output error on its stage's inputs {:.6f} -> {:.6f}{}",
                  c.node_name, s, cf.plain_error, cf.error,
                  cf.used_plain ? " (plain factors kept)" : "");
        ls.factored->relative_error = cf.factors.relative_error;
        ls.factored->data_error =
            kron::DataRelativeError(w.data(), kron::Reconstruct(cf.factors), c.k, c.n, *ls.stats);
        rw.factors = cf.factors;
        rw.bias_correction = cf.bias_correction;
        ls.factors = std::move(cf.factors);
        ls.bias_correction = std::move(cf.bias_correction);
        rw.doc_string = LayerDocString(LayerReportOf(o, ls));
      }
    }
    const double n = static_cast<double>(refits.size());
    st->set_compensated(static_cast<int32_t>(refits.size()));
    st->set_uncompensated_output_error(RoundSignificant(std::sqrt(sum_plain / n)));
    st->set_compensated_output_error(RoundSignificant(std::sqrt(sum_comp / n)));
    log.info(
        "compensation stage {}: {} layers refitted on the partly compressed model's activations "
        "in {:.3f} s; RMS output error on them {:.6f} -> {:.6f}",
        s, refits.size(), SecondsSince(stage_start), st->uncompensated_output_error(),
        st->compensated_output_error());
  }
  log.info("compensation: {} stages, {} runner passes, {:.3f} s", stages, summary.runner_passes(),
           SecondsSince(start));
  return summary;
}

}  // namespace kfc::pipeline
