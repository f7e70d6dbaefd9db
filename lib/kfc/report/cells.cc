// SPDX-License-Identifier: Apache-2.0
#include "kfc/report/cells.h"

#include <cinttypes>
#include <cstdio>

namespace kfc::report {

std::string IntText(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%" PRId64, static_cast<int64_t>(v));
  return buf;
}

std::string NumberText(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

std::string FixedText(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string BeforeAfterText(double before, double after, const std::string& arrow) {
  std::string out = IntText(before) + " " + arrow + " " + IntText(after);
  if (after > 0) out += " (" + FixedText(before / after, 2) + "x)";
  return out;
}

std::string LayerLabel(const LayerReport& l) {
  std::string name = l.node_name().empty() ? "(unnamed)" : l.node_name();
  if (!l.graph().empty() && l.graph() != "main") name = l.graph() + "/" + name;
  return name;
}

std::string ShapeCellText(const LayerReport& l, const std::string& times, const std::string& kron) {
  return IntText(l.k1()) + times + IntText(l.n1()) + " " + kron + " " + IntText(l.k2()) + times +
         IntText(l.n2());
}

std::string RankText(const LayerReport& l) {
  std::string rank = IntText(l.rank());
  if (l.rank_clamped()) rank += " (asked " + IntText(l.rank_requested()) + ")";
  return rank;
}

double JudgedError(const LayerReport& l) {
  return l.calibrated() && l.data_relative_error() >= 0 ? l.data_relative_error()
                                                        : l.relative_error();
}

std::string ModeSummary(const Report& r) {
  std::string mode = r.mode() == "max_error" ? "max-error " + FixedText(r.max_error(), 6)
                     : r.mode() == "ratio"   ? "ratio " + FixedText(r.ratio_target(), 6)
                     : r.mode() == "plan"    ? std::string("plan only")
                                             : "rank " + IntText(r.rank_requested());
  if (!r.plan().empty()) mode += ", plan " + r.plan();
  return mode;
}

std::string ChecksRanText(const Report& r) {
  std::string out;
  std::string model;
  for (const auto& c : r.checks().ran()) {
    if (out.empty() || c.model() != model) {
      out += (out.empty() ? "" : "; ") + c.model() + ": ";
      model = c.model();
    } else {
      out += ", ";
    }
    out += c.check() + " (" + IntText(c.nodes()) + " nodes" +
           (c.detail().empty() ? "" : ", " + c.detail()) + ")";
  }
  return out;
}

std::string UncheckedNodesText(const UncheckedOp& u, int shown) {
  std::string out;
  for (int i = 0; i < u.nodes_size() && i < shown; ++i) out += (i ? ", " : "") + u.nodes(i);
  if (u.nodes_size() > shown) out += ", ...";
  return out;
}

}  // namespace kfc::report
