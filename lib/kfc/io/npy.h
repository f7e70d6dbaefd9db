// SPDX-License-Identifier: Apache-2.0
// Streaming reader for NumPy .npy files (format versions 1-3): float16, float32 or float64 in
// either byte order ('<f2', '<f4', '<f8', '>f2', '>f4', '>f8'; '=' and '|' read as native), C
// order. Used for calibration activations, which can be larger than memory: rows are read a chunk
// at a time. A float16 model's probe gives float16 activations: they are read as they are.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kfc/core/status.h"

namespace kfc::io {

class NpyReader {
 public:
  // Opens `path` (non-blocking until known to be a regular file: a FIFO is refused, not waited on)
  // and parses its header. Errors, one line naming the file: missing, not a regular file, not
  // .npy, an unsupported dtype, Fortran order, a dimension or element count too large, or a file
  // shorter than its shape says.
  static StatusOr<NpyReader> Open(const std::string& path);

  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t elements() const { return elements_; }
  const std::string& path() const { return path_; }

  // Reads the next up to `max_elements` elements, converted to float, into `out` (resized to the
  // count read; 0 at the end).
  Status Read(int64_t max_elements, std::vector<float>* out);

 private:
  struct Fd {
    int fd = -1;
    ~Fd();
  };
  std::string path_;
  std::shared_ptr<Fd> in_;
  std::vector<int64_t> shape_;
  int64_t elements_ = 0;
  int64_t consumed_ = 0;
  int item_size_ = 4;
  bool swap_ = false;  // big-endian data
};

// Writes a float32 C-order .npy (version 1) atomically: for tests and tools.
Status WriteNpy(const std::string& path, const std::vector<int64_t>& shape,
                const std::vector<float>& data);

// A .npy file of any dtype (C order), split by rows (its first axis): the first `head_rows` rows
// to `head_path`, the others to `tail_path` (version 1 headers, same dtype, written atomically).
// Used to hold calibration rows out (pipeline/auto_select.h). Errors, one line naming the file:
// not a .npy file, Fortran order, no leading axis, head_rows outside [0, rows], a size mismatch.
Status SplitNpyRows(const std::string& path, int64_t head_rows, const std::string& head_path,
                    const std::string& tail_path);

// The length of the first axis of the .npy file at `path` (any dtype); errors as SplitNpyRows'.
StatusOr<int64_t> NpyRows(const std::string& path);

}  // namespace kfc::io
