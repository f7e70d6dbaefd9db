// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/auto_run.h"

#include <filesystem>

#include "kfc/core/logging.h"
#include "kfc/io/npy.h"
#include "kfc/kron/weighted.h"
#include "kfc/pipeline/ratio.h"

namespace kfc::pipeline {

namespace fs = std::filesystem;

StatusOr<RowSplit> SplitInputs(const std::vector<runner::InputFile>& inputs, const io::TempDir& tmp,
                               std::vector<runner::InputFile>* fit,
                               std::vector<runner::InputFile>* held) {
  int64_t rows = -1;
  for (const auto& in : inputs) {
    KFC_ASSIGN_OR_RETURN(const int64_t n, io::NpyRows(in.file()));
    if (rows >= 0 && n != rows) {
      return InvalidArgument("--calibration-data: input '" + in.name() + "' has " +
                             std::to_string(n) + " rows, '" + inputs[0].name() + "' " +
                             std::to_string(rows));
    }
    rows = n;
  }
  const RowSplit split = SplitRows(rows < 0 ? 0 : rows);
  if (split.held == 0) return split;
  for (const char* d : {"fit_in", "held_in"}) {
    std::error_code ec;
    fs::create_directories(tmp.Join(d), ec);
    if (ec) return IoError("temporary folder '" + tmp.Join(d) + "': " + ec.message());
  }
  for (size_t k = 0; k < inputs.size(); ++k) {
    runner::InputFile f = inputs[k], h = inputs[k];
    f.set_file(tmp.Join("fit_in/" + std::to_string(k) + ".npy"));
    h.set_file(tmp.Join("held_in/" + std::to_string(k) + ".npy"));
    KFC_RETURN_IF_ERROR(io::SplitNpyRows(inputs[k].file(), split.fit, f.file(), h.file()));
    fit->push_back(f);
    held->push_back(h);
  }
  return split;
}

AutoSearch SearchFor(const Options& options, AutoSearch asked) {
  if (options.ratio <= 0 || options.allocation == AllocationObjective::kSensitivity) return {};
  return asked;
}

StatusOr<report::AutoSelection> SelectSettings(const std::string& input, const Options& options,
                                               const AutoSearch& search, const RowSplit& split,
                                               const std::vector<Part>& parts,
                                               const runner::Request& request, int first_output,
                                               size_t outputs, PassRunner* held_passes,
                                               const io::TempDir& tmp, Clock::time_point start,
                                               Options* with_data) {
  report::AutoSelection selection;
  if (!search.any()) return selection;
  selection.set_searched_allocation(search.allocation);
  selection.set_searched_regularization(search.regularization);
  selection.set_chosen(-1);
  std::vector<AutoCandidate> candidates = AutoCandidates(options, search);
  if (split.held == 0) {
    selection.set_note("no search: " + std::to_string(split.fit) +
                       " calibration rows, fewer than " + std::to_string(kAutoMinRows) +
                       "; the defaults are used");
  } else {
    HeldOut held{held_passes, {}, {}};
    for (int i = first_output; i < first_output + static_cast<int>(outputs); ++i) {
      held.outputs.push_back(request.record(i).tensor());
      held.original.push_back(FilesOf(parts[1].response, i, parts[1].dir));
    }
    Options fit = options;
    fit.calibration_dir = parts[0].dir;
    KFC_ASSIGN_OR_RETURN(selection,
                         SearchCandidates(input, fit, &candidates, held, tmp.Join("search")));
    selection.set_searched_allocation(search.allocation);
    selection.set_searched_regularization(search.regularization);
    selection.set_rows_fit(static_cast<double>(split.fit));
    selection.set_rows_held_out(static_cast<double>(split.held));
    if (selection.chosen() >= 0) {
      const AutoCandidate& c = candidates[static_cast<size_t>(selection.chosen())];
      *with_data = WithCandidate(*with_data, c);
      selection.set_note(CandidateName(c) + ": the least model output error on " +
                         std::to_string(split.held) + " held-out rows, fitted on " +
                         std::to_string(split.fit) + " (" + std::to_string(candidates.size()) +
                         " candidates); the model is then fitted on all rows");
    } else {
      selection.set_note("no candidate could be measured; the defaults are used");
    }
  }
  selection.set_allocation(AllocationName(with_data->allocation));
  selection.set_regularization(
      with_data->calibration_regularization.value_or(kron::kCalibrationRegularization));
  selection.set_seconds(SecondsSince(start));
  with_data->auto_selection = selection.note();
  Logger().info("auto: {} ({:.3f} s)", selection.note(), selection.seconds());
  return selection;
}

}  // namespace kfc::pipeline
