// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the C++ tests: small models built in code, seeded random data, running the
// real binary with stdout and stderr captured apart, temporary folders.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "onnx/onnx_pb.h"

namespace kfc::testing {

// Seeded uniform values in [-1, 1].
std::vector<float> RandomVector(size_t n, uint32_t seed);

// Parses ONNX text syntax (onnx::OnnxParser) into a model; aborts the test on a parse error.
onnx::ModelProto ParseModelText(const std::string& text);

// Adds a float32 initializer named `name` with dims and seeded random data.
void AddRandomInitializer(onnx::ModelProto* model, const std::string& name,
                          const std::vector<int64_t>& dims, uint32_t seed);

// Evaluates y = x W for rows of x (M x K) and W (K x N), row-major, in double.
std::vector<double> MatMulReference(const std::vector<float>& x, const std::vector<float>& w,
                                    int64_t m, int64_t k, int64_t n);

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// The whole file's bytes ("" when it cannot be read).
std::string ReadFile(const std::string& path);

// Runs `argv` (argv[0] is the program path) with no stdin; captures stdout and stderr apart.
ProcessResult RunProcess(const std::vector<std::string>& argv);

#ifdef KFC_COMPRESS_BIN
// Runs the kfc-compress binary under test (the suite's KFC_COMPRESS_BIN) with `args`.
inline ProcessResult Cli(std::vector<std::string> args) {
  args.insert(args.begin(), KFC_COMPRESS_BIN);
  return RunProcess(args);
}
#endif

// A fresh empty folder under the system temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  // Names of the entries in the folder, sorted.
  std::vector<std::string> List() const;

 private:
  std::string path_;
};

void WriteModel(const onnx::ModelProto& model, const std::string& path);

// Moves `t`'s data (raw_data or float_data) out of the tensor: data_location EXTERNAL, with
// external_data entries location, offset, and length unless length < 0. Returns the bytes, for
// the caller to place at `offset` of the data file.
std::string MakeExternal(onnx::TensorProto* t, const std::string& location, int64_t offset,
                         int64_t length);

// The model y = MatMul(x, W), x [N, 64], W [64, 96] float32 (24576 bytes, seed 7; node "proj"),
// written to `dir`/model.onnx with W stored at `offset` of `location` (relative to `dir`); a
// negative length leaves the length key out. Unless `write_data` is false, the data file is
// written too: `offset` zero bytes, W, then `trailing` zero bytes. Returns the model's path.
onnx::ModelProto ProjModel();
std::string WriteExternalModel(const std::string& dir, const std::string& location, int64_t offset,
                               int64_t length, bool write_data = true, int64_t trailing = 0);
void WriteText(const std::string& text, const std::string& path);

}  // namespace kfc::testing
