// SPDX-License-Identifier: Apache-2.0
// kfc_consumer INPUT.onnx OUTPUT.onnx: compresses INPUT at rank 4 through the installed library,
// both in memory and path to path, and prints the report. Exit 1 on any error or disagreement.
#include <cstdio>
#include <string>

#include "kfc/io/model_io.h"
#include "kfc/pipeline/compress.h"
#include "kfc/report/render.h"
#include "kfc_report.pb.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: kfc_consumer INPUT.onnx OUTPUT.onnx\n");
    return 2;
  }
  kfc::pipeline::Options options;
  options.rank = 4;  // the other defaults are the command line's: the same bytes as kfc-compress

  auto model = kfc::io::LoadModel(argv[1]);
  if (!model.ok()) {
    std::fprintf(stderr, "kfc_consumer: %s\n", model.status().message().c_str());
    return 1;
  }
  auto in_memory = kfc::pipeline::CompressModel(*model, options);
  if (!in_memory.ok()) {
    std::fprintf(stderr, "kfc_consumer: %s\n", in_memory.status().message().c_str());
    return 1;
  }
  auto report = kfc::pipeline::CompressFile(argv[1], argv[2], options, /*dry_run=*/false);
  if (!report.ok()) {
    std::fprintf(stderr, "kfc_consumer: %s\n", report.status().message().c_str());
    return 1;
  }
  const kfc::report::Report& r = *report;
  if (r.totals().layers_compressed() != in_memory->report.totals().layers_compressed() ||
      r.totals().layers_compressed() == 0) {
    std::fprintf(stderr, "kfc_consumer: expected the same compressed layers both ways\n");
    return 1;
  }
  std::fputs(kfc::report::RenderText(r).c_str(), stdout);
  std::printf("kfc_consumer: library %s, %lld layers compressed\n", KFC_VERSION,
              static_cast<long long>(r.totals().layers_compressed()));
  return 0;
}
