// Inline SVG charts of the HTML report. Each function returns one <svg> element (UTF-8, no
// scripts, no external references), with coordinates printed at one decimal so that identical
// reports give identical bytes. Pure functions.
#pragma once

#include <string>

#include "kfc_report.pb.h"

namespace kfc::report {

// `s` escaped for HTML text and attribute values (& < > " ').
std::string HtmlEscape(const std::string& s);

// Per layer, one row: parameters before (grey) and after (blue) on a log axis, and the relative
// error (data-weighted when calibrated) on a linear axis; skipped layers show their reason.
std::string LayerBarsSvg(const Report& report);

// The layer's spectrum (LayerReport.spectrum): s_t / ||W||_F on a log axis against t, the kept
// values in blue, the discarded ones in grey, a dashed line after the rank. "" without values.
std::string SpectrumSvg(const LayerReport& layer);

// The model's size-error curve (Report.size_error_curve) with this run's point marked: parameters
// on a log axis, error on a linear one. "" without points.
std::string CurveSvg(const Report& report);

}  // namespace kfc::report
