// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the loader and matcher (and everything behind them): the input bytes are
// written as a model file and compressed exactly as the CLI does, `--dry-run -r 2 --min-params 0`.
// Any Status error is a fine answer; a crash, hang, leak or sanitizer report is a bug.
// Built by -DKFC_FUZZ=ON with clang (tests/fuzz/CMakeLists.txt); tests/run.sh runs it for a bounded
// time over a corpus of the repository's own models.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "kfc/pipeline/compress.h"

namespace {

std::string ModelPath() {
  static const std::string path = [] {
    char dir[] = "/tmp/kfc-fuzz.XXXXXX";
    const char* made = mkdtemp(dir);
    return std::string(made != nullptr ? made : "/tmp") + "/model.onnx";
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = ModelPath();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  const size_t written = std::fwrite(data, 1, size, f);
  std::fclose(f);
  if (written != size) return 0;
  kfc::pipeline::Options options;
  options.rank = 2;
  options.min_params = 0;
  (void)kfc::pipeline::CompressFile(path, "", options, /*dry_run=*/true);
  return 0;
}
