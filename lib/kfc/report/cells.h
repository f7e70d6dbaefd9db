// SPDX-License-Identifier: Apache-2.0
// Cell texts shared by the Markdown and HTML renderers: numbers, shapes and layer names as the
// text report writes them, so the three formats agree. Pure functions.
#pragma once

#include <string>

#include "kfc_report.pb.h"

namespace kfc::report {

// A whole number ("%lld" of the value truncated to int64).
std::string IntText(double v);
// Shortest general form ("%g"): 10, 0.01.
std::string NumberText(double v);
// Fixed-point with `digits` decimals.
std::string FixedText(double v, int digits);
// "100352 -> 1600 (62.72x)"; `arrow` replaces "->" (e.g. "→").
std::string BeforeAfterText(double before, double after, const std::string& arrow = "->");
// "graph/node" (or "(unnamed)"); the graph prefix only outside the main graph.
std::string LayerLabel(const LayerReport& l);
// "28x8 (x) 28x16" with `times` for "x" and `kron` for "(x)".
std::string ShapeCellText(const LayerReport& l, const std::string& times = "x",
                          const std::string& kron = "(x)");
// "4" or "4 (asked 8)".
std::string RankText(const LayerReport& l);
// The error the gates judge: data-weighted when calibrated.
double JudgedError(const LayerReport& l);
// "rank 4", "max-error 0.05", "ratio 0.25" or "plan only", with ", plan FILE" when a plan was used.
std::string ModeSummary(const Report& r);
// The validations that ran, per model: "input: onnx_checker (6 nodes, whole model),
// shape_inference (6 nodes, whole model, strict); output: ..."; "" when none ran.
std::string ChecksRanText(const Report& r);
// The first `shown` node names of an unchecked op, ", ..." after them when there are more.
std::string UncheckedNodesText(const UncheckedOp& u, int shown = 3);

}  // namespace kfc::report
