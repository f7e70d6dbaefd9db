// What the output model says about how it was made (issue 15, "Provenance"):
// - model metadata_props `kfc_compress.*`: the tool version, the options that shape the output,
//   the input's sha256 (when the caller knows it), and the totals; the input's own entries are
//   kept (rewrite/metadata.h), and producer_name/producer_version stay the exporter's (see
//   docs/reports.md, "Provenance");
// - each rewritten layer's nodes: a doc_string naming the node they replace, its shape, rank and
//   error (Netron shows it in the node's properties).
// Nothing here depends on paths, times or thread counts, so outputs stay byte-identical across
// runs and --threads values.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "kfc/pipeline/compress.h"
#include "kfc_report.pb.h"

namespace kfc::pipeline {

inline constexpr char kMetadataPrefix[] = "kfc_compress.";

// The options as command-line flags in a fixed order, without paths (input, output, plan and
// calibration folders are named by what they are) or --threads: "--max-error 0.05 --shape auto
// --objective params --min-params 4096".
std::string OptionsText(const Options& options);

// The kfc_compress.* entries for a finished report (totals and layers filled).
std::vector<std::pair<std::string, std::string>> ProvenanceEntries(const Options& options,
                                                                   const report::Report& report);

// "kfc-compress: Gemm 'fc1' (weight 'W1', 784x128) as 28x8 (x) 28x16 at rank 4, relative error
// 0.123456" for a compressed layer's report.
std::string LayerDocString(const report::LayerReport& layer);

}  // namespace kfc::pipeline
