// The report as GitHub-flavoured Markdown: a heading, a one-line summary, the per-layer table, the
// totals and the gate outcomes. Made for a CI job summary ($GITHUB_STEP_SUMMARY) and pull-request
// comments. Pure function: no logging, no model access; byte-stable for identical reports.
#pragma once

#include <string>

#include "kfc_report.pb.h"

namespace kfc::report {

// `s` safe inside a Markdown table cell: '|', '\\', '`', '*', '_', '[', ']', '~' and '#' are
// backslash-escaped, '<', '>' and '&' become entities, line breaks become spaces.
std::string MarkdownEscape(const std::string& s);

std::string RenderMarkdown(const Report& report);

}  // namespace kfc::report
