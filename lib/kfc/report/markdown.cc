// SPDX-License-Identifier: Apache-2.0
#include "kfc/report/markdown.h"

#include <vector>

#include "kfc/report/cells.h"

namespace kfc::report {
namespace {

const char kArrow[] = "\xE2\x86\x92";  // U+2192 RIGHTWARDS ARROW
const char kKron[] = "\xE2\x8A\x97";   // U+2297 CIRCLED TIMES
const char kTimes[] = "\xC3\x97";      // U+00D7 MULTIPLICATION SIGN
const char kPass[] = "\xE2\x9C\x85";   // U+2705 WHITE HEAVY CHECK MARK
const char kFail[] = "\xE2\x9D\x8C";   // U+274C CROSS MARK

std::string Row(const std::vector<std::string>& cells) {
  std::string out = "|";
  for (const auto& c : cells) out += " " + c + " |";
  return out + "\n";
}

// Skip reasons and gate names are our own snake_case words: no escaping (none works in a code
// span).
std::string Code(const std::string& s) { return "`" + s + "`"; }

// What validated the input and the output model, and the nodes no schema check covered, by op.
std::string ChecksSection(const Report& r) {
  std::string out;
  if (const std::string ran = ChecksRanText(r); !ran.empty()) {
    out += "\n**Checks**: " + MarkdownEscape(ran) + "\n";
  }
  if (r.checks().unchecked().empty()) return out;
  out += "\n" + Row({"not checked by a schema", "op", "nodes", "reason", "which"}) +
         "|:--|:--|--:|:--|:--|\n";
  for (const auto& u : r.checks().unchecked()) {
    out += Row({u.model(), MarkdownEscape(u.op_type()), IntText(u.nodes_size()),
                Code(u.reason()) + (u.detail().empty() ? "" : " " + MarkdownEscape(u.detail())),
                MarkdownEscape(UncheckedNodesText(u))});
  }
  return out;
}

}  // namespace

std::string MarkdownEscape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '|':
      case '\\':
      case '`':
      case '*':
      case '_':
      case '[':
      case ']':
      case '~':
      case '#':
        out += '\\';
        out += ch;
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '\n':
      case '\r':
        out += ' ';
        break;
      default:
        out += ch;
    }
  }
  return out;
}

