// SPDX-License-Identifier: Apache-2.0
// Renderers for the compression report (the kfc::report::Report message in proto/kfc_report.proto).
// Pure functions: no logging, no model access.
#pragma once

#include <string>

#include "kfc/core/status.h"
#include "kfc_report.pb.h"

namespace kfc::report {

inline constexpr int kSchemaVersion = 1;

// `s` with every byte sequence that is not valid UTF-8 replaced by U+FFFD. Report fields are
// proto3 strings, which must be UTF-8; ONNX names are not guaranteed to be.
std::string ToValidUtf8(const std::string& s);

// An aligned table, one line per layer, then the totals. No timings or absolute paths beyond the
// paths given on the command line, so the text is byte-stable for identical inputs.
std::string RenderText(const Report& report);

// "3 of 13 layers compressed"; when none was: "0 of 13 layers compressed: 9 unknown_input_rank,
// 4 weight_not_constant" (skip reasons counted, most frequent first).
std::string CompressedSummary(const Report& report);

// Pretty-printed JSON from protobuf's printer: snake_case field names, every field printed,
// counts as JSON numbers. Ends with a newline.
StatusOr<std::string> RenderJson(const Report& report);

}  // namespace kfc::report
