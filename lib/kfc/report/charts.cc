#include "kfc/report/charts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "kfc/report/cells.h"

namespace kfc::report {
namespace {

const char kBlue[] = "#2563eb";
const char kGrey[] = "#cbd5e1";
const char kDark[] = "#334155";
const char kRed[] = "#dc2626";
const char kOrange[] = "#ea580c";

// A coordinate or length, one decimal.
std::string N(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return std::string(buf) == "-0.0" ? "0.0" : buf;
}

// 1, 10, 100, 1k, 10k, ... for powers of ten.
std::string Decade(int e) {
  static const char* kSuffix[] = {"", "k", "M", "G", "T"};
  if (e < 0) return "1e" + std::to_string(e);
  const int group = std::min(e / 3, 4);
  std::string digits = "1" + std::string(static_cast<size_t>(e - 3 * group), '0');
  return digits + kSuffix[group];
}

// The smallest of {1, 2, 2.5, 5} x 10^k at or above v (v > 0).
double NiceCeil(double v) {
  if (!(v > 0)) return 1.0;
  const double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * p >= v * (1 - 1e-12)) return m * p;
  }
  return 10 * p;
}

std::string Text(double x, double y, const std::string& text, const std::string& attrs = "") {
  return "<text x=\"" + N(x) + "\" y=\"" + N(y) + "\"" + (attrs.empty() ? "" : " " + attrs) + ">" +
         HtmlEscape(text) + "</text>";
}

std::string Line(double x1, double y1, double x2, double y2, const std::string& attrs) {
  return "<line x1=\"" + N(x1) + "\" y1=\"" + N(y1) + "\" x2=\"" + N(x2) + "\" y2=\"" + N(y2) +
         "\" " + attrs + "/>";
}

std::string Rect(double x, double y, double w, double h, const std::string& fill) {
  return "<rect x=\"" + N(x) + "\" y=\"" + N(y) + "\" width=\"" + N(std::max(w, 0.0)) +
         "\" height=\"" + N(h) + "\" fill=\"" + fill + "\"/>";
}

std::string Open(double w, double h, const std::string& label) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + N(w) + "\" height=\"" + N(h) +
         "\" viewBox=\"0 0 " + N(w) + " " + N(h) + "\" role=\"img\" aria-label=\"" +
         HtmlEscape(label) + "\" font-family=\"system-ui, sans-serif\" font-size=\"11\">";
}

// A log10 axis over whole decades [lo, hi] mapped to [x0, x1].
struct LogAxis {
  int lo = 0, hi = 1;
  double x0 = 0, x1 = 1;
  double At(double v) const {
    if (!(v > 0)) return x0;
    const double f = (std::log10(v) - lo) / (hi - lo);
    return x0 + std::clamp(f, 0.0, 1.0) * (x1 - x0);
  }
};

LogAxis MakeLogAxis(double min_positive, double max, double x0, double x1) {
  LogAxis a;
  a.lo = static_cast<int>(std::floor(std::log10(min_positive)));
  a.hi = static_cast<int>(std::ceil(std::log10(max)));
  if (a.hi <= a.lo) a.hi = a.lo + 1;
  a.x0 = x0;
  a.x1 = x1;
  return a;
}

}  // namespace

std::string HtmlEscape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