std::string RenderMarkdown(const Report& r) {
  const Totals& t = r.totals();
  std::string out =
      "### kfc-compress " + MarkdownEscape(r.tool_version()) + ": " + MarkdownEscape(r.input());
  out += r.dry_run() ? " (dry run)" : std::string(" ") + kArrow + " " + MarkdownEscape(r.output());
  out += "\n\n";
  out += "**" + MarkdownEscape(ModeSummary(r)) + "**, shape " + MarkdownEscape(r.shape_policy()) +
         " \xC2\xB7 " + IntText(t.layers_compressed()) + " of " + IntText(t.layers_found()) +
         " layers compressed \xC2\xB7 model parameters " +
         BeforeAfterText(t.model_params_before(), t.model_params_after(), kArrow) +
         " \xC2\xB7 file bytes " +
         BeforeAfterText(t.file_bytes_before(), t.file_bytes_after(), kArrow) + "\n\n";

  out += Row({"layer", "op", std::string("K ") + kTimes + " N", std::string("A ") + kKron + " B",
              "rank", "params", "MACs/row", "rel. error"});
  out += "|:--|:--|--:|:--|--:|--:|--:|:--|\n";
  for (const auto& l : r.layers()) {
    const std::string kn = l.k() > 0 ? IntText(l.k()) + kTimes + IntText(l.n()) : std::string("?");
    if (l.compressed()) {
      std::string error = FixedText(l.relative_error(), 6);
      if (l.calibrated() && l.data_relative_error() >= 0) {
        error += " (data " + FixedText(l.data_relative_error(), 6) + ")";
      }
      out += Row({MarkdownEscape(LayerLabel(l)), l.op_type(), kn, ShapeCellText(l, kTimes, kKron),
                  MarkdownEscape(RankText(l)),
                  BeforeAfterText(l.params_before(), l.params_after(), kArrow),
                  BeforeAfterText(l.macs_before(), l.macs_after(), kArrow), error});
    } else {
      out += Row({MarkdownEscape(LayerLabel(l)), l.op_type(), kn, "\xE2\x80\x93", "\xE2\x80\x93",
                  l.params_before() > 0 ? IntText(l.params_before()) : "\xE2\x80\x93",
                  l.macs_before() > 0 ? IntText(l.macs_before()) : "\xE2\x80\x93",
                  "skipped: " + Code(l.skip_reason()) + " " + MarkdownEscape(l.skip_detail())});
    }
  }
  if (r.layers().empty()) out += "| (no Gemm or MatMul layers found) | | | | | | | |\n";

  out += "\n" + Row({"totals", "before " + std::string(kArrow) + " after"}) + "|:--|--:|\n";
  out += Row(
      {"layer params", BeforeAfterText(t.layer_params_before(), t.layer_params_after(), kArrow)});
  out +=
      Row({"layer MACs/row", BeforeAfterText(t.layer_macs_before(), t.layer_macs_after(), kArrow)});
  out += Row(
      {"model params", BeforeAfterText(t.model_params_before(), t.model_params_after(), kArrow)});
  out += Row({"compressible params", BeforeAfterText(t.compressible_params_before(),
                                                     t.compressible_params_after(), kArrow)});
  out += Row(
      {"weight bytes", BeforeAfterText(t.weight_bytes_before(), t.weight_bytes_after(), kArrow)});
  out += Row({"file bytes", BeforeAfterText(t.file_bytes_before(), t.file_bytes_after(), kArrow)});

  if (!r.output_errors().empty()) {  // --calibration-data: end-to-end verification
    out += "\n" +
           Row({"output (" + IntText(r.calibration_rows()) + " calibration rows, run by " +
                    MarkdownEscape(r.runner()) + ")",
                "relative error", "max abs error"}) +
           "|:--|--:|--:|\n";
    for (const auto& e : r.output_errors()) {
      out += Row({MarkdownEscape(e.name()), FixedText(e.relative_error(), 6),
                  FixedText(e.max_abs_error(), 6)});
    }
  }

  if (r.has_auto_selection()) {  // --allocation auto / --calibration-regularization auto
    const AutoSelection& a = r.auto_selection();
    out += "\nauto: " + MarkdownEscape(a.note()) + "\n";
    if (!a.candidates().empty()) {
      out += "\n" + Row({"candidate", "lambda", "held-out output error", "seconds", ""}) +
             "|:--|--:|--:|--:|:--|\n";
      for (int i = 0; i < a.candidates_size(); ++i) {
        const AutoCandidate& c = a.candidates(i);
        out += Row({c.allocation(), NumberText(c.regularization()),
                    c.held_out_error() < 0 ? "-" : FixedText(c.held_out_error(), 6),
                    FixedText(c.seconds(), 1),
                    i == a.chosen() ? "**chosen**" : MarkdownEscape(c.note())});
      }
    }
  }

  std::string outcomes;
  if (r.mode() == "ratio") {
    outcomes += std::string("- ") + (r.ratio_met() ? kPass : kFail) + " --ratio " +
                FixedText(r.ratio_target(), 6) + ": " + (r.ratio_met() ? "met" : "MISSED") +
                (r.ratio_detail().empty() ? "" : " (" + MarkdownEscape(r.ratio_detail()) + ")") +
                "\n";
  }
  for (const auto& g : r.gates()) {
    outcomes += std::string("- ") + (g.passed() ? kPass : kFail) + " gate " + Code(g.gate()) + " " +
                FixedText(g.threshold(), 6) + ": " + (g.passed() ? "passed" : "**FAILED**") + " (" +
                MarkdownEscape(g.detail()) + ")\n";
  }
  if (!outcomes.empty()) out += "\n" + outcomes;
  out += ChecksSection(r);
  if (!r.dry_run() && !r.output_written()) out += "\nNo model was written.\n";
  return out;
}

}  // namespace kfc::report
