// SPDX-License-Identifier: Apache-2.0
#include "kfc/pipeline/plan.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <charconv>
#include <cmath>
#include <map>

#include "kfc/io/file.h"
#include "kfc/io/model_io.h"
#include "kfc/report/render.h"
#include "kfc_plan.pb.h"

namespace kfc::pipeline {
namespace {

constexpr int kPlanSchemaVersion = 1;
constexpr int64_t kMaxPlanBytes = int64_t{64} << 20;

// Keeps the first text-format parse error, with its position.
class FirstError : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (text_.empty()) {
      text_ = "line " + std::to_string(line + 1) + " column " + std::to_string(column + 1) + ": " +
              message;
    }
  }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

bool ParsePositive(const std::string& text, int64_t* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && !text.empty() && *out >= 1;
}

StatusOr<PlanEntry> ToEntry(const plan::LayerPlan& p) {
  PlanEntry e;
  if (p.name().empty() == p.regex().empty()) {
    return InvalidArgument("give exactly one of `name` and `regex`");
  }
  e.name = p.name();
  e.regex = p.regex();
  if (p.occurrence() < 0) return InvalidArgument("occurrence must be at least 1");
  if (p.occurrence() > 0 && e.name.empty()) {
    return InvalidArgument("occurrence goes with `name`, not `regex`");
  }
  e.occurrence = p.occurrence();
  if (!e.regex.empty()) {
    KFC_ASSIGN_OR_RETURN(NamePattern pattern, NamePattern::Compile(e.regex));
    e.pattern = std::move(pattern);
  }
  const std::string who = e.name.empty() ? "regex '" + e.regex + "'" : "layer '" + e.name + "'";
  if (p.rank() < 0) return InvalidArgument(who + ": rank must be at least 1");
  e.rank = p.rank();
  if (p.has_max_error()) {
    if (!(p.max_error() >= 0.0 && p.max_error() <= 1.0)) {
      return InvalidArgument(who + ": max_error must be in [0, 1], got " +
                             std::to_string(p.max_error()));
    }
    e.max_error = p.max_error();
  }
  e.skip = p.skip();
  if ((e.rank > 0) + (e.max_error >= 0) + e.skip > 1) {
    return InvalidArgument(who + ": give at most one of rank, max_error and skip");
  }
  if (!p.shape().empty()) {
    KFC_ASSIGN_OR_RETURN(ShapePolicy shape, ShapePolicy::Parse(p.shape()));
    e.shape = shape;
  }
  if (!e.SetsBudget() && !e.shape) {
    return InvalidArgument(who + ": sets none of rank, max_error, skip and shape");
  }
  return e;
}

std::string Dims(double a, double b) {
  return std::to_string(static_cast<int64_t>(a)) + "x" + std::to_string(static_cast<int64_t>(b));
}

}  // namespace

std::string ShapePolicy::Name() const {
  switch (kind) {
    case Kind::kBalanced:
      return "balanced";
    case Kind::kLowRank:
      return "lowrank";
    case Kind::kAuto:
      return "auto";
    case Kind::kFixed:
      return std::to_string(k1) + "x" + std::to_string(n1);
  }
  return "";
}

StatusOr<ShapePolicy> ShapePolicy::Parse(const std::string& text) {
  ShapePolicy p;
  if (text == "balanced" || text == "default") return p;
  if (text == "lowrank" || text == "low-rank") {
    p.kind = Kind::kLowRank;
    return p;
  }
  if (text == "auto") {
    p.kind = Kind::kAuto;
    return p;
  }
  const size_t x = text.find('x');
  if (x != std::string::npos && x <= 9 && text.size() - x - 1 <= 9 &&
      ParsePositive(text.substr(0, x), &p.k1) && ParsePositive(text.substr(x + 1), &p.n1)) {
    p.kind = Kind::kFixed;
    return p;
  }
  return InvalidArgument(
      "shape: expected 'balanced', 'lowrank', 'auto' or k1xn1 (e.g. 16x32), "
      "got '" +
      text + "'");
}

StatusOr<Plan> Plan::Parse(const std::string& text, bool json, const std::string& what) {
  plan::Plan proto;
  if (json) {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    auto status = google::protobuf::util::JsonStringToMessage(text, &proto, options);
    if (!status.ok()) {
      return InvalidArgument(what + ": not a valid JSON plan: " + std::string(status.message()));
    }
  } else {
    google::protobuf::TextFormat::Parser parser;
    FirstError errors;
    parser.RecordErrorsTo(&errors);
    if (!parser.ParseFromString(text, &proto)) {
      return InvalidArgument(what + ": not a valid text-format plan: " + errors.text());
    }
  }
  if (proto.plan_schema_version() > kPlanSchemaVersion) {
    return InvalidArgument(
        what + ": plan_schema_version " + std::to_string(proto.plan_schema_version()) +
        " is newer than this tool's (" + std::to_string(kPlanSchemaVersion) + ")");
  }
  Plan plan;
  plan.source_ = what;
  for (int i = 0; i < proto.layers_size(); ++i) {
    auto entry = ToEntry(proto.layers(i));
    if (!entry.ok()) {
      return InvalidArgument(what + ": entry " + std::to_string(i + 1) + ": " +
                             entry.status().message());
    }
    plan.entries_.push_back(std::move(*entry));
  }
  return plan;
}

