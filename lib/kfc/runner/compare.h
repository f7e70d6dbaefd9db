// Compares two recordings of one tensor (the runner's .npy files, batch by batch): the original
// model's output against the compressed model's, on the same inputs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kfc/core/status.h"

namespace kfc::runner {

struct Difference {
  // ||B - A||_F / ||A||_F over every element of every batch; ||B - A||_F when A is all zeros.
  // NaN when B holds NaN or Inf where A is finite.
  double relative_error = 0;
  double max_abs_error = 0;  // max |B - A|
  int64_t elements = 0;      // compared
};

// `a_files` and `b_files` are the recordings' files in batch order (paths). Both are streamed in
// chunks, never held whole. Errors, naming `what` (e.g. "output 'y'"): a different number of
// files, a file pair whose shapes differ, unreadable files.
StatusOr<Difference> CompareRecordings(const std::vector<std::string>& a_files,
                                       const std::vector<std::string>& b_files,
                                       const std::string& what);

}  // namespace kfc::runner
