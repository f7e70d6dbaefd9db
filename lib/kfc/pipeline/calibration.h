// Calibration-aware compression, the model side:
//  1. BuildProbe: a copy of the model whose extra graph outputs are the input activations of every
//     candidate layer (kfc_calib_0, kfc_calib_1, ...: one per distinct activation), and the
//     sidecar (proto/kfc_calibration.proto) mapping each to its layers.
//  2. The user runs the probe on calibration inputs and saves each exposed tensor as
//     DIR/<name>.npy or DIR/<name>.<part>.npy (batches concatenated along the leading axes), with
//     the sidecar copied to DIR/kfc_calibration.json (tests/ort/run_probe.js does both;
//     docs/calibration.md).
//  3. Calibration::Load(DIR) checks the sidecar against the model; Stats() streams a layer's .npy
//     files into its K x K covariance and mean (kron::StatsAccumulator), once per tensor and
//     orientation (rows along the last axis, or columns: see ColumnSamples).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/kron/weighted.h"
#include "kfc/match/match.h"
#include "kfc_calibration.pb.h"
#include "onnx/onnx_pb.h"

namespace kfc::pipeline {

// Inputs wider than this get Kronecker-factored statistics (kron::FactoredStatsAccumulator): the
// K x K double statistics would take 8*K^2 bytes (512 MiB at K = 8192) per distinct activation.
inline constexpr int64_t kMaxCalibratedK = 8192;
inline constexpr char kSidecarName[] = "kfc_calibration.json";

// Whether the layer reads its features along the activation's second-to-last axis, so that each
// column of X [.., K, C] is one sample: Gemm with transA=1 (A is [K, M]) and MatMul(W, X).
bool ColumnSamples(const match::LayerCandidate& c);

// FNV-1a 64 of the deterministic serialization, as 16 hex digits.
StatusOr<std::string> ModelFingerprint(const onnx::ModelProto& model);

struct Probe {
  onnx::ModelProto model;
  calibration::Sidecar sidecar;
};

// The probe for `model`. Layers in subgraphs (their values are not the main graph's to output) and
// ineligible layers are left out. `model_path` is recorded in the sidecar.
StatusOr<Probe> BuildProbe(const onnx::ModelProto& model, const std::string& model_path);

// PROBE.onnx -> PROBE.calib.json (any other name: name + ".calib.json").
std::string SidecarPathFor(const std::string& probe_path);

class Calibration {
 public:
  // Reads DIR/kfc_calibration.json and lists DIR's .npy files. InvalidArgument when the sidecar
  // belongs to another model; NotFound when it is missing.
  static StatusOr<std::shared_ptr<Calibration>> Load(const std::string& dir,
                                                     const onnx::ModelProto& model);

  // The statistics of the layer's input. nullopt (with *note saying why) when the calibration has
  // no data for it: the layer then falls back to weight-only. Above kMaxCalibratedK they are
  // Kronecker-factored for the split K = k1 * (K / k1) (k1: the first factor's rows of the shape
  // the layer's policy will use; *note then says so). Errors: a file whose last dim is not K, an
  // unsupported dtype, NaN/Inf (naming the file).
  StatusOr<std::optional<kron::InputStats>> Stats(const match::LayerCandidate& c, int64_t k1,
                                                  std::string* note);

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  calibration::Sidecar sidecar_;
  std::vector<std::string> files_;                 // .npy names in dir_, sorted
  std::map<std::string, kron::InputStats> cache_;  // by tensor name (+ "|columns", "|k1=..")
};

}  // namespace kfc::pipeline
