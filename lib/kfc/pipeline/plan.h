// SPDX-License-Identifier: Apache-2.0
// Per-layer plans (--plan FILE, --plan-out FILE) and the --shape policy they share with the
// command line. The file schema is kfc.plan.Plan in proto/kfc_plan.proto: protobuf text format,
// or JSON when the file name ends in ".json".
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kfc/core/status.h"
#include "kfc/match/match.h"
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
  std::string name;    // exact node or weight name; "" when `regex` is used
  std::string regex;   // the pattern's text; "" when `name` is used
  int occurrence = 0;  // with `name`: the n-th layer so named (1-based, graph order); 0: all
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

  // Index of the first entry matching the layer; -1 when none does. Entries with an occurrence
  // match only through Bind.
  int Match(const std::string& node_name, const std::string& weight_name) const;

  // Resolves every entry against the model's layers (all Gemm/MatMul candidates, in graph order):
  // names compare exactly or as written to the report (invalid UTF-8 as U+FFFD), and an entry
  // with an occurrence takes only that occurrence. Returns one warning line per entry that matches
  // no layer. MatchLayer then answers from this binding (copies of the plan share it).
  std::vector<std::string> Bind(const std::vector<match::LayerCandidate>& layers) const;
  // The entry for layer `c` (after Bind; before it, Match on its names).
  int MatchLayer(const match::LayerCandidate& c) const;

  const std::vector<PlanEntry>& entries() const { return entries_; }
  const std::string& source() const { return source_; }

 private:
  std::vector<PlanEntry> entries_;
  std::string source_;
  // Bind's answer: entry index by each layer's node index path (NodeIndexPath).
  std::shared_ptr<std::map<std::string, int>> bound_ =
      std::make_shared<std::map<std::string, int>>();
};

// A layer's unique identity in its model: the node index path, scope steps (node, attribute,
// graph indices) from the main graph, then the node's index: "12", "3.0.0/5".
std::string NodeIndexPath(const match::LayerCandidate& c);

// True when `path` ends in ".json" (plans are JSON there, text format elsewhere).
bool IsJsonPath(const std::string& path);

// The plan a finished run used: one entry per layer that was considered for compression (by
// node name, or weight name when the node has none, with an occurrence where that name is shared
// by several layers), pinning its shape and rank, or `skip` with the reason as comment.
// Compressing with it reproduces the run's output model byte for byte.
StatusOr<std::string> RenderPlan(const report::Report& report, bool json);

}  // namespace kfc::pipeline