std::string LayerBarsSvg(const Report& r) {
  const double label_w = 230, bars_x = 240, bars_w = 420, err_x = 700, err_w = 170;
  const double top = 34, row_h = 24;
  const double width = err_x + err_w + 30;
  const double height = top + row_h * std::max(1, r.layers_size()) + 12;
  double min_params = 0, max_params = 0, max_error = 0;
  for (const auto& l : r.layers()) {
    for (double p : {l.params_before(), l.params_after()}) {
      if (p > 0 && (min_params == 0 || p < min_params)) min_params = p;
      max_params = std::max(max_params, p);
    }
    if (l.compressed()) max_error = std::max(max_error, JudgedError(l));
  }
  if (max_params <= 0) min_params = max_params = 1;
  const LogAxis axis = MakeLogAxis(min_params, max_params, bars_x, bars_x + bars_w);
  const double error_top = NiceCeil(std::max(max_error, 1e-3));
  double gate = -1;  // errors above --fail-if-error-above are drawn in orange
  for (const auto& g : r.gates()) {
    if (g.gate() == "fail_if_error_above") gate = g.threshold();
  }

  std::string out = Open(width, height, "parameters before and after, and error, per layer");
  out += Text(bars_x, 12, "parameters per layer (log scale): before (grey), after (blue)",
              "font-weight=\"600\"");
  out += Text(err_x, 12, "relative error", "font-weight=\"600\"");
  const double bottom = height - 12;
  for (int e = axis.lo; e <= axis.hi; ++e) {
    const double x = axis.At(std::pow(10.0, e));
    out += Line(x, top - 6, x, bottom, "stroke=\"#e2e8f0\"");
    out += Text(x, top - 9, Decade(e), "text-anchor=\"middle\" fill=\"#64748b\"");
  }
  for (int i = 0; i <= 2; ++i) {
    const double x = err_x + err_w * i / 2.0;
    out += Line(x, top - 6, x, bottom, "stroke=\"#e2e8f0\"");
    out += Text(x, top - 9, FixedText(error_top * i / 2.0, error_top < 0.04 ? 4 : 3),
                "text-anchor=\"middle\" fill=\"#64748b\"");
  }
  double y = top;
  for (const auto& l : r.layers()) {
    const std::string name = LayerLabel(l);
    std::string shown = name;
    if (shown.size() > 34) shown = shown.substr(0, 31) + "...";
    std::string tip = name + ": params " + BeforeAfterText(l.params_before(), l.params_after());
    if (l.compressed()) {
      tip += ", " + ShapeCellText(l) + " rank " + IntText(l.rank()) + ", error " +
             FixedText(JudgedError(l), 6);
    } else {
      tip += ", skipped: " + l.skip_reason();
    }
    out += "<g class=\"layer-row\"><title>" + HtmlEscape(tip) + "</title>";
    out += Text(label_w, y + 15, shown, "text-anchor=\"end\"");
    if (l.params_before() > 0) {
      out += Rect(bars_x, y + 4, axis.At(l.params_before()) - bars_x, 16, kGrey);
      if (l.compressed()) {
        out += Rect(bars_x, y + 8, axis.At(std::max(l.params_after(), 1.0)) - bars_x, 8, kBlue);
      }
    }
    if (l.compressed()) {
      const double e = JudgedError(l);
      const double w = err_w * std::min(e / error_top, 1.0);
      out += Rect(err_x, y + 6, w, 12, gate >= 0 && e > gate ? kOrange : kBlue);
      out += Text(err_x + w + 4, y + 16, FixedText(e, 4), "fill=\"" + std::string(kDark) + "\"");
    } else {
      out += Text(err_x, y + 16, "skipped: " + l.skip_reason(), "fill=\"#64748b\"");
    }
    out += "</g>";
    y += row_h;
  }
  if (r.layers().empty()) out += Text(bars_x, top + 16, "(no Gemm or MatMul layers found)");
  return out + "</svg>";
}

std::string SpectrumSvg(const LayerReport& l) {
  const auto& values = l.spectrum().values();
  double min_v = 0, max_v = 0;
  for (double v : values) {
    if (v > 0 && (min_v == 0 || v < min_v)) min_v = v;
    max_v = std::max(max_v, v);
  }
  if (values.empty() || max_v <= 0) return "";
  const double width = 300, height = 190, left = 46, right = 12, top = 34, bottom = 30;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  LogAxis ya = MakeLogAxis(std::max(min_v, max_v * 1e-8), max_v, 0, 1);
  auto Y = [&](double v) { return top + plot_h * (1.0 - ya.At(std::max(v, 1e-300))); };
  const double n = static_cast<double>(values.size());
  auto X = [&](double t) { return left + plot_w * (t - 0.5) / n; };  // t = 1..n

  std::string out = Open(width, height, "singular values of " + LayerLabel(l));
  std::string title = LayerLabel(l);
  if (title.size() > 44) title = title.substr(0, 41) + "...";
  out += Text(4, 13, title, "font-weight=\"600\"");
  out += Text(4, 27,
              ShapeCellText(l) + ", rank " + IntText(l.rank()) + " of " +
                  IntText(static_cast<double>(values.size())) +
                  (l.spectrum().complete() ? "" : " computed"),
              "fill=\"#64748b\"");
  out += "<rect x=\"" + N(left) + "\" y=\"" + N(top) + "\" width=\"" + N(plot_w) + "\" height=\"" +
         N(plot_h) + "\" fill=\"none\" stroke=\"#e2e8f0\"/>";
  for (int e = ya.lo; e <= ya.hi; e += std::max(1, (ya.hi - ya.lo + 3) / 4)) {
    const double y = Y(std::pow(10.0, e));
    out += Line(left, y, left + plot_w, y, "stroke=\"#f1f5f9\"");
    out += Text(left - 4, y + 4, "1e" + std::to_string(e), "text-anchor=\"end\" fill=\"#64748b\"");
  }
  std::string kept, dropped;
  const int rank = static_cast<int>(l.rank());
  const double floor = std::pow(10.0, ya.lo);  // values below the axis are not drawn
  for (int t = 1; t <= values.size(); ++t) {
    const double v = values[t - 1];
    if (!(v >= floor)) continue;
    std::string& path = t <= rank ? kept : dropped;
    path += (path.empty() ? "" : " ") + N(X(t)) + "," + N(Y(v));
  }
  if (!dropped.empty()) {
    out += "<polyline points=\"" + dropped + "\" fill=\"none\" stroke=\"#94a3b8\"/>";
  }
  if (!kept.empty()) {
    out += "<polyline points=\"" + kept + "\" fill=\"none\" stroke=\"" + kBlue +
           "\" stroke-width=\"2\"/>";
  }
  if (values.size() <= 64) {
    for (int t = 1; t <= values.size(); ++t) {
      if (!(values[t - 1] >= floor)) continue;
      out += "<circle cx=\"" + N(X(t)) + "\" cy=\"" + N(Y(values[t - 1])) + "\" r=\"2.2\" fill=\"" +
             (t <= rank ? kBlue : "#94a3b8") + "\"/>";
    }
  }
  if (rank < static_cast<int>(values.size())) {
    const double x = X(rank + 0.5);
    out += Line(x, top, x, top + plot_h,
                "stroke=\"" + std::string(kRed) + "\" stroke-dasharray=\"4 3\"");
  }
  out += Text(left + plot_w / 2, height - 8, "t (term)", "text-anchor=\"middle\" fill=\"#64748b\"");
  return out + "</svg>";
}