StatusOr<Plan> Plan::Load(const std::string& path) {
  const std::string what = "plan '" + path + "'";
  KFC_ASSIGN_OR_RETURN(const std::string text,
                       io::ReadFile(path, what, kMaxPlanBytes, "the 64 MiB limit for plans"));
  return Parse(text, IsJsonPath(path), what);
}

int Plan::Match(const std::string& node_name, const std::string& weight_name) const {
  for (size_t i = 0; i < entries_.size(); ++i) {
    const PlanEntry& e = entries_[i];
    if (e.occurrence > 0) continue;
    const bool hit = e.pattern ? e.pattern->Matches(node_name, weight_name)
                               : (e.name == node_name || e.name == weight_name);
    if (hit) return static_cast<int>(i);
  }
  return -1;
}

std::string NodeIndexPath(const match::LayerCandidate& c) {
  std::string path;
  for (const graph::ScopeStep& s : c.scope) {
    path += std::to_string(s.node) + "." + std::to_string(s.attribute) + "." +
            std::to_string(s.graph) + "/";
  }
  return path + std::to_string(c.node_index);
}

std::vector<std::string> Plan::Bind(const std::vector<match::LayerCandidate>& layers) const {
  bound_->clear();
  std::vector<int> seen(entries_.size(), 0);  // layers each name entry has matched so far
  std::vector<bool> used(entries_.size(), false);
  for (const match::LayerCandidate& c : layers) {
    const std::string node = report::ToValidUtf8(c.node_name);
    const std::string weight = report::ToValidUtf8(c.weight_name);
    int found = -1;
    for (size_t i = 0; i < entries_.size(); ++i) {
      const PlanEntry& e = entries_[i];
      bool hit;
      if (e.pattern) {
        hit = e.pattern->Matches(c.node_name, c.weight_name);
      } else {
        hit =
            e.name == c.node_name || e.name == c.weight_name || e.name == node || e.name == weight;
        if (hit) hit = e.occurrence == 0 || ++seen[i] == e.occurrence;
      }
      if (hit && found < 0) found = static_cast<int>(i);
      if (hit) used[i] = true;
    }
    (*bound_)[NodeIndexPath(c)] = found;
  }
  std::vector<std::string> warnings;
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (used[i]) continue;
    const PlanEntry& e = entries_[i];
    std::string who = e.pattern ? "regex '" + e.regex + "'" : "name '" + e.name + "'";
    if (e.occurrence > 0) who += " occurrence " + std::to_string(e.occurrence);
    warnings.push_back(source_ + ": entry " + std::to_string(i + 1) + " (" + who +
                       ") matches no layer");
  }
  return warnings;
}

int Plan::MatchLayer(const match::LayerCandidate& c) const {
  if (auto it = bound_->find(NodeIndexPath(c)); it != bound_->end()) return it->second;
  return Match(c.node_name, c.weight_name);
}

bool IsJsonPath(const std::string& path) {
  return path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
}

StatusOr<std::string> RenderPlan(const report::Report& report, bool json) {
  plan::Plan proto;
  proto.set_plan_schema_version(kPlanSchemaVersion);
  proto.set_generated_by("kfc-compress " + report.tool_version() + " from '" + report.input() +
                         "'");
  // How many layers each name matches (as node or weight name): a name matching several needs an
  // occurrence to key one layer.
  std::map<std::string, int> uses;
  for (const auto& l : report.layers()) {
    ++uses[l.node_name()];
    if (l.weight_name() != l.node_name()) ++uses[l.weight_name()];
  }
  std::map<std::string, int> seen;
  std::vector<std::pair<const report::LayerReport*, int>> keyed;  // layer, occurrence
  for (const auto& l : report.layers()) {
    const std::string& key = l.node_name().empty() ? l.weight_name() : l.node_name();
    int occurrence = ++seen[l.node_name()];
    if (l.weight_name() != l.node_name()) {
      const int as_weight = ++seen[l.weight_name()];
      if (key == l.weight_name()) occurrence = as_weight;
    }
    keyed.emplace_back(&l, uses[key] > 1 ? occurrence : 0);
  }
  for (const auto& [layer, occurrence] : keyed) {
    const report::LayerReport& l = *layer;
    if (l.decided_by().empty()) continue;  // never considered: its skip reason comes first
    plan::LayerPlan* e = proto.add_layers();
    e->set_name(l.node_name().empty() ? l.weight_name() : l.node_name());
    e->set_occurrence(occurrence);
    if (l.compressed()) {
      e->set_shape(Dims(l.k1(), l.n1()));
      e->set_rank(static_cast<int64_t>(l.rank()));
      char buf[96];
      std::snprintf(buf, sizeof(buf), "%s (x) %s, relative error %.6f",
                    Dims(l.k1(), l.n1()).c_str(), Dims(l.k2(), l.n2()).c_str(), l.relative_error());
      e->set_comment(buf);
    } else {
      e->set_skip(true);
      e->set_comment(l.skip_reason() + ": " + l.skip_detail());
    }
  }
  std::string out;
  if (json) {
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.preserve_proto_field_names = true;
    auto status = google::protobuf::util::MessageToJsonString(proto, &out, options);
    if (!status.ok()) return Internal("plan: JSON rendering failed: " + status.ToString());
    if (out.empty() || out.back() != '\n') out += "\n";
    return out;
  }
  google::protobuf::TextFormat::Printer printer;
  if (!printer.PrintToString(proto, &out)) return Internal("plan: text rendering failed");
  return "# kfc-compress plan (proto/kfc_plan.proto); edit and pass back with --plan\n" + out;
}

}  // namespace kfc::pipeline
