// SPDX-License-Identifier: Apache-2.0
#include "kfc/report/html.h"

#include <algorithm>
#include <vector>

#include "kfc/report/cells.h"
#include "kfc/report/charts.h"

namespace kfc::report {
namespace {

const char kStyle[] = R"(body{font-family:system-ui,sans-serif;margin:24px auto;max-width:980px;
color:#0f172a;padding:0 16px}h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:32px}
.sub{color:#475569;margin-top:0}table{border-collapse:collapse;font-size:13px;width:100%}
th,td{border-bottom:1px solid #e2e8f0;padding:4px 8px;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.skip{color:#64748b}
.ok{color:#15803d;font-weight:600}.bad{color:#b91c1c;font-weight:600}.note{color:#475569;
font-size:13px}.spectra{display:flex;flex-wrap:wrap;gap:12px}.cards{display:flex;gap:12px;
flex-wrap:wrap}.card{border:1px solid #e2e8f0;border-radius:6px;padding:8px 12px}
.card b{display:block;font-size:18px}svg{max-width:100%;height:auto})";

std::string Td(const std::string& text, const std::string& cls = "") {
  return (cls.empty() ? "<td>" : "<td class=\"" + cls + "\">") + HtmlEscape(text) + "</td>";
}

std::string Card(const std::string& label, const std::string& value) {
  return "<div class=\"card\"><b>" + HtmlEscape(value) + "</b>" + HtmlEscape(label) + "</div>";
}

std::string Times(double before, double after) {
  return after > 0 ? FixedText(before / after, 2) + "x" : "-";
}

std::string Summary(const Report& r) {
  const Totals& t = r.totals();
  std::string out = "<div class=\"cards\">";
  out += Card("layers compressed",
              IntText(t.layers_compressed()) + " of " + IntText(t.layers_found()));
  out += Card("fewer model parameters", Times(t.model_params_before(), t.model_params_after()));
  out += Card("fewer layer MACs per row", Times(t.layer_macs_before(), t.layer_macs_after()));
  out += Card("smaller file", Times(t.file_bytes_before(), t.file_bytes_after()));
  double worst = 0;
  for (const auto& l : r.layers()) {
    if (l.compressed()) worst = std::max(worst, JudgedError(l));
  }
  out += Card("worst layer relative error", FixedText(worst, 4));
  out +=
      "</div>\n<table><tr><th>totals</th><th class=\"n\">before</th><th class=\"n\">after</th>"
      "<th class=\"n\">before / after</th></tr>\n";
  const std::vector<std::pair<const char*, std::pair<double, double>>> rows = {
      {"layer params", {t.layer_params_before(), t.layer_params_after()}},
      {"layer MACs/row", {t.layer_macs_before(), t.layer_macs_after()}},
      {"model params", {t.model_params_before(), t.model_params_after()}},
      {"compressible params", {t.compressible_params_before(), t.compressible_params_after()}},
      {"weight bytes", {t.weight_bytes_before(), t.weight_bytes_after()}},
      {"file bytes", {t.file_bytes_before(), t.file_bytes_after()}}};
  for (const auto& [name, v] : rows) {
    out += "<tr>" + Td(name) + Td(IntText(v.first), "n") + Td(IntText(v.second), "n") +
           Td(Times(v.first, v.second), "n") + "</tr>\n";
  }
  out += "</table>\n";
  std::string outcomes;
  if (r.mode() == "ratio") {
    outcomes += std::string("<li><span class=\"") + (r.ratio_met() ? "ok\">met" : "bad\">MISSED") +
                "</span> --ratio " + HtmlEscape(FixedText(r.ratio_target(), 6)) + ": " +
                HtmlEscape(r.ratio_detail()) + "</li>\n";
  }
  for (const auto& g : r.gates()) {
    outcomes += std::string("<li><span class=\"") + (g.passed() ? "ok\">passed" : "bad\">FAILED") +
                "</span> gate " + HtmlEscape(g.gate()) + " " +
                HtmlEscape(FixedText(g.threshold(), 6)) + ": " + HtmlEscape(g.detail()) + "</li>\n";
  }
  if (!outcomes.empty()) out += "<ul>\n" + outcomes + "</ul>\n";
  return out;
}

std::string LayerTable(const Report& r) {
  std::string out =
      "<table id=\"layer-table\"><tr><th>layer</th><th>op</th><th>weight</th><th "
      "class=\"n\">K x N</th><th>dtype</th><th>factors A (x) B</th><th class=\"n\">rank</th><th "
      "class=\"n\">params before &rarr; after</th><th class=\"n\">MACs/row before &rarr; "
      "after</th><th>rel. error / skip reason</th></tr>\n";
  for (const auto& l : r.layers()) {
    out += "<tr>" + Td(LayerLabel(l)) + Td(l.op_type()) + Td(l.weight_name()) +
           Td(l.k() > 0 ? IntText(l.k()) + "x" + IntText(l.n()) : "?", "n") + Td(l.dtype());
    if (l.compressed()) {
      std::string error = FixedText(l.relative_error(), 6);
      if (l.calibrated() && l.data_relative_error() >= 0) {
        error += " (data-weighted " + FixedText(l.data_relative_error(), 6) + ")";
      }
      if (!l.shares_factors_with().empty())
        error += "; shares factors with " + l.shares_factors_with();
      out += Td(ShapeCellText(l)) + Td(RankText(l), "n") +
             Td(BeforeAfterText(l.params_before(), l.params_after()), "n") +
             Td(BeforeAfterText(l.macs_before(), l.macs_after()), "n") + Td(error);
    } else {
      out += Td("-") + Td("-", "n") +
             Td(l.params_before() > 0 ? IntText(l.params_before()) : "-", "n") +
             Td(l.macs_before() > 0 ? IntText(l.macs_before()) : "-", "n") +
             Td("skipped: " + l.skip_reason() + " (" + l.skip_detail() + ")", "skip");
    }
    out += "</tr>\n";
  }
  return out + "</table>\n";
}

std::string Spectra(const Report& r) {
  std::string charts;
  int without = 0;
  for (const auto& l : r.layers()) {
    if (!l.compressed()) continue;
    const std::string svg = SpectrumSvg(l);
    if (svg.empty()) {
      ++without;
      continue;
    }
    charts += "<figure class=\"spectrum\">" + svg + "</figure>\n";
  }
  if (charts.empty()) return "";
  std::string out =
      "<h2>Singular-value spectra</h2>\n<p class=\"note\">Each compressed layer's chosen shape: "
      "the "
      "singular values s<sub>t</sub> of W's rearrangement R, divided by ||W||<sub>F</sub>. Blue: "
      "kept (one Kronecker term each); grey: discarded, their energy is the error "
      "(error<sup>2</sup> = sum of the discarded s<sub>t</sub><sup>2</sup>). \"computed\": only "
      "the top values were computed (randomized SVD).";
  if (without > 0) {
    out +=
        " " + IntText(without) + " compressed layer(s) have no spectrum (calibrated, or shared).";
  }
  return out + "</p>\n<div class=\"spectra\">\n" + charts + "</div>\n";
}

std::string Curve(const Report& r) {
  const std::string svg = CurveSvg(r);
  if (svg.empty()) return "";
  const SizeErrorCurve& c = r.size_error_curve();
  std::string out = "<h2>Model size against error</h2>\n" + svg + "\n<p class=\"note\">";
  out +=
      "Each point: the compressible weights' parameters after compression, and their "
      "size-weighted RMS relative error sqrt(sum K*N*e<sup>2</sup> / sum K*N), the quantity "
      "--ratio minimizes; the right end is the dense model (error 0). ";
  if (c.basis() == "ratio_allocation") {
    out +=
        "This is the curve --ratio moved along: the lower convex hull of every shape and rank "
        "the allocation considered for every weight; the red point is the allocation it made.";
  } else {
    out +=
        "Computed from each compressed weight's spectrum at its chosen shape (other shapes were "
        "not searched, and layers left dense stay dense), so it is an upper bound on what "
        "--ratio would reach at the same size; the red point is this run.";
  }
  return out + "</p>\n";
}

// What validated the input and the output model, and the nodes no schema check covered, by op.
std::string ChecksSection(const Report& r) {
  const std::string ran = ChecksRanText(r);
  if (ran.empty() && r.checks().unchecked().empty()) return "";
  std::string out =
      "<h2>Checks</h2>\n<p class=\"note\">What validated the input and the output "
      "model: " +
      HtmlEscape(ran.empty() ? "none" : ran) + ".</p>\n";
  if (r.checks().unchecked().empty()) return out;
  out +=
      "<table id=\"unchecked\"><tr><th>not checked by a schema</th><th>op</th><th "
      "class=\"n\">nodes</th><th>reason</th><th>which</th></tr>\n";
  for (const auto& u : r.checks().unchecked()) {
    out += "<tr>" + Td(u.model()) + Td(u.op_type()) + Td(IntText(u.nodes_size()), "n") +
           Td(u.reason() + (u.detail().empty() ? "" : " (" + u.detail() + ")")) +
           Td(UncheckedNodesText(u, 10)) + "</tr>\n";
  }
  return out + "</table>\n";
}

}  // namespace

std::string RenderHtml(const Report& r) {
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  out += "<meta name=\"generator\" content=\"kfc-compress " + HtmlEscape(r.tool_version()) +
         "\">\n<title>kfc-compress report: " + HtmlEscape(r.input()) + "</title>\n<style>" +
         kStyle + "</style>\n</head>\n<body>\n";
  out += "<h1>kfc-compress report</h1>\n<p class=\"sub\">" + HtmlEscape(r.input()) +
         (r.dry_run() ? " (dry run, no output written)" : " &rarr; " + HtmlEscape(r.output())) +
         "<br>" + HtmlEscape(ModeSummary(r)) + ", shape " + HtmlEscape(r.shape_policy()) +
         ", min-params " + HtmlEscape(IntText(r.min_params())) + ", opset " +
         std::to_string(r.opset()) + ", kfc-compress " + HtmlEscape(r.tool_version()) + "</p>\n";
  out += "<section id=\"summary\">\n" + Summary(r) + "</section>\n";
  out += "<section id=\"layers\">\n<h2>Per layer: parameters and error</h2>\n" + LayerBarsSvg(r) +
         "\n</section>\n";
  if (const std::string s = Spectra(r); !s.empty()) {
    out += "<section id=\"spectra\">\n" + s + "</section>\n";
  }
  if (const std::string c = Curve(r); !c.empty()) {
    out += "<section id=\"curve\">\n" + c + "</section>\n";
  }
  if (!r.output_errors().empty()) {  // --calibration-data: end-to-end verification
    out +=
        "<section id=\"outputs\">\n<h2>Model outputs, original vs compressed</h2>\n<p "
        "class=\"note\">On " +
        HtmlEscape(IntText(r.calibration_rows())) + " calibration rows, run by " +
        HtmlEscape(r.runner()) +
        ".</p>\n<table><tr><th>output</th><th class=\"n\">relative error</th><th "
        "class=\"n\">max abs error</th></tr>\n";
    for (const auto& e : r.output_errors()) {
      out += "<tr>" + Td(e.name()) + Td(FixedText(e.relative_error(), 6), "n") +
             Td(FixedText(e.max_abs_error(), 6), "n") + "</tr>\n";
    }
    out += "</table>\n</section>\n";
  }
  if (r.has_auto_selection()) {  // --allocation auto / --calibration-regularization auto
    const AutoSelection& a = r.auto_selection();
    out += "<section id=\"auto\">\n<h2>Automatic choice</h2>\n<p class=\"note\">" +
           HtmlEscape(a.note()) + "</p>\n";
    if (!a.candidates().empty()) {
      out +=
          "<table><tr><th>candidate</th><th class=\"n\">lambda</th><th class=\"n\">held-out "
          "output error</th><th class=\"n\">seconds</th><th></th></tr>\n";
      for (int i = 0; i < a.candidates_size(); ++i) {
        const AutoCandidate& c = a.candidates(i);
        out += "<tr>" + Td(c.allocation()) + Td(NumberText(c.regularization()), "n") +
               Td(c.held_out_error() < 0 ? "-" : FixedText(c.held_out_error(), 6), "n") +
               Td(FixedText(c.seconds(), 1), "n") + Td(i == a.chosen() ? "chosen" : c.note()) +
               "</tr>\n";
      }
      out += "</table>\n";
    }
    out += "</section>\n";
  }
  out += "<section id=\"table\">\n<h2>Layers</h2>\n" + LayerTable(r) + "</section>\n";
  if (const std::string c = ChecksSection(r); !c.empty()) {
    out += "<section id=\"checks\">\n" + c + "</section>\n";
  }
  out += "</body>\n</html>\n";
  return out;
}

}  // namespace kfc::report
