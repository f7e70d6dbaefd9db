#include "kfc/report/format.h"

#include <cctype>

#include "kfc/report/html.h"
#include "kfc/report/markdown.h"
#include "kfc/report/render.h"

namespace kfc::report {

ReportFormat FormatForPath(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) {
    return ReportFormat::kJson;
  }
  std::string ext = path.substr(dot + 1);
  for (char& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (ext == "md" || ext == "markdown") return ReportFormat::kMarkdown;
  if (ext == "html" || ext == "htm") return ReportFormat::kHtml;
  return ReportFormat::kJson;
}

const char* FormatName(ReportFormat format) {
  switch (format) {
    case ReportFormat::kMarkdown:
      return "markdown";
    case ReportFormat::kHtml:
      return "html";
    case ReportFormat::kJson:
      break;
  }
  return "json";
}

StatusOr<std::string> RenderAs(const Report& report, ReportFormat format) {
  switch (format) {
    case ReportFormat::kMarkdown:
      return RenderMarkdown(report);
    case ReportFormat::kHtml:
      return RenderHtml(report);
    case ReportFormat::kJson:
      break;
  }
  return RenderJson(report);
}

}  // namespace kfc::report