std::string CurveSvg(const Report& r) {
  const SizeErrorCurve& c = r.size_error_curve();
  if (c.points().empty()) return "";
  const double width = 720, height = 340, left = 64, right = 24, top = 16, bottom = 48;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  double min_p = 0, max_p = c.params_dense(), max_e = c.chosen().error();
  for (const auto& p : c.points()) {
    if (p.params() > 0 && (min_p == 0 || p.params() < min_p)) min_p = p.params();
    max_p = std::max(max_p, p.params());
    max_e = std::max(max_e, p.error());
  }
  if (min_p <= 0) min_p = 1;
  if (max_p <= min_p) max_p = min_p * 10;
  const LogAxis xa = MakeLogAxis(min_p, max_p, left, left + plot_w);
  const double e_top = NiceCeil(std::max(max_e, 1e-3));
  auto Y = [&](double e) { return top + plot_h * (1.0 - std::min(e / e_top, 1.0)); };

  std::string out = Open(width, height, "model size against error");
  out += "<rect x=\"" + N(left) + "\" y=\"" + N(top) + "\" width=\"" + N(plot_w) + "\" height=\"" +
         N(plot_h) + "\" fill=\"none\" stroke=\"#e2e8f0\"/>";
  for (int e = xa.lo; e <= xa.hi; ++e) {
    const double x = xa.At(std::pow(10.0, e));
    out += Line(x, top, x, top + plot_h, "stroke=\"#f1f5f9\"");
    out += Text(x, top + plot_h + 16, Decade(e), "text-anchor=\"middle\" fill=\"#64748b\"");
  }
  for (int i = 0; i <= 4; ++i) {
    const double e = e_top * i / 4.0;
    out += Line(left, Y(e), left + plot_w, Y(e), "stroke=\"#f1f5f9\"");
    out += Text(left - 6, Y(e) + 4, FixedText(e, e_top < 0.04 ? 4 : 3),
                "text-anchor=\"end\" fill=\"#64748b\"");
  }
  std::string path;
  for (const auto& p : c.points()) {
    path +=
        (path.empty() ? "" : " ") + N(xa.At(std::max(p.params(), min_p))) + "," + N(Y(p.error()));
  }
  out += "<polyline points=\"" + path + "\" fill=\"none\" stroke=\"" + kBlue +
         "\" stroke-width=\"2\"/>";
  const double cx = xa.At(std::max(c.chosen().params(), min_p)), cy = Y(c.chosen().error());
  out += "<circle cx=\"" + N(cx) + "\" cy=\"" + N(cy) + "\" r=\"5\" fill=\"" + kRed + "\"><title>" +
         HtmlEscape("this run: " + IntText(c.chosen().params()) + " parameters, error " +
                    FixedText(c.chosen().error(), 6)) +
         "</title></circle>";
  const bool right_half = cx > left + plot_w * 0.6;
  out += Text(cx + (right_half ? -8 : 8), cy - 8,
              "this run: " + IntText(c.chosen().params()) + " params, error " +
                  FixedText(c.chosen().error(), 4),
              std::string("fill=\"") + kRed + "\"" + (right_half ? " text-anchor=\"end\"" : ""));
  out += Text(left + plot_w / 2, height - 10,
              "compressible parameters after compression (log scale)", "text-anchor=\"middle\"");
  out += Text(14, top + plot_h / 2, "size-weighted RMS relative error",
              "text-anchor=\"middle\" transform=\"rotate(-90 14 " + N(top + plot_h / 2) + ")\"");
  return out + "</svg>";
}

}  // namespace kfc::report
