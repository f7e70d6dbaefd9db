// SPDX-License-Identifier: Apache-2.0
// Streaming reader for NumPy .npy files (format versions 1-3): little-endian float32 or float64,
// C order. Used for calibration activations, which can be larger than memory: rows are read a
// chunk at a time.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "kfc/core/status.h"

namespace kfc::io {

class NpyReader {
 public:
  // Opens `path` and parses its header. Errors name the file: missing, not .npy, an unsupported
  // dtype (only '<f4' and '<f8'), Fortran order, or a file shorter than its shape says.
  static StatusOr<NpyReader> Open(const std::string& path);

  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t elements() const { return elements_; }
  const std::string& path() const { return path_; }

  // Reads the next up to `max_elements` elements, converted to float, into `out` (resized to the
  // count read; 0 at the end).
  Status Read(int64_t max_elements, std::vector<float>* out);

 private:
  std::string path_;
  std::unique_ptr<std::ifstream> in_;
  std::vector<int64_t> shape_;
  int64_t elements_ = 0;
  int64_t consumed_ = 0;
  int item_size_ = 4;
};

// Writes a float32 C-order .npy (version 1) atomically: for tests and tools.
Status WriteNpy(const std::string& path, const std::vector<int64_t>& shape,
                const std::vector<float>& data);

}  // namespace kfc::io
