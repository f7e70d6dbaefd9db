// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/calibration.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "kfc/io/file.h"
#include "kfc/io/model_stream.h"
#include "kfc/io/npy.h"
#include "kfc/rewrite/probe.h"

namespace kfc::pipeline {
namespace {

constexpr int kSidecarSchemaVersion = 1;

std::atomic<int64_t> stats_in_memory{0}, stats_in_memory_peak{0};

void CountStatsIn() {
  const int64_t now = ++stats_in_memory;
  int64_t peak = stats_in_memory_peak.load();
  while (now > peak && !stats_in_memory_peak.compare_exchange_weak(peak, now)) {
  }
}

int64_t ArrayBytes(const kron::InputStats& s) {
  return 8 * static_cast<int64_t>(s.covariance.size() + s.c1.size() + s.c2.size());
}

bool Loaded(const ParkedStats& p, const kron::InputStats& s) {
  return !s.covariance.empty() || !s.c1.empty() || !s.c2.empty() || p.covariance + p.c1 + p.c2 == 0;
}

}  // namespace

int64_t StatsInMemory() { return stats_in_memory.load(); }
int64_t StatsInMemoryPeak() { return stats_in_memory_peak.load(); }
void ResetStatsInMemoryPeak() { stats_in_memory_peak = stats_in_memory.load(); }

namespace {

// Reads parked arrays back into *stats (not counted).
Status ReadParked(const ParkedStats& p, kron::InputStats* stats) {
  int64_t at = p.offset;
  for (auto [array, doubles] : {std::pair{&stats->covariance, p.covariance},
                                std::pair{&stats->c1, p.c1}, std::pair{&stats->c2, p.c2}}) {
    array->resize(static_cast<size_t>(doubles));
    Status read = p.file->Read(at, reinterpret_cast<char*>(array->data()),
                               static_cast<size_t>(doubles) * sizeof(double));
    at += doubles * static_cast<int64_t>(sizeof(double));
    KFC_RETURN_IF_ERROR(read);
  }
  return Status::Ok();
}

}  // namespace

Status LoadParked(const ParkedStats& p, kron::InputStats* stats) {
  if (!p.parked() || Loaded(p, *stats)) return Status::Ok();
  CountStatsIn();
  Status read = ReadParked(p, stats);
  if (!read.ok()) ReleaseParked(p, stats);
  return read;
}

void ReleaseParked(const ParkedStats& p, kron::InputStats* stats) {
  if (!p.parked() || !Loaded(p, *stats)) return;
  // Swapped with empty vectors: assigning {} would keep the capacity.
  std::vector<double>().swap(stats->covariance);
  std::vector<double>().swap(stats->c1);
  std::vector<double>().swap(stats->c2);
  --stats_in_memory;
}

Status Calibration::Park(kron::InputStats* stats, ParkedStats* parked) {
  *parked = ParkedStats{};
  if (ArrayBytes(*stats) < kParkMinBytes) return Status::Ok();
  {
    std::lock_guard<std::mutex> lock(scratch_mu_);
    if (!scratch_.is_open()) {
      std::string folder = scratch_folder_;
      if (folder.empty()) {
        const char* tmp = std::getenv("TMPDIR");
        folder = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
      }
      KFC_RETURN_IF_ERROR(
          scratch_.OpenIn(folder, "calibration '" + dir_ + "'", "calibration statistics"));
    }
  }
  ParkedStats p;
  p.file = &scratch_;
  p.covariance = static_cast<int64_t>(stats->covariance.size());
  p.c1 = static_cast<int64_t>(stats->c1.size());
  p.c2 = static_cast<int64_t>(stats->c2.size());
  for (const std::vector<double>* array : {&stats->covariance, &stats->c1, &stats->c2}) {
    KFC_ASSIGN_OR_RETURN(const int64_t at,
                         scratch_.Append(reinterpret_cast<const char*>(array->data()),
                                         array->size() * sizeof(double)));
    if (p.offset < 0) p.offset = at;
  }
  *parked = p;
  ReleaseParked(p, stats);
  return Status::Ok();
}

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

  KFC_ASSIGN_OR_RETURN(const std::vector<rewrite::ExposedInput> exposed,
                       rewrite::ExposeLayerInputs(&probe.model));
  for (const auto& e : exposed) {
    auto* t = probe.sidecar.add_tensors();
    t->set_name(e.name);
    t->set_source(e.source);
    t->set_k(static_cast<double>(e.k));
    t->set_columns(e.columns);
    for (const auto& layer : e.layers) t->add_layers(layer);
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
                                                             int64_t k1, std::string* note,
                                                             ParkedStats* parked) {
  // Without `parked` the caller gets them whole: read back, not counted as in memory.
  ParkedStats here;
  if (parked == nullptr) parked = &here;
  *parked = ParkedStats{};
  auto whole = [&](kron::InputStats st) -> StatusOr<std::optional<kron::InputStats>> {
    if (parked == &here && here.parked()) KFC_RETURN_IF_ERROR(ReadParked(here, &st));
    return std::optional<kron::InputStats>(std::move(st));
  };
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
  if (cached != cache_.end()) {
    *parked = cached->second.second;
    return whole(cached->second.first);
  }
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
  full.reset();  // the K x K sums: freed before the statistics are parked
  kf.reset();
  if (!st.ok())
    return InvalidArgument("calibration tensor '" + tensor->name() + "': " + st.status().message());
  const bool large = ArrayBytes(*st) >= kParkMinBytes;
  if (large) CountStatsIn();
  Status park = Park(&*st, parked);
  if (!park.ok()) {
    if (large) --stats_in_memory;
    return park;
  }
  // Cached only for an activation that several layers read (parked when large, so the cache holds
  // its mean only).
  if (tensor->layers_size() > 1) cache_.emplace(key, std::make_pair(*st, *parked));
  return whole(std::move(*st));
}

}  // namespace kfc::pipeline
