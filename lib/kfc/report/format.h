// --report FILE: which renderer a report file gets, by its extension.
#pragma once

#include <string>

#include "kfc/core/status.h"
#include "kfc_report.pb.h"

namespace kfc::report {

enum class ReportFormat { kJson, kMarkdown, kHtml };

// By the extension, ignoring case: .md and .markdown are Markdown, .html and .htm HTML, anything
// else (.json, none) JSON, as --report wrote before it knew other formats.
ReportFormat FormatForPath(const std::string& path);

// "json", "markdown" or "html".
const char* FormatName(ReportFormat format);

// The report in `format` (render.h's RenderJson, markdown.h, html.h).
StatusOr<std::string> RenderAs(const Report& report, ReportFormat format);

}  // namespace kfc::report
