// The report as one self-contained HTML page: inline CSS and SVG (report/charts.h), no scripts,
// no external references, so it opens anywhere (a CI artifact, a mail attachment) and prints.
// Sections: summary and gates; parameters before/after and error per layer; each compressed
// layer's singular-value spectrum (when the report carries spectra); the model's size-error curve
// (when it carries one); the per-layer table. Every layer's name appears in the table as text.
// Pure function; byte-stable for identical reports.
#pragma once

#include <string>

#include "kfc_report.pb.h"

namespace kfc::report {

std::string RenderHtml(const Report& report);

}  // namespace kfc::report
