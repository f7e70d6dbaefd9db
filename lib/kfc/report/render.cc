// SPDX-License-Identifier: Apache-2.0
#include "kfc/report/render.h"

#include <google/protobuf/field_mask.pb.h>
#include <google/protobuf/util/field_mask_util.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "kfc/report/cells.h"

namespace kfc::report {
namespace {

std::string Int(double v) { return IntText(v); }
std::string Fixed(double v, int digits) { return FixedText(v, digits); }

std::string Ratio(double before, double after) {
  if (after <= 0) return "";
  return "(" + Fixed(before / after, 2) + "x)";
}

std::string BeforeAfter(double before, double after) {
  return Int(before) + " -> " + Int(after) + " " + Ratio(before, after);
}

// Pads each column to its widest cell; the last column is not padded.
std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(width[c] - row[c].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

// Under --shape auto: the error plain low-rank SVD reaches at the same budget.
std::string LowRankNote(const LayerReport& l) {
  if (l.lowrank_relative_error() < 0) return "";
  return " (low-rank r=" + Int(l.lowrank_rank()) + ": " + Fixed(l.lowrank_relative_error(), 6) +
         ")";
}

// Under --shape auto with --dry-run or -v: every shape searched, per layer.
std::string CandidateTables(const Report& r) {
  std::string out;
  for (const auto& l : r.layers()) {
    if (l.candidates().empty()) continue;
    out += "\nshapes searched for " + (l.node_name().empty() ? "(unnamed)" : l.node_name()) +
           ": error bounds from a cheap sketch, error from full-accuracy work\n";
    std::vector<std::vector<std::string>> rows = {
        {"  shape", "rank", "params", "error bounds", "error"}};
    for (const auto& c : l.candidates()) {
      if (c.rank() < 1) continue;
      const std::string bounds = c.error_lower() >= 0 ? "[" + Fixed(c.error_lower(), 4) + ", " +
                                                            Fixed(c.error_upper(), 4) + "]"
                                                      : "-";
      rows.push_back(
          {"  " + Int(c.k1()) + "x" + Int(c.n1()) + " (x) " + Int(c.k2()) + "x" + Int(c.n2()),
           Int(c.rank()), Int(c.params()), bounds, c.evaluated() ? Fixed(c.error(), 6) : "pruned"});
    }
    out += Table(rows);
  }
  return out;
}

std::string ModeText(const Report& r) {
  std::string mode = r.mode() == "max_error" ? "max-error " + Fixed(r.max_error(), 6)
                     : r.mode() == "ratio"   ? "ratio " + Fixed(r.ratio_target(), 6)
                     : r.mode() == "plan"    ? std::string("plan only")
                                             : "rank " + Int(r.rank_requested());
  if (!r.plan().empty()) mode += ", " + r.plan();
  return mode;
}

// --calibration-data: each model output's error, original against compressed, on the
// calibration inputs.
std::string OutputErrors(const Report& r) {
  if (r.output_errors().empty()) return "";
  std::string out = "\noutputs on " + Int(r.calibration_rows()) +
                    " calibration rows, original vs compressed (run by " + r.runner() + "):\n";
  std::vector<std::vector<std::string>> rows = {{"  output", "relative error", "max abs error"}};
  for (const auto& e : r.output_errors()) {
    rows.push_back({"  " + e.name(), Fixed(e.relative_error(), 6), Fixed(e.max_abs_error(), 6)});
  }
  return out + Table(rows);
}

// --allocation auto / --calibration-regularization auto: how the values were chosen.
std::string AutoSelectionText(const Report& r) {
  if (!r.has_auto_selection()) return "";
  const AutoSelection& a = r.auto_selection();
  std::string out = "\nauto: " + a.note() + "\n";
  if (a.candidates().empty()) return out;
  std::vector<std::vector<std::string>> rows = {
      {"  candidate", "lambda", "held-out output error", "seconds", ""}};
  for (int i = 0; i < a.candidates_size(); ++i) {
    const AutoCandidate& c = a.candidates(i);
    rows.push_back({"  " + c.allocation(), NumberText(c.regularization()),
                    c.held_out_error() < 0 ? "-" : Fixed(c.held_out_error(), 6),
                    Fixed(c.seconds(), 1), i == a.chosen() ? "chosen" : c.note()});
  }
  return out + Table(rows);
}

// Budget and gate outcomes under the totals; nothing for a plain -r run.
std::string Outcomes(const Report& r) {
  std::string out;
  const Totals& t = r.totals();
  if (r.mode() != "rank" || !r.plan().empty()) {
    out += Table({{"  compressible params",
                   BeforeAfter(t.compressible_params_before(), t.compressible_params_after()) +
                       " ratio " + Fixed(t.compressible_ratio(), 4)}});
  }
  if (r.mode() == "ratio") {
    out += std::string("ratio target ") + (r.ratio_met() ? "met: " : "MISSED: ") +
           r.ratio_detail() + "\n";
  }
  for (const auto& g : r.gates()) {
    out += "gate " + g.gate() + " " + Fixed(g.threshold(), 6) + ": " +
           (g.passed() ? "passed (" : "FAILED (") + g.detail() + ")\n";
  }
  return out;
}

// Only when some node went without a schema check: the checks that ran, and those nodes by op.
// (A model the ONNX library checks whole adds nothing here.)
std::string ChecksText(const Report& r) {
  if (r.checks().unchecked().empty()) return "";
  std::string out = "\nchecks:";
  const char* sep = " ";
  for (const auto& c : r.checks().ran()) {
    out += sep + c.model() + " " + c.check() + " (" + Int(c.nodes()) + " nodes)";
    sep = ", ";
  }
  out += "\nnot checked by a schema:\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& u : r.checks().unchecked()) {
    std::string nodes;
    for (int i = 0; i < u.nodes_size() && i < 3; ++i) nodes += (i ? ", " : "") + u.nodes(i);
    if (u.nodes_size() > 3) nodes += ", ...";
    rows.push_back({"  " + u.model(), u.op_type(), std::to_string(u.nodes_size()) + " nodes",
                    u.reason() + " (" + u.detail() + ")", nodes});
  }
  return out + Table(rows);
}

}  // namespace

std::string ToValidUtf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      len = 1;
      cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (p[i + k] & 0xC0) == 0x80;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // Reject overlong forms, surrogates and values past U+10FFFF.
    static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    ok = ok && cp >= kMin[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

std::string RenderText(const Report& r) {
  std::string out = "kfc-compress " + r.tool_version() + ": " + r.input();
  out += r.dry_run() ? " (dry run, no output written)" : " -> " + r.output();
  if (!r.external_data_file().empty()) {
    out += " + external data " + r.external_data_file();
    if (r.external_data_automatic()) out += " (automatic: inline it would exceed 2 GiB)";
  }
  out += "\n" + ModeText(r) + ", shape " + r.shape_policy() + ", min-params " +
         Int(r.min_params()) + ", opset " + std::to_string(r.opset()) + "\n\n";

  std::vector<std::vector<std::string>> rows = {
      {"layer", "op", "weight", "K x N", "dtype", "factors A (x) B", "rank",
       "params before -> after", "MACs/row before -> after", "rel. error / skip reason"}};
  for (const auto& l : r.layers()) {
    std::string name = l.node_name().empty() ? "(unnamed)" : l.node_name();
    if (l.graph() != "main") name = l.graph() + "/" + name;
    const std::string kn = l.k() > 0 ? Int(l.k()) + "x" + Int(l.n()) : "?";
    if (l.compressed()) {
      std::string rank = Int(l.rank());
      if (l.rank_clamped()) rank += " (asked " + Int(l.rank_requested()) + ")";
      rows.push_back({name, l.op_type(), l.weight_name(), kn, l.dtype(),
                      Int(l.k1()) + "x" + Int(l.n1()) + " (x) " + Int(l.k2()) + "x" + Int(l.n2()),
                      rank, BeforeAfter(l.params_before(), l.params_after()),
                      BeforeAfter(l.macs_before(), l.macs_after()),
                      Fixed(l.relative_error(), 6) + LowRankNote(l)});
    } else {
      rows.push_back({name, l.op_type(), l.weight_name(), kn, l.dtype(), "-", "-",
                      l.params_before() > 0 ? Int(l.params_before()) : "-",
                      l.macs_before() > 0 ? Int(l.macs_before()) : "-",
                      "skipped: " + l.skip_reason() + " (" + l.skip_detail() + ")"});
    }
  }
  if (r.layers().empty()) rows.push_back({"(no Gemm or MatMul layers found)"});
  out += Table(rows);

  out += CandidateTables(r);

  const Totals& t = r.totals();
  out += "\ntotals: " + Int(t.layers_found()) + " layers, " + Int(t.layers_compressed()) +
         " compressed, " + Int(t.layers_skipped()) + " skipped\n";
  out += Table({
      {"  layer params", BeforeAfter(t.layer_params_before(), t.layer_params_after())},
      {"  layer MACs/row", BeforeAfter(t.layer_macs_before(), t.layer_macs_after())},
      {"  model params", BeforeAfter(t.model_params_before(), t.model_params_after())},
      {"  weight bytes", BeforeAfter(t.weight_bytes_before(), t.weight_bytes_after())},
      {"  file bytes", BeforeAfter(t.file_bytes_before(), t.file_bytes_after())},
  });
  out += Outcomes(r);
  out += AutoSelectionText(r);
  out += OutputErrors(r);
  out += ChecksText(r);
  return out;
}

std::string CompressedSummary(const Report& r) {
  const Totals& t = r.totals();
  std::string out =
      Int(t.layers_compressed()) + " of " + Int(t.layers_found()) + " layers compressed";
  if (t.layers_compressed() > 0) return out;
  if (r.layers().empty()) return out + ": no Gemm or MatMul in the graph or its subgraphs";
  std::map<std::string, int> counts;
  for (const auto& l : r.layers()) {
    if (!l.compressed()) ++counts[l.skip_reason().empty() ? "not_compressed" : l.skip_reason()];
  }
  std::vector<std::pair<std::string, int>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  const char* sep = ": ";
  for (const auto& [reason, n] : sorted) {
    out += sep + std::to_string(n) + " " + reason;
    sep = ", ";
  }
  return out;
}

StatusOr<std::string> RenderJson(const Report& report) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  // Printing with every primitive field builds a tree of the whole message first (about 8 KB
  // per layer, 0.8 GB more for 100k layers), so the layers are printed one at a time into the
  // report's JSON printed without them. The bytes are the same as printing it whole: each layer
  // object is printed at depth 0 and indented by the two levels of the "layers" array.
  google::protobuf::FieldMask all_but_layers;
  const auto* descriptor = Report::descriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const auto* f = descriptor->field(i);
    if (f->number() != Report::kLayersFieldNumber) all_but_layers.add_paths(f->name());
  }
  Report head;
  google::protobuf::util::FieldMaskUtil::MergeMessageTo(
      report, all_but_layers, google::protobuf::util::FieldMaskUtil::MergeOptions(), &head);
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(head, &json, options);
  if (!status.ok()) return Internal("report: JSON rendering failed: " + status.ToString());
  if (report.layers_size() > 0) {
    const std::string empty = "\n \"layers\": [],\n";
    const size_t at = json.find(empty);
    if (at == std::string::npos) return Internal("report: JSON rendering failed: no layers array");
    std::string layers = "\n \"layers\": [\n";
    std::string one;
    for (int i = 0; i < report.layers_size(); ++i) {
      one.clear();
      status = google::protobuf::util::MessageToJsonString(report.layers(i), &one, options);
      if (!status.ok()) return Internal("report: JSON rendering failed: " + status.ToString());
      while (!one.empty() && one.back() == '\n') one.pop_back();
      // Two more spaces at the start of every line (strings hold no raw newlines in JSON).
      layers += "  ";
      for (char ch : one) {
        layers += ch;
        if (ch == '\n') layers += "  ";
      }
      layers += i + 1 < report.layers_size() ? ",\n" : "\n";
    }
    layers += " ],\n";
    json.replace(at, empty.size(), layers);
  }
  if (json.empty() || json.back() != '\n') json += "\n";
  return json;
}

}  // namespace kfc::report
