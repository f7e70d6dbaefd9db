// SPDX-License-Identifier: Apache-2.0
// Layer selection by name: --include / --exclude and --plan's `regex` entries. Patterns are RE2
// regular expressions (https://github.com/google/re2/wiki/Syntax: Perl-like classes \d \w \s,
// no backreferences) searched, not anchored, in a layer's node name and weight name. RE2 matches
// in time linear in the name and in memory bounded per pattern (kMaxPatternMemory), so no pattern
// can make selection hang or exhaust memory. Names are matched as bytes (Latin-1 mode), so names
// that are not valid UTF-8 still match.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kfc/core/status.h"

namespace kfc::pipeline {

// RE2's budget for one compiled pattern.
inline constexpr int64_t kMaxPatternMemory = int64_t{8} << 20;

class NamePattern {
 public:
  // InvalidArgument naming the pattern when it does not compile (or needs more than
  // kMaxPatternMemory).
  static StatusOr<NamePattern> Compile(const std::string& pattern);

  // True when the pattern matches somewhere in either name.
  bool Matches(const std::string& node_name, const std::string& weight_name) const;
  const std::string& text() const;

 private:
  struct Compiled;
  std::shared_ptr<const Compiled> compiled_;
};

class NameFilter {
 public:
  // InvalidArgument naming the pattern when one does not compile.
  static StatusOr<NameFilter> Create(const std::vector<std::string>& include,
                                     const std::vector<std::string>& exclude);

  // "" when the layer is selected; else the skip reason "excluded" or "not_included". Records
  // which patterns matched (for Unmatched).
  std::string Reject(const std::string& node_name, const std::string& weight_name) const;

  // The flags and patterns that matched no layer passed to Reject so far, as "--include 'x'".
  std::vector<std::string> Unmatched() const;

 private:
  std::vector<NamePattern> include_;
  std::vector<NamePattern> exclude_;
  std::shared_ptr<std::vector<bool>> include_hit_, exclude_hit_;
};

}  // namespace kfc::pipeline
