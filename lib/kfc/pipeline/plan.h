// SPDX-License-Identifier: Apache-2.0
// Per-layer plans (--plan FILE, --plan-out FILE) and the --shape policy they share with the
// command line. The file schema is kfc.plan.Plan in proto/kfc_plan.proto: protobuf text format,
// or JSON when the file name ends in ".json".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/pipeline/name_filter.h"
#include "kfc_report.pb.h"

namespace kfc::pipeline {

// How a layer's factor shape is chosen.
struct ShapePolicy {
  enum class Kind {
    kBalanced,  // fewest parameters per term (ties: least error up to 2^20 elements, else squarest)
    kLowRank,   // K x 1 (x) 1 x N: plain truncated SVD of W
    kAuto,      // every divisor pair (kron::SearchShape or the --ratio allocation)
    kFixed,     // k1 x n1 where it divides K x N and is not trivial; balanced elsewhere
  };
  Kind kind = Kind::kBalanced;
  int64_t k1 = 0, n1 = 0;  // kFixed only

  // "balanced", "lowrank", "auto" or "k1xn1".
  std::string Name() const;
  // Inverse of Name(); also accepts "default" for balanced and "low-rank" for lowrank.
  // InvalidArgument on anything else.
  static StatusOr<ShapePolicy> Parse(const std::string& text);
};

struct PlanEntry {
  std::string name;   // exact node or weight name; "" when `regex` is used
  std::string regex;  // the pattern's text; "" when `name` is used
  std::optional<NamePattern> pattern;
  int64_t rank = 0;       // > 0: this many terms
  double max_error = -1;  // >= 0: error target
  bool skip = false;
  std::optional<ShapePolicy> shape;

  bool SetsBudget() const { return rank > 0 || max_error >= 0 || skip; }
};

class Plan {
 public:
  // Parses and validates plan text. `what` names it in errors ("plan 'p.json'").
  static StatusOr<Plan> Parse(const std::string& text, bool json, const std::string& what);
  // Reads `path`; JSON when it ends in ".json". NotFound/IoError/InvalidArgument name the file.
  static StatusOr<Plan> Load(const std::string& path);

  // Index of the first entry matching the layer; -1 when none does.
  int Match(const std::string& node_name, const std::string& weight_name) const;

  const std::vector<PlanEntry>& entries() const { return entries_; }
  const std::string& source() const { return source_; }

 private:
  std::vector<PlanEntry> entries_;
  std::string source_;
};

// True when `path` ends in ".json" (plans are JSON there, text format elsewhere).
bool IsJsonPath(const std::string& path);

// The plan a finished run used: one entry per layer that was considered for compression (by
// node name, or weight name when the node has none), pinning its shape and rank, or `skip` with
// the reason as comment. Compressing with it reproduces the run's output model byte for byte.
StatusOr<std::string> RenderPlan(const report::Report& report, bool json);

}  // namespace kfc::pipeline
