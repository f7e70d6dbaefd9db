// SPDX-License-Identifier: Apache-2.0
// Calibration-aware compression, the model side:
//  1. BuildProbe: a copy of the model whose extra graph outputs are the input activations of every
//     candidate layer (kfc_calib_0, kfc_calib_1, ...: one per distinct activation; the graph edit
//     is rewrite/probe.h's), and the sidecar (proto/kfc_calibration.proto) mapping each to its
//     layers.
//  2. The user runs the probe on calibration inputs and saves each exposed tensor as
//     DIR/<name>.npy or DIR/<name>.<part>.npy (batches concatenated along the leading axes), with
//     the sidecar copied to DIR/kfc_calibration.json (tests/ort/run_probe.js does both;
//     docs/calibration.md).
//  3. Calibration::Load(DIR) checks the sidecar against the model; Stats() streams a layer's .npy
//     files into its K x K covariance and mean (kron::StatsAccumulator), once per tensor and
//     orientation (rows along the last axis, or columns: see ColumnSamples).
//  4. Memory: statistics of at least kParkMinBytes are parked as soon as they are computed: their
//     large arrays (8*K^2 bytes of covariance, or the Kronecker factors) go to an anonymous scratch
//     file (io::SpillFile) and are read back only while a layer's decision or factorization uses
//     them (StatsInUse). Memory then holds one activation's accumulation at a time while the
//     statistics are computed, and at most one loaded copy per worker thread after that.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/io/spill.h"
#include "kfc/kron/weighted.h"
#include "kfc/match/match.h"
#include "kfc_calibration.pb.h"
#include "onnx/onnx_pb.h"

namespace kfc::pipeline {

// Inputs wider than this get Kronecker-factored statistics (kron::FactoredStatsAccumulator): the
// K x K double statistics would take 8*K^2 bytes (512 MiB at K = 8192) per distinct activation.
inline constexpr int64_t kMaxCalibratedK = 8192;
inline constexpr char kSidecarName[] = "kfc_calibration.json";
// Statistics whose arrays (covariance, c1, c2) take at least this many bytes are parked.
inline constexpr int64_t kParkMinBytes = int64_t{1} << 20;

// Where parked statistics' arrays are: `file` at `offset`, the covariance's doubles, then c1's,
// then c2's. offset < 0: not parked (the arrays stay in the InputStats, their only copy).
struct ParkedStats {
  const io::SpillFile* file = nullptr;
  int64_t offset = -1;
  int64_t covariance = 0, c1 = 0, c2 = 0;  // doubles in each array
  bool parked() const { return offset >= 0; }
};

// Reads parked arrays back into *stats; a no-op when not parked or already loaded. IoError naming
// the scratch file when the read fails.
Status LoadParked(const ParkedStats& p, kron::InputStats* stats);
// Frees the arrays of parked statistics (not of unparked ones: their only copy).
void ReleaseParked(const ParkedStats& p, kron::InputStats* stats);

// Parked statistics loaded into *stats while it lives: Load() reads them, the destructor frees
// them. A null `stats` does nothing.
class StatsInUse {
 public:
  StatsInUse(const ParkedStats& p, kron::InputStats* stats) : p_(p), stats_(stats) {}
  ~StatsInUse() {
    if (stats_ != nullptr) ReleaseParked(p_, stats_);
  }
  StatsInUse(const StatsInUse&) = delete;
  StatsInUse& operator=(const StatsInUse&) = delete;
  Status Load() { return stats_ != nullptr ? LoadParked(p_, stats_) : Status::Ok(); }

 private:
  ParkedStats p_;
  kron::InputStats* stats_;
};

// How many statistics of at least kParkMinBytes are in memory now (being computed, or loaded back
// and not yet released), and the most at once since ResetStatsInMemoryPeak: the bound of item 5 of
// issue 18, checked by tests.
int64_t StatsInMemory();
int64_t StatsInMemoryPeak();
void ResetStatsInMemoryPeak();

using match::ColumnSamples;

// FNV-1a 64 of the deterministic serialization, as 16 hex digits.
StatusOr<std::string> ModelFingerprint(const onnx::ModelProto& model);

struct Probe {
  onnx::ModelProto model;
  calibration::Sidecar sidecar;
};

// The probe for `model`: the inputs of its eligible layers, in the main graph and in subgraphs,
// exposed by rewrite::ExposeLayerInputs. `model_path` is recorded in the sidecar.
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
  // With `parked`, statistics of at least kParkMinBytes come back parked (*parked says where;
  // their arrays empty until LoadParked), smaller ones whole (*parked not parked). Without, whole.
  StatusOr<std::optional<kron::InputStats>> Stats(const match::LayerCandidate& c, int64_t k1,
                                                  std::string* note, ParkedStats* parked = nullptr);

  // The folder of the scratch file for parked statistics (default: $TMPDIR, else /tmp); it is
  // created there, nameless, on first use. CompressModel puts it next to the factors' spill.
  void SetScratchFolder(std::string folder) { scratch_folder_ = std::move(folder); }

  const std::string& dir() const { return dir_; }

 private:
  // Moves stats' arrays to the scratch file when they take at least kParkMinBytes.
  Status Park(kron::InputStats* stats, ParkedStats* parked);

  std::string dir_;
  calibration::Sidecar sidecar_;
  std::vector<std::string> files_;  // .npy names in dir_, sorted
  // By tensor name (+ "|columns", "|k1=.."), parked when large.
  std::map<std::string, std::pair<kron::InputStats, ParkedStats>> cache_;
  std::string scratch_folder_;
  std::mutex scratch_mu_;  // guards opening scratch_
  io::SpillFile scratch_;
};

}  // namespace kfc::pipeline
