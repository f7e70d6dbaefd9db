// SPDX-License-Identifier: Apache-2.0
// Runner passes after the first: PassRunner runs versions of one model on the calibration rows
// through a started runner (runner/runner.h), with the frontier cut (pipeline/runner_cut.h) when
// it applies, and returns each recorded tensor's files. The compensation stages and the
// --allocation sensitivity trials use it; it is the API for any further pass (docs/runner.md).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/io/external_data.h"
#include "kfc/pipeline/runner_cut.h"
#include "kfc/runner/runner.h"
#include "onnx/onnx_pb.h"

namespace kfc::pipeline {

// Whether the cut is wanted: the hidden switch KFC_RUNNER_CUT=0 turns it off (tests compare).
bool CutWanted();

// The most disk the frontier's recordings may take for the cut: 16 x the calibration inputs'
// bytes, at least 64 MiB, at most 1 GiB.
int64_t FrontierBudget(const std::vector<runner::InputFile>& inputs);

// Writes `model` (as prepared by PrepareExternalData: its large tensors may still be in the
// `input` model's files) to dir/name so that ONNX Runtime can load it from there. ONNX Runtime
// only reads external data inside the model's own folder, symlinks resolved, so the input's data
// files are hard-linked into `dir`; where that is impossible, the weights are copied.
Status WriteRunnable(onnx::ModelProto* model, const std::string& input, const std::string& dir,
                     const std::string& name, io::ExternalDataReader* reader);

// Joins .npy files of the same dtype and trailing dims along their leading axis into `out`.
// InvalidArgument naming the file that is not .npy or does not match.
Status ConcatNpy(const std::vector<std::string>& files, const std::string& out);

// Runs versions of one model on the calibration rows through a started runner, recording chosen
// tensors: the one API for every runner pass after the first (compensation stages, sensitivity
// trials, candidate evaluation). With the cut enabled (EnableCut), each pass runs the cut model
// fed with the recorded frontier; else, or when the cut does not apply to a request, the whole
// model on the calibration inputs. The final verification keeps running the whole model.
//
//   PassRunner passes(runner, inputs, batch_size, rows, input_path, &reader);
//   passes.EnableCut(frontier, {{tensor, files}...}, dir, budget_bytes);  // optional, or:
//   passes.RecordFrontier(original, reader, frontier, dir, budget_bytes); // other rows
//   auto files = passes.Run(&model, reader, {"t1", "t2"}, dir);  // files[i]: t_i's, in order
// One pass at a time (the runner answers requests in order): not for concurrent use.
class PassRunner {
 public:
  // `inputs`: every model input's calibration file; `rows`: the rows of the first pass (each
  // pass must run as many); `input`: the model's path (for its external data files);
  // `reader`: its external data, used when Run is given none.
  PassRunner(runner::Runner* runner, std::vector<runner::InputFile> inputs, int32_t batch_size,
             double rows, std::string input, io::ExternalDataReader* reader);

  // Enables the cut with the first pass's recordings: `recorded` maps each frontier tensor to its
  // files (row order; they may be split otherwise than this runner's batches, as auto's fit and
  // held-out parts are), and may map other tensors made before the cut (e.g. model outputs that
  // depend on no layer) to theirs. Each frontier tensor's files are joined into one file in
  // `dir` (the caller may then remove the per-batch files). Not enabled (logged at info, the reason
  // returned as a FailedPrecondition; the object stays usable) when a recording is missing, its
  // files' leading dims do not add up to `rows`, or the frontier takes more than `budget_bytes`.
  Status EnableCut(Frontier frontier, std::map<std::string, std::vector<std::string>> recorded,
                   const std::string& dir, int64_t budget_bytes);
  // For rows whose frontier no pass has recorded yet (held-out rows, say): one pass of the whole
  // `original` model (the one FindFrontier was given) exposing the frontier, then EnableCut
  // with its recordings (the per-batch files are removed once joined). Errors: the runner's;
  // a cut that does not apply is logged and returned as for EnableCut.
  Status RecordFrontier(const onnx::ModelProto& original, io::ExternalDataReader* reader,
                        Frontier frontier, const std::string& dir, int64_t budget_bytes);
  bool cut_enabled() const { return cut_; }
  // Which rows this runner's passes run on, for its log lines ("" by default: none said), e.g.
  // "the 2 held-out rows" when a run has two PassRunners.
  void set_label(std::string label) { label_ = std::move(label); }

  // Runs `model` (a version of the model; saved into `dir`, created, as WriteRunnable does, its
  // external data read through `reader` or the constructor's), recording `tensors` into `dir`.
  // Returns each tensor's files, in row order (a tensor made before the cut: its first-pass
  // files, split as EnableCut was given them: callers that pair rows stream them). Errors: the
  // runner's, a pass that runs another number of rows.
  StatusOr<std::vector<std::vector<std::string>>> Run(onnx::ModelProto* model,
                                                      io::ExternalDataReader* reader,
                                                      const std::vector<std::string>& tensors,
                                                      const std::string& dir);
  // The same for a model file already written at `path` (its external data next to it); the cut,
  // when used, is written next to it as <path>.cut.onnx.
  StatusOr<std::vector<std::vector<std::string>>> RunFile(const std::string& path,
                                                          const std::vector<std::string>& tensors,
                                                          const std::string& dir);

  int32_t batch_size() const { return batch_size_; }
  double rows() const { return rows_; }
  int passes() const { return passes_; }
  int cut_passes() const { return cut_passes_; }

 private:
  // Runs the model at `path` on `inputs`, recording `tensors` into `dir`.
  StatusOr<std::vector<std::vector<std::string>>> RunRequest(
      const std::string& path, const std::vector<runner::InputFile>& inputs,
      const std::vector<std::string>& tensors, const std::string& dir);
  // The cut of `model` for `tensors` (those not already recorded), or why it does not apply.
  StatusOr<onnx::ModelProto> Cut(const onnx::ModelProto& model,
                                 const std::vector<std::string>& tensors,
                                 std::vector<runner::InputFile>* inputs) const;
  // Files of `tensors` from a run of the cut or the whole model plus the ones known already.
  StatusOr<std::vector<std::vector<std::string>>> Merge(
      const std::vector<std::string>& tensors, const std::vector<std::string>& ran,
      const std::vector<std::vector<std::string>>& files) const;

  runner::Runner* runner_;
  std::vector<runner::InputFile> inputs_;
  int32_t batch_size_;
  double rows_;
  std::string input_;
  std::string label_;
  io::ExternalDataReader* reader_;
  bool cut_ = false;
  Frontier frontier_;
  std::map<std::string, std::string> fed_;                 // frontier tensor -> its joined file
  std::map<std::string, std::vector<std::string>> known_;  // made before the cut -> files
  int passes_ = 0;
  int cut_passes_ = 0;
};

}  // namespace kfc::pipeline
